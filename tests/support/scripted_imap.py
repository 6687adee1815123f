"""A local IMAP4rev1 server that answers as Gmail, Microsoft 365, Yahoo or iCloud do.

Those servers cannot be reached from the test machine, so this one replays
their documented behaviour over a real TCP socket on 127.0.0.1: the greeting,
CAPABILITY before and after login, LOGIN, AUTHENTICATE PLAIN and XOAUTH2
(the token counts as the password; Gmail's base64 JSON error challenge), ENABLE, LIST with SPECIAL-USE
flags (Gmail's ``\\All``), EXAMINE / SELECT (with Yahoo's HIGHESTMODSEQ
without CONDSTORE), UID SEARCH, UID FETCH with X-GM-MSGID / X-GM-THRID /
X-GM-LABELS, UID STORE of flags and X-GM-LABELS (a label is on the message in
every folder, as in Gmail), APPEND, IDLE, LOGOUT, and their error texts:

- ``fail(command, reply, bye=...)`` answers the next ``command`` (e.g. "UID
  FETCH", "LOGIN", "LIST") with ``reply`` ("NO [OVERQUOTA] Account exceeded
  command or bandwidth limits. (Failure)", "BAD Request is throttled.
  Suggested Backoff Time: 1500 milliseconds") and, with ``bye``, closes the
  connection after it as Microsoft does.
- a persona's ``connection_limit``: logins past it are refused with the
  persona's text (Gmail: "NO [ALERT] Too many simultaneous connections.
  (Failure)"); ``occupy(n)`` pretends other devices hold n connections.
- CHANGEDSINCE sent to a persona without CONDSTORE gets Yahoo's "BAD
  [CLIENTBUG] ... Command arguments invalid".

It records what it saw (``commands``, ``appends``, ``most_at_once``,
``refused``, ``bodies_sent``, ``events`` with times) for the tests to assert on. One thread
per connection, sockets polled with a short timeout so ``stop()`` (or the
``with`` block) ends every thread and closes every socket.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.utils import parsedate_to_datetime
from typing import Self

from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imap_utf7 import encode as encode_utf7

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Persona:
    name: str
    greeting: str
    capabilities_before: str
    capabilities_after: str
    login_ok: str
    login_refused: str
    connection_limit: int | None = None
    too_many: str = "NO [ALERT] Too many simultaneous connections. (Failure)"
    authenticate_refused: str = "NO [AUTHENTICATIONFAILED] Authentication failed."
    # What an XOAUTH2 failure sends before its NO (RFC 7628 3.2.2: base64 JSON the client answers with an empty line)
    oauth_error: str | None = None
    highestmodseq_without_condstore: bool = False
    special_use: bool = True


GMAIL = Persona(
    "gmail",
    "* OK Gimap ready for requests from 127.0.0.1 z12mb1234567wrx",
    "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY SASL-IR AUTH=XOAUTH2 "
    "AUTH=PLAIN AUTH=PLAIN-CLIENTTOKEN AUTH=OAUTHBEARER",
    "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE ENABLE MOVE "
    "CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584",
    "OK {login} authenticated (Success)",
    "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)",
    connection_limit=15,  # Gmail refuses the 16th simultaneous IMAP connection to an account
    authenticate_refused="NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)",
    oauth_error='{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}',
)
MICROSOFT = Persona(
    "microsoft",
    "* OK The Microsoft Exchange IMAP4 service is ready. [TQBOADIAUABSADAAMQA2ADAALgBuAGEAbQBwAHIAZAAxADYA]",
    "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+",
    "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+",
    "OK {verb} completed.",
    "NO LOGIN failed.",
    connection_limit=20,
    too_many="NO User is authenticated but not connected.",
    authenticate_refused="NO AUTHENTICATE failed.",
)
YAHOO = Persona(
    "yahoo",
    "* OK [CAPABILITY IMAP4rev1 ID MOVE NAMESPACE XYMHIGHESTMODSEQ UIDPLUS LITERAL+ CHILDREN X-MSG-EXT UNSELECT "
    "OBJECTID] IMAP4rev1 Hello",
    "IMAP4rev1 ID MOVE NAMESPACE XYMHIGHESTMODSEQ UIDPLUS LITERAL+ CHILDREN X-MSG-EXT UNSELECT OBJECTID "
    "SASL-IR AUTH=PLAIN AUTH=XOAUTH2 AUTH=OAUTHBEARER",
    "IMAP4rev1 ID MOVE NAMESPACE XYMHIGHESTMODSEQ UIDPLUS LITERAL+ CHILDREN X-MSG-EXT UNSELECT OBJECTID IDLE "
    "ENABLE SPECIAL-USE",
    "OK {verb} completed",
    "NO [AUTHENTICATIONFAILED] LOGIN Invalid credentials",
    highestmodseq_without_condstore=True,  # sent on SELECT although CONDSTORE is not offered
)
ICLOUD = Persona(
    "icloud",
    "* OK [CAPABILITY st11p00im-iscream004 2109B29 XAPPLEPUSHSERVICE IMAP4 IMAP4rev1 SASL-IR AUTH=ATOKEN "
    "AUTH=PLAIN] iSCREAM ready to rumble (2109B29-d3afe4d5aba6) st11p00im-iscream004 [12:3456:78:90]",
    "XAPPLEPUSHSERVICE IMAP4 IMAP4rev1 SASL-IR AUTH=ATOKEN AUTH=PLAIN",
    "XAPPLEPUSHSERVICE IMAP4 IMAP4rev1 ACL RIGHTS=tekx QUOTA LITERAL+ NAMESPACE UIDPLUS CHILDREN BINARY UNSELECT "
    "SORT CATENATE ESEARCH CONDSTORE ENABLE QRESYNC CONTEXT=SEARCH WITHIN SASL-IR SEARCHRES ID IDLE",
    "OK User {login} logged in",
    "NO [AUTHENTICATIONFAILED] Authentication failed",
)
GENERIC = Persona(
    "generic",
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE AUTH=PLAIN] Server ready.",
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE AUTH=PLAIN",
    "IMAP4rev1 ID ENABLE IDLE UIDPLUS SPECIAL-USE MOVE CHILDREN NAMESPACE",
    "OK Logged in",
    "NO [AUTHENTICATIONFAILED] Authentication failed.",
)


@dataclass
class Stored:
    uid: int
    raw: bytes
    flags: list[str] = field(default_factory=list)
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    gm_labels: list[str] = field(default_factory=list)
    modseq: int = 1


@dataclass
class Folder:
    name: str
    attributes: tuple[str, ...] = ()
    uidvalidity: int = 1
    messages: dict[int, Stored] = field(default_factory=dict)
    highest: int = 0  # the highest UID ever given: UIDs are never reused (RFC 3501 2.3.1.1)

    @property
    def uidnext(self) -> int:
        return max(self.highest, max(self.messages, default=0)) + 1

    def put(self, stored: Stored) -> None:
        self.messages[stored.uid] = stored
        self.highest = max(self.highest, stored.uid)


GMAIL_FOLDERS = (
    ("INBOX", ("\\HasNoChildren",)),
    ("[Gmail]", ("\\HasChildren", "\\Noselect")),
    ("[Gmail]/All Mail", ("\\All", "\\HasNoChildren")),
    ("[Gmail]/Drafts", ("\\Drafts", "\\HasNoChildren")),
    ("[Gmail]/Sent Mail", ("\\HasNoChildren", "\\Sent")),
    ("[Gmail]/Spam", ("\\HasNoChildren", "\\Junk")),
    ("[Gmail]/Trash", ("\\HasNoChildren", "\\Trash")),
)
_FOLDER_LABELS = {"INBOX": "\\Inbox", "[Gmail]/Sent Mail": "\\Sent"}  # Gmail: a system folder is a label
PLAIN_FOLDERS = (
    ("INBOX", ("\\HasNoChildren",)),
    ("Sent", ("\\HasNoChildren", "\\Sent")),
    ("Drafts", ("\\HasNoChildren", "\\Drafts")),
    ("Trash", ("\\HasNoChildren", "\\Trash")),
)


@dataclass
class _Fault:
    command: str
    reply: str
    bye: str | None


class _Closed(Exception):
    pass


class ScriptedImapServer:
    def __init__(self, persona: Persona, login: str, password: str) -> None:
        self.persona = persona
        self.login, self.password = login, password
        layout = GMAIL_FOLDERS if persona is GMAIL else PLAIN_FOLDERS
        self.folders = {name: Folder(name, attrs, uidvalidity=7) for name, attrs in layout}
        self.commands: list[str] = []  # "UID FETCH 1,2 (...)": every command after its tag, LOGIN redacted
        self.appends: list[str] = []  # folder names APPENDed to
        self.renames: list[tuple[str, str]] = []  # labels renamed (Gmail: RENAME of a label)
        self.events: list[tuple[float, str]] = []  # (time.monotonic(), what happened)
        self.most_at_once = 0
        self.bodies_sent = 0  # whole messages sent (FETCH BODY[]): what Gmail counts against its bandwidth limit
        self.refused = 0
        self._faults: list[_Fault] = []
        self._occupied = 0
        self._authenticated = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name=f"scripted-imap-{persona.name}", daemon=True)

    # ---- the test's side -------------------------------------------------------------

    def __enter__(self) -> Self:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=10)
        for thread in list(self._threads):
            thread.join(timeout=10)
        self._listener.close()

    def add(self, folder: str, raw: bytes, *, flags=(), gm_msgid=None, gm_thrid=None, gm_labels=()) -> int:
        with self._lock:
            box = self.folders[folder]
            uid = box.uidnext
            box.put(Stored(uid, raw, list(flags), gm_msgid, gm_thrid, list(gm_labels)))
            return uid

    def fail(self, command: str, reply: str, *, bye: str | None = None) -> None:
        """Answer the next ``command`` with ``reply`` (and close the connection after ``bye``, if given)."""
        with self._lock:
            self._faults.append(_Fault(command.upper(), reply, bye))

    def occupy(self, connections: int) -> None:
        """Pretend other devices hold this many connections to the account."""
        with self._lock:
            self._occupied = connections

    @property
    def open_now(self) -> int:
        with self._lock:
            return self._authenticated

    def times_of(self, what: str) -> list[float]:
        with self._lock:
            return [t for t, e in self.events if e.startswith(what)]

    # ---- serving -----------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(0.1)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        connection = _Connection(self, sock)
        try:
            connection.run()
        except (_Closed, OSError):
            pass
        finally:
            connection.finish()
            sock.close()

    def _note(self, event: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), event))

    def _take_fault(self, command: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.command == command:
                    self._faults.remove(fault)
                    return fault
        return None

    def _admit(self) -> bool:
        with self._lock:
            limit = self.persona.connection_limit
            if limit is not None and self._authenticated + self._occupied >= limit:
                self.refused += 1
                return False
            self._authenticated += 1
            self.most_at_once = max(self.most_at_once, self._authenticated)
            return True

    def _leave(self) -> None:
        with self._lock:
            self._authenticated -= 1


_ATOM = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\S+)')


def _words(line: bytes) -> list[str]:
    return [(m[1] if m[1] is not None else m[2]).decode("utf-8", "replace") for m in _ATOM.finditer(line)]


def _uid_set(text: str, last: int) -> set[int]:
    found: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition(":")
        a = last if low == "*" else int(low)
        b = a if not high else (last if high == "*" else int(high))
        found.update(range(min(a, b), max(a, b) + 1))
    return found


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Connection:
    def __init__(self, server: ScriptedImapServer, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.buffer = b""
        self.authenticated = False
        self.selected: Folder | None = None
        self.condstore = "CONDSTORE" in server.persona.capabilities_after.split()

    def finish(self) -> None:
        if self.authenticated:
            self.authenticated = False
            self.server._leave()

    # -- wire --
    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + b"\r\n")

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if self.server._stopping.is_set():
                raise _Closed
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise _Closed
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if self.server._stopping.is_set():
                raise _Closed
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise _Closed
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_command(self) -> tuple[bytes, bytes | None]:
        """A command line, with the one literal it may carry (APPEND) read after a continuation."""
        line = self.read_line()
        found = re.search(rb"\{(\d+)\+?\}$", line)
        if not found:
            return line, None
        if not line.endswith(b"+}"):
            self.send("+ Ready for literal data")
        literal = self.read_exactly(int(found[1]))
        rest = self.read_line()
        return line[: found.start()] + rest, literal

    # -- protocol --
    def run(self) -> None:
        self.send(self.server.persona.greeting)
        while True:
            line, literal = self.read_command()
            words = line.split(b" ", 2)
            if len(words) < 2:
                self.send(b"* BAD Error in IMAP command")
                continue
            tag = words[0].decode()
            verb = words[1].decode().upper()
            rest = words[2] if len(words) > 2 else b""
            if verb == "UID":
                sub, _, rest = rest.partition(b" ")
                verb = f"UID {sub.decode().upper()}"
            self.server.commands.append(f"{verb} <redacted>" if verb == "LOGIN" else f"{verb} {rest.decode()}")
            self.server._note(verb)
            fault = self.server._take_fault(verb)
            if fault is not None:
                self.send(f"{tag} {fault.reply}")
                self.server._note(f"refused {verb}")
                if fault.bye:
                    self.send(fault.bye)
                    raise _Closed
                continue
            handler = getattr(self, "do_" + verb.replace(" ", "_").lower(), None)
            if handler is None:
                self.send(f"{tag} BAD Command unknown")
                continue
            handler(tag, rest, literal)

    def caps(self) -> str:
        persona = self.server.persona
        return persona.capabilities_after if self.authenticated else persona.capabilities_before

    def do_capability(self, tag, rest, literal) -> None:
        self.send(f"* CAPABILITY {self.caps()}")
        self.send(f"{tag} OK Success")

    def do_noop(self, tag, rest, literal) -> None:
        self.send(f"{tag} OK Success")

    def do_id(self, tag, rest, literal) -> None:
        self.send(f'* ID ("name" "{self.server.persona.name}")')
        self.send(f"{tag} OK Success")

    def do_login(self, tag, rest, literal) -> None:
        persona, words = self.server.persona, _words(rest)
        if words != [self.server.login, self.server.password]:
            self.send(f"{tag} {persona.login_refused}")
            return
        self.welcome(tag, "LOGIN")

    def do_authenticate(self, tag, rest, literal) -> None:
        """SASL PLAIN and XOAUTH2 (the token counts as the password), with or without an initial response."""
        persona, words = self.server.persona, rest.decode().split()
        mechanism = words[0].upper() if words else ""
        if mechanism not in ("PLAIN", "XOAUTH2"):
            self.send(f"{tag} NO [CANNOT] Unsupported authentication mechanism.")
            return
        if len(words) > 1:
            answer = words[1]
        else:
            self.send("+ ")
            answer = self.read_line().decode()
        try:
            decoded = base64.b64decode(answer, validate=True)
        except ValueError:
            self.send(f"{tag} BAD Invalid SASL argument.")
            return
        if (mechanism == "PLAIN" and _plain(decoded) != (self.server.login, self.server.password)) or (
            mechanism == "XOAUTH2" and _xoauth2(decoded) != (self.server.login, self.server.password)
        ):
            if mechanism == "XOAUTH2" and persona.oauth_error:
                self.send("+ " + base64.b64encode(persona.oauth_error.encode()).decode())
                self.read_line()  # the client's (empty) answer to the error challenge
            self.send(f"{tag} {persona.authenticate_refused}")
            return
        self.welcome(tag, "AUTHENTICATE")

    def welcome(self, tag: str, verb: str) -> None:
        persona = self.server.persona
        if not self.server._admit():
            self.send(f"{tag} {persona.too_many}")
            return
        self.authenticated = True
        self.send(f"* CAPABILITY {persona.capabilities_after}")
        self.send(f"{tag} {persona.login_ok.format(login=self.server.login, verb=verb)}")

    def do_enable(self, tag, rest, literal) -> None:
        asked = [w.upper() for w in _words(rest)]
        enabled = [w for w in asked if w in self.caps().split()]
        self.send("* ENABLED" + "".join(f" {w}" for w in enabled))
        self.send(f"{tag} OK Success")

    def do_logout(self, tag, rest, literal) -> None:
        self.send("* BYE LOGOUT Requested")
        self.send(f"{tag} OK 73 good day (Success)")
        raise _Closed

    def do_namespace(self, tag, rest, literal) -> None:
        self.send('* NAMESPACE (("" "/")) NIL NIL')
        self.send(f"{tag} OK Success")

    def do_list(self, tag, rest, literal) -> None:
        for folder in self.server.folders.values():
            attributes = folder.attributes if self.server.persona.special_use else ()
            self.send(f'* LIST ({" ".join(attributes)}) "/" {_quoted(folder.name)}')
        self.send(f"{tag} OK Success")

    do_xlist = do_list

    def do_examine(self, tag, rest, literal, *, verb: str = "EXAMINE") -> None:
        name = _words(rest)[0]
        folder = next((f for n, f in self.server.folders.items() if n.upper() == name.upper()), None)
        if folder is None or "\\Noselect" in folder.attributes:
            self.send(f"{tag} NO [NONEXISTENT] Unknown Mailbox: {name} (Failure)")
            return
        self.selected = folder
        self.send("* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)")
        self.send("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen \\*)] Flags permitted.")
        self.send(f"* OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid.")
        self.send(f"* {len(folder.messages)} EXISTS")
        self.send("* 0 RECENT")
        self.send(f"* OK [UIDNEXT {folder.uidnext}] Predicted next UID.")
        if self.condstore or self.server.persona.highestmodseq_without_condstore:
            highest = max((m.modseq for m in folder.messages.values()), default=1)
            self.send(f"* OK [HIGHESTMODSEQ {highest}]")
        state = "READ-ONLY" if verb == "EXAMINE" else "READ-WRITE"
        self.send(f"{tag} OK [{state}] {name} selected. (Success)")

    def do_select(self, tag, rest, literal) -> None:
        self.do_examine(tag, rest, literal, verb="SELECT")

    def ordered(self) -> list[Stored]:
        return [self.selected.messages[u] for u in sorted(self.selected.messages)]

    def do_uid_search(self, tag, rest, literal) -> None:
        words, found = _words(rest), self.ordered()
        index = 0
        while index < len(words):
            key = words[index].upper()
            if key == "UID":
                wanted = _uid_set(words[index + 1], max(self.selected.messages, default=0))
                found, index = [m for m in found if m.uid in wanted], index + 2
            elif key == "SINCE":
                since = dt.datetime.strptime(words[index + 1], "%d-%b-%Y").date()
                found = [m for m in found if _date(m.raw) >= since]
                index += 2
            elif key == "HEADER":
                name, value = words[index + 1], words[index + 2]
                found = [m for m in found if value.lower() in str(message_from_bytes(m.raw).get(name, "")).lower()]
                index += 3
            else:  # ALL, CHARSET ...
                index += 1 if key != "CHARSET" else 2
        self.send("* SEARCH" + "".join(f" {m.uid}" for m in found))
        self.send(f"{tag} OK SEARCH completed (Success)")

    def do_uid_fetch(self, tag, rest, literal) -> None:
        text = rest.decode()
        uid_text, _, items = text.partition(" ")
        modifiers = ""
        if ") (" in items:
            items, _, modifiers = items.partition(") (")
        if "CHANGEDSINCE" in modifiers.upper() and not self.condstore:
            self.send(f"{tag} BAD [CLIENTBUG] UID FETCH Command arguments invalid")
            return
        wanted = _uid_set(uid_text, max(self.selected.messages, default=0))
        asked = items.upper()
        for seq, stored in enumerate(self.ordered(), start=1):
            if stored.uid in wanted:
                self.sock.sendall(self.fetch_line(seq, stored, asked))
        self.send(f"{tag} OK Success")

    def fetch_line(self, seq: int, stored: Stored, asked: str) -> bytes:
        parts = [f"UID {stored.uid}"]
        if "FLAGS" in asked:
            parts.append(f"FLAGS ({' '.join(stored.flags)})")
        if "X-GM-MSGID" in asked and stored.gm_msgid is not None:
            parts.append(f"X-GM-MSGID {stored.gm_msgid}")
        if "X-GM-THRID" in asked and stored.gm_thrid is not None:
            parts.append(f"X-GM-THRID {stored.gm_thrid}")
        if "X-GM-LABELS" in asked:
            labels = (
                label if label.startswith("\\") else _quoted(encode_utf7(label).decode()) for label in stored.gm_labels
            )
            parts.append(f"X-GM-LABELS ({' '.join(labels)})")
        if "MODSEQ" in asked and self.condstore:
            parts.append(f"MODSEQ ({stored.modseq})")
        head = f"* {seq} FETCH (" + " ".join(parts)
        if "BODY" in asked:
            with self.server._lock:
                self.server.bodies_sent += 1
            return f"{head} BODY[] {{{len(stored.raw)}}}\r\n".encode() + stored.raw + b")\r\n"
        return (head + ")\r\n").encode()

    def do_append(self, tag, rest, literal) -> None:
        name = _words(rest)[0]
        folder = self.server.folders.get(name)
        if folder is None or literal is None:
            self.send(f"{tag} NO [TRYCREATE] Folder doesn't exist. (Failure)")
            return
        self.server.appends.append(name)
        uid = self.server.add(name, literal, flags=("\\Seen",))
        self.send(f"{tag} OK [APPENDUID {folder.uidvalidity} {uid}] (Success)")

    def do_uid_store(self, tag, rest, literal) -> None:
        """+FLAGS / -FLAGS on the selected folder; +X-GM-LABELS / -X-GM-LABELS on the message in every folder."""
        uid_text, _, text = rest.decode().partition(" ")
        operation, _, values = text.partition(" ")
        item, adding = operation.upper().removesuffix(".SILENT"), operation.startswith("+")
        names = _words(values.strip().strip("()").encode())
        for uid in _uid_set(uid_text, max(self.selected.messages, default=0)):
            stored = self.selected.messages.get(uid)
            if stored is None:
                continue
            if item.endswith("FLAGS"):
                _change(stored.flags, names, adding)
                stored.modseq += 1
            elif item.endswith("X-GM-LABELS"):
                labels = [decode_utf7(n.encode()) for n in names]
                for folder in self.server.folders.values():
                    for copy in folder.messages.values():
                        if copy.gm_msgid is not None and copy.gm_msgid == stored.gm_msgid:
                            _change(copy.gm_labels, labels, adding)
                            copy.modseq += 1
        self.send(f"{tag} OK Success")

    def do_rename(self, tag, rest, literal) -> None:
        """Gmail: a user label is a folder; RENAME renames it on every message that has it."""
        before, after = (decode_utf7(w.encode()) for w in _words(rest)[:2])
        with self.server._lock:
            found = False
            for folder in self.server.folders.values():
                for stored in folder.messages.values():
                    if before in stored.gm_labels:
                        found = True
                        stored.gm_labels = [after if n == before else n for n in stored.gm_labels]
                        stored.modseq += 1
        if not found:
            self.send(f"{tag} NO [NONEXISTENT] Unknown Mailbox: {before} (Failure)")
            return
        self.server.renames.append((before, after))
        self.send(f"{tag} OK Success")

    def do_uid_move(self, tag, rest, literal) -> None:
        """Gmail's MOVE: the message leaves the selected folder (its label goes); All Mail keeps every message."""
        self.transfer(tag, rest, moving=True)

    def do_uid_copy(self, tag, rest, literal) -> None:
        """Gmail's COPY: the message gets the destination's label; in All Mail it is already."""
        self.transfer(tag, rest, moving=False)

    def transfer(self, tag: str, rest: bytes, *, moving: bool) -> None:
        uid_text, _, name = rest.decode().partition(" ")
        name = name.strip().strip('"')
        target = self.server.folders.get(name)
        if target is None or "\\Noselect" in target.attributes:
            self.send(f"{tag} NO [TRYCREATE] Folder doesn't exist. (Failure)")
            return
        source = self.selected
        moved: list[tuple[int, int]] = []
        with self.server._lock:
            for uid in sorted(_uid_set(uid_text, max(source.messages, default=0)) & set(source.messages)):
                stored = source.messages[uid]
                there = next((m for m in target.messages.values()
                              if m.gm_msgid is not None and m.gm_msgid == stored.gm_msgid), None)
                if there is None:
                    there = Stored(target.uidnext, stored.raw, list(stored.flags), stored.gm_msgid, stored.gm_thrid,
                                   list(stored.gm_labels))
                    target.put(there)
                moved.append((uid, there.uid))
                label = _FOLDER_LABELS.get(name)
                gone = _FOLDER_LABELS.get(source.name) if moving else None
                for folder in self.server.folders.values():
                    for copy in folder.messages.values():
                        if copy.gm_msgid is not None and copy.gm_msgid == stored.gm_msgid:
                            _change(copy.gm_labels, [gone] if gone else [], adding=False)
                            _change(copy.gm_labels, [label] if label else [], adding=True)
        copyuid = (f"[COPYUID {target.uidvalidity} {','.join(str(a) for a, _ in moved)} "
                   f"{','.join(str(b) for _, b in moved)}]" if moved else "")
        if not moving:
            self.send(f"{tag} OK {copyuid} (Success)".replace("  ", " "))
            return
        if moved:
            self.send(f"* OK {copyuid}")
        for uid, _ in reversed(moved):
            seq = sorted(source.messages).index(uid) + 1
            with self.server._lock:
                del source.messages[uid]
            self.send(f"* {seq} EXPUNGE")
        self.send(f"{tag} OK Success")

    def do_idle(self, tag, rest, literal) -> None:
        self.send("+ idling")
        while self.read_line().strip().upper() != b"DONE":
            pass
        self.send(f"{tag} OK IDLE terminated (Success)")

    def do_close(self, tag, rest, literal) -> None:
        self.selected = None
        self.send(f"{tag} OK Returned to authenticated state. (Success)")

    do_unselect = do_close


def _change(values: list[str], names: list[str], adding: bool) -> None:
    for name in names:
        if adding and name not in values:
            values.append(name)
        elif not adding and name in values:
            values.remove(name)


def _plain(decoded: bytes) -> tuple[str, str]:
    parts = decoded.decode("utf-8", "replace").split("\0")
    return (parts[1], parts[2]) if len(parts) == 3 else ("", "")


def _xoauth2(decoded: bytes) -> tuple[str, str]:
    """``user=<login>^Aauth=Bearer <token>^A^A`` (Google's and Microsoft's XOAUTH2)."""
    fields = dict(part.split("=", 1) for part in decoded.decode("utf-8", "replace").split("\1") if "=" in part)
    return fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")


def _date(raw: bytes) -> dt.date:
    with contextlib.suppress(TypeError, ValueError):
        return parsedate_to_datetime(message_from_bytes(raw)["Date"]).date()
    return dt.date.today()
