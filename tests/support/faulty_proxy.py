"""A TCP proxy on 127.0.0.1 that forwards to a local server and cuts connections on demand.

For fault-injection tests: the code under test connects to ``proxy.port``
instead of the server's. ``arm(server_bytes=N)`` cuts once, after N more bytes
have been forwarded from the server (counted over every connection, from the
moment of arming); ``client_bytes=N`` does the same for the other direction;
``cut_all()`` cuts every open connection right now (a server that vanishes
while the client waits in IDLE). ``hold()`` forwards nothing either way, while
still accepting and counting connections, until ``release()`` (a server that
hangs before its greeting: the client is known to be waiting on it).
``transcripts()`` returns what each connection's client sent (forwarded
bytes, one entry per connection since the last ``reset_counters``), so a
test can audit the commands the code under test issued.

A cut is abrupt: both sockets are closed at once, with ``SO_LINGER`` 0 (so
the peers see a TCP RST) unless ``rst=False`` (a plain FIN). Byte counts are
exact at the proxy: the client was handed exactly N bytes from the server
before the cut (with RST, the kernel may still drop the tail that was in
flight, as a real network would).

Bounded and self-stopping: one thread with one selector serves every
connection; buffers are capped (a slow reader stops the proxy reading from
the other side); at most ``max_connections`` pairs are open; the thread ends
by itself after ``lifetime`` seconds, and ``stop()`` (or the ``with`` block)
ends it sooner. It listens on, and connects to, 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Self

LOOPBACK = "127.0.0.1"
_CHUNK = 64 * 1024
_BUFFER_CAP = 256 * 1024
_TAIL = 256
_SERVER, _CLIENT = "server", "client"  # the side the bytes come from


@dataclass(frozen=True)
class ProxyStats:
    """Totals since ``start`` or the last ``reset_counters``."""

    server_bytes: int  # forwarded from the server to the client
    client_bytes: int  # forwarded from the client to the server
    connections: int  # accepted
    open: int  # open right now
    cuts: int  # connections cut by the proxy


class _Pipe:
    """One accepted client and its connection to the server."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.socks = {_CLIENT: client, _SERVER: server}
        # Bytes waiting to go *from* that side to the other one.
        self.pending = {_CLIENT: bytearray(), _SERVER: bytearray()}
        self.eof: set[str] = set()  # sides that closed their sending direction
        self.server_tail = b""  # the last bytes forwarded from the server
        self.events: dict[str, int] = {_CLIENT: 0, _SERVER: 0}
        self.client_sent = bytearray()  # every byte forwarded from the client, for audits


def _other(side: str) -> str:
    return _CLIENT if side == _SERVER else _SERVER


