"""An SMTP server (RFC 5321, over real TCP) that can stop at one step of the dialogue and say so.

For crash tests: the test learns exactly where the client is, because the
server is holding it there. The steps, in the order a client meets them:

- ``greeting``: a connection was accepted; the 220 greeting has not gone out.
- ``MAIL`` / ``RCPT`` / ``DATA``: the command arrived; its reply has not gone out.
- ``body``: the first line of the message text arrived (after the 354).
- ``dot``: the final dot arrived, so the message is complete (counted in
  ``deliveries``); the reply to it has not gone out.
- ``QUIT``: the client asked to leave, which proves it read the reply to the dot.

``reached(step)`` waits, with a deadline, until some connection got there;
the server stops at ``pause_at`` until ``go()``. A stopped connection gives up
by itself after ``hold_for`` seconds, so a test that fails never leaves it
hanging. It accepts any AUTH and every recipient, and listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

STEPS = ("greeting", "MAIL", "RCPT", "DATA", "body", "dot", "QUIT")


class StepwiseSmtp:
    def __init__(self, *, pause_at: str | None = None, hold_for: float = 30.0) -> None:
        if pause_at is not None and pause_at not in STEPS:
            raise ValueError(f"no such step: {pause_at}")
        self.pause_at, self.hold_for = pause_at, hold_for
        self.deliveries: list[bytes] = []  # every message whose final dot arrived
        self.transactions = 0  # MAIL commands seen: a retry starts another
        self._reached = {step: asyncio.Event() for step in STEPS}
        self._go = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._go.set()
        self._server.close()
        await self._server.wait_closed()

    async def reached(self, step: str) -> None:
        """Until a connection gets to ``step``; callers put a deadline on it."""
        await self._reached[step].wait()

    def go(self) -> None:
        """Let the connection stopped at ``pause_at`` carry on (and any that gets there later)."""
        self._go.set()

    async def _step(self, step: str) -> None:
        self._reached[step].set()
        if step == self.pause_at:
            await asyncio.wait_for(self._go.wait(), self.hold_for)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._step("greeting")
            await self._reply(writer, b"220 stepwise ESMTP")
            await self._dialogue(reader, writer)
        except (OSError, TimeoutError):  # the client was killed, or the test gave up on it
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                await self._reply(writer, b"250-stepwise\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN")
            elif verb == b"AUTH":
                await self._reply(writer, b"235 2.7.0 Authenticated")
            elif verb in (b"MAIL", b"RCPT"):
                self.transactions += verb == b"MAIL"
                await self._step(verb.decode())
                await self._reply(writer, b"250 2.1.0 OK")
            elif verb == b"DATA":
                await self._step("DATA")
                await self._reply(writer, b"354 End data with <CR><LF>.<CR><LF>")
                if not await self._message(reader):
                    return  # the connection ended before the final dot: nothing was delivered
                await self._step("dot")
                await self._reply(writer, b"250 2.0.0 OK queued")
            elif verb == b"QUIT":
                await self._step("QUIT")
                await self._reply(writer, b"221 2.0.0 Bye")
                return
            else:
                await self._reply(writer, b"250 OK")

    async def _message(self, reader: asyncio.StreamReader) -> bool:
        lines: list[bytes] = []
        while (line := await reader.readline()) != b".\r\n":
            if not line.endswith(b"\n"):
                return False
            if not lines:
                await self._step("body")
            lines.append(line[1:] if line.startswith(b".") else line)
        self.deliveries.append(b"".join(lines))
        return True

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, text: bytes) -> None:
        writer.write(text + b"\r\n")
        await writer.drain()
