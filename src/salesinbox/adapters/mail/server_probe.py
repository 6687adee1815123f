"""The ``MailProbe`` port over the IMAP and SMTP login probes."""

from __future__ import annotations

from pathlib import Path

from salesinbox.adapters.mail.probe import MailServerEndpoint, probe_imap, probe_smtp
from salesinbox.domain.connection import ProbeFailure


class ServerProbe:
    def __init__(self, *, ca_file: Path | None = None, timeout: float = 15.0) -> None:
        self._ca = str(ca_file) if ca_file else None
        self._timeout = timeout

    async def probe_imap(self, server, provider: str) -> ProbeFailure | None:
        endpoint = MailServerEndpoint(server.host, server.port, server.security)
        return await probe_imap(
            endpoint, server.login, server.password, timeout=self._timeout, ca_path=self._ca, preset_key=provider,
            mechanism=server.mechanism,
        )

    async def probe_smtp(self, server, provider: str) -> ProbeFailure | None:
        endpoint = MailServerEndpoint(server.host, server.port, server.security)
        return await probe_smtp(
            endpoint, server.login, server.password, timeout=self._timeout, ca_path=self._ca, preset_key=provider,
            mechanism=server.mechanism,
        )