def _close(sock: socket.socket, *, rst: bool) -> None:
    if rst:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultyProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = LOOPBACK,
        lifetime: float = 600.0,
        max_connections: int = 32,
    ) -> None:
        if upstream_host != LOOPBACK:
            raise ValueError("the fault proxy only forwards to 127.0.0.1")
        self.upstream = (upstream_host, upstream_port)
        self.lifetime = lifetime
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._budget: dict[str, int | None] = {_SERVER: None, _CLIENT: None}
        self._rst = True
        self._held = False
        self._counts = {_SERVER: 0, _CLIENT: 0, "connections": 0, "cuts": 0}
        self._cut_requests: list[tuple[bool, threading.Event]] = []
        self._pipes: list[_Pipe] = []
        self._transcripts: list[bytearray] = []  # client_sent of each connection since reset_counters
        self._listener: socket.socket | None = None
        self._waker: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.host = LOOPBACK
        self.port = 0

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        listener = socket.create_server((LOOPBACK, 0), backlog=16)
        listener.setblocking(False)
        self._listener, self.port = listener, listener.getsockname()[1]
        self._waker = socket.socketpair()
        for sock in self._waker:
            sock.setblocking(False)
        self._thread = threading.Thread(target=self._serve, name=f"faulty-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listener; safe to call twice."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError("the fault proxy thread did not stop")
            self._thread = None
        if self._waker is not None:
            for sock in self._waker:
                sock.close()
            self._waker = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- control (from any thread) -------------------------------------------------------

    def arm(self, *, server_bytes: int | None = None, client_bytes: int | None = None, rst: bool = True) -> None:
        """Cut once: after ``server_bytes`` more bytes from the server, or ``client_bytes`` from the client.

        Counted over every connection from now on; whichever budget runs out
        first cuts that connection and disarms both.
        """
        if server_bytes is None and client_bytes is None:
            raise ValueError("arm needs server_bytes or client_bytes")
        with self._lock:
            self._budget = {_SERVER: server_bytes, _CLIENT: client_bytes}
            self._rst = rst
        self._wake()  # a zero budget cuts what is already waiting

    def hold(self) -> None:
        """Forward nothing in either direction (new connections are still accepted) until ``release``."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:
            self._held = False
        self._wake()

    def disarm(self) -> None:
        with self._lock:
            self._budget = {_SERVER: None, _CLIENT: None}

    @property
    def armed(self) -> bool:
        with self._lock:
            return any(b is not None for b in self._budget.values())

    def cut_all(self, *, rst: bool = True, timeout: float = 5.0) -> int:
        """Cut every open connection now; returns how many were open."""
        done = threading.Event()
        before = self.stats().cuts
        with self._lock:
            self._cut_requests.append((rst, done))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError("the fault proxy did not cut in time")
        return self.stats().cuts - before

    def reset_counters(self) -> None:
        with self._lock:
            self._counts.update({_SERVER: 0, _CLIENT: 0, "connections": 0, "cuts": 0})
            self._transcripts = []

    def transcripts(self) -> list[bytes]:
        """What the client sent on each connection accepted since ``reset_counters``, in order."""
        with self._lock:
            return [bytes(t) for t in self._transcripts]

    def stats(self) -> ProxyStats:
        with self._lock:
            c = self._counts
            return ProxyStats(c[_SERVER], c[_CLIENT], c["connections"], len(self._pipes), c["cuts"])

    def server_said(self, marker: bytes) -> bool:
        """Whether the last bytes forwarded from the server on an open connection contain ``marker``."""
        with self._lock:
            return any(marker in p.server_tail for p in self._pipes)

    # ---- the proxy thread ------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waker is not None:
            with contextlib.suppress(OSError):  # full (already woken) or closed
                self._waker[1].send(b"x")

    def _serve(self) -> None:
        assert self._listener is not None and self._waker is not None
        deadline = time.monotonic() + self.lifetime
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, ("listener", None))
        selector.register(self._waker[0], selectors.EVENT_READ, ("waker", None))
        try:
            while not self._stopping.is_set() and time.monotonic() < deadline:
                for key, mask in selector.select(timeout=0.5):
                    kind, pipe = key.data
                    if kind == "listener":
                        self._accept(selector)
                    elif kind == "waker":
                        with contextlib.suppress(OSError):
                            self._waker[0].recv(4096)
                    elif pipe in self._pipes:  # not cut earlier in this round
                        self._on_event(selector, pipe, kind, mask)
                self._serve_cut_requests(selector)
                for pipe in list(self._pipes):
                    self._pump_both(selector, pipe)
        finally:
            for pipe in list(self._pipes):
                self._drop(selector, pipe, rst=True, cut=False)
            selector.close()
            self._listener.close()
            with self._lock:  # nobody waits for a cut that will never come
                requests, self._cut_requests = self._cut_requests, []
            for _rst, done in requests:
                done.set()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if len(self._pipes) >= self.max_connections:
            _close(client, rst=True)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client, rst=True)
            return
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # forward each piece at once
        pipe = _Pipe(client, server)
        with self._lock:
            self._pipes.append(pipe)
            self._transcripts.append(pipe.client_sent)
            self._counts["connections"] += 1
        for side, sock in pipe.socks.items():
            selector.register(sock, selectors.EVENT_READ, (side, pipe))
            pipe.events[side] = selectors.EVENT_READ

    def _serve_cut_requests(self, selector: selectors.BaseSelector) -> None:
        with self._lock:
            requests, self._cut_requests = self._cut_requests, []
        for rst, done in requests:
            for pipe in list(self._pipes):
                self._drop(selector, pipe, rst=rst, cut=True)
            done.set()

    def _on_event(self, selector: selectors.BaseSelector, pipe: _Pipe, side: str, mask: int) -> None:
        sock = pipe.socks[side]
        if mask & selectors.EVENT_WRITE:
            self._pump(selector, pipe, _other(side))
            if pipe not in self._pipes:
                return
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(_CHUNK)
            except BlockingIOError:
                return
            except OSError:  # reset by the peer: pass the abruptness on
                self._drop(selector, pipe, rst=True, cut=False)
                return
            if data:
                pipe.pending[side] += data
                # ACK at once (Linux re-arms delayed ACKs after each read): imaplib writes a
                # command and its CRLF separately, and Nagle holds the CRLF until that ACK,
                # which would add 40 ms to every IMAP command through the proxy.
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            else:
                pipe.eof.add(side)

    def _pump_both(self, selector: selectors.BaseSelector, pipe: _Pipe) -> None:
        for source in (_SERVER, _CLIENT):
            if pipe in self._pipes:
                self._pump(selector, pipe, source)
        if pipe not in self._pipes:
            return
        if pipe.eof and not any(pipe.pending.values()):  # one side hung up and all is delivered
            self._drop(selector, pipe, rst=False, cut=False)
            return
        with self._lock:
            held = self._held
        for side, sock in pipe.socks.items():
            wanted = 0
            if side not in pipe.eof and len(pipe.pending[side]) < _BUFFER_CAP:
                wanted |= selectors.EVENT_READ
            if pipe.pending[_other(side)] and not held:
                wanted |= selectors.EVENT_WRITE
            if wanted != pipe.events[side]:
                if pipe.events[side] and wanted:
                    selector.modify(sock, wanted, (side, pipe))
                elif wanted:
                    selector.register(sock, wanted, (side, pipe))
                else:
                    selector.unregister(sock)
                pipe.events[side] = wanted

    def _pump(self, selector: selectors.BaseSelector, pipe: _Pipe, source: str) -> None:
        """Forward what ``source`` sent, within the armed budget; cut when the budget runs out."""
        pending = pipe.pending[source]
        if not pending:
            return
        broken = exhausted = False
        with self._lock:  # one step against the budget: arm() cannot slip in between
            if self._held:
                return
            budget, rst = self._budget[source], self._rst
            allowed = len(pending) if budget is None else min(len(pending), budget)
            sent = 0
            if allowed:
                try:
                    sent = pipe.socks[_other(source)].send(pending[:allowed])
                except BlockingIOError:
                    pass
                except OSError:
                    broken = True
            if sent and source == _SERVER:
                pipe.server_tail = (pipe.server_tail + bytes(pending[:sent]))[-_TAIL:]
            elif sent:
                pipe.client_sent += pending[:sent]
            del pending[:sent]
            self._counts[source] += sent
            if budget is not None:
                self._budget[source] = budget - sent
                exhausted = budget == sent and bool(pending)
                if exhausted:
                    self._budget = {_SERVER: None, _CLIENT: None}
        if broken:
            self._drop(selector, pipe, rst=True, cut=False)
        elif exhausted:
            self._drop(selector, pipe, rst=rst, cut=True)

    def _drop(self, selector: selectors.BaseSelector, pipe: _Pipe, *, rst: bool, cut: bool) -> None:
        # Counted before the sockets close: a client that sees the cut at once must find it in stats().
        with self._lock:
            if pipe in self._pipes:
                self._pipes.remove(pipe)
            if cut:
                self._counts["cuts"] += 1
        for side, sock in pipe.socks.items():
            if pipe.events[side]:
                selector.unregister(sock)
                pipe.events[side] = 0
            _close(sock, rst=rst)
