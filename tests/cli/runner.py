"""Running the installed `salesinbox` command as an operator would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).with_name("salesinbox")


def si(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1].strip()



def account_args(mailbox, *, address=None, password=None) -> list[str]:
    return ["account", "add", "--owner", "rep@acme.test", "--address", address or mailbox.address,
            "--imap", f"{mailbox.imap_host}:{mailbox.imap_port}", "--smtp", f"{mailbox.smtp_host}:{mailbox.smtp_port}",
            "--login", mailbox.login, "--password", password or mailbox.password, "--security", "none"]
