"""Running the installed `salesinbox` command as an operator would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.secrets_audit import record_dump, seeded

CLI = Path(sys.executable).with_name("salesinbox")


SECRET_OPTIONS = ("--password", "--admin-password")


def si(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI; the passwords it is given and the tokens it prints join the suite's secrets audit,
    and what it writes (but a token printed on purpose) is audited with the logs."""
    for option, value in zip(args, args[1:], strict=False):
        if option in SECRET_OPTIONS:
            seeded(value)
    result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=120)
    prints_a_token = args[:2] == ("token", "create") and result.returncode == 0
    if prints_a_token:
        seeded(last_line(result.stdout))
    record_dump(f"salesinbox {' '.join(args[:2])} stderr", result.stderr)
    if not prints_a_token:
        record_dump(f"salesinbox {' '.join(args[:2])} stdout", result.stdout)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1].strip()



def account_args(mailbox, *, address=None, password=None) -> list[str]:
    return ["account", "add", "--owner", "rep@acme.test", "--address", address or mailbox.address,
            "--imap", f"{mailbox.imap_host}:{mailbox.imap_port}", "--smtp", f"{mailbox.smtp_host}:{mailbox.smtp_port}",
            "--login", mailbox.login, "--password", password or mailbox.password, "--security", "none"]
