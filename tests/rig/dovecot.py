"""A throwaway Dovecot 2.3 (IMAP + LMTP + submission) for integration tests.

Follows /work/shared/testing/RECIPES.md: ``dovecot -F -c <dir>/dovecot.conf``
runs as a child process with every path inside a fresh temp dir, so nothing
under /etc is read or changed. Start to greeting takes ~50 ms and stop a few ms,
but tests still share one per session and isolate themselves by user.

Quirks this module exists to encode, each seen in practice:

- The temp dir and every parent must be world-traversable: the login and auth
  processes run as unprivileged users and otherwise fail with "Temporary
  authentication failure" after a long wait.
- Mail processes run as ``nobody``; ``uid=root`` gives "Logged in, but
  initialization failed".
- ``auth_failure_delay = 0`` plus the anvil line switch off the auth penalty,
  without which every failed login slows the next ones by 2, 4, 8 ... 15 s.
- Dovecot's submission service cannot deliver by itself: it relays to an SMTP
  server (relaying straight to LMTP fails with 421). The rig runs a tiny relay
  (``tests.rig.smtp.LmtpRelay``) that hands each message back over LMTP.
- Dovecot re-reads a passwd-file when its mtime or size changes, but stats it
  at most once per wall-clock second, so a user appended to a shared file may
  stay unknown for up to a second. The rig keeps one passwd-file per user
  (``users/%u``): a new user's file has never been read, so ``add_user`` takes
  effect at the very next login, without a restart. A login for a user with
  no file is an ordinary authentication failure.
- Dovecot answers a failed login on its next 500 ms auth tick even with
  ``auth_failure_delay = 0``: negative tests cost about half a second each.

With ``tls=True`` the instance also serves IMAPS (``imaps_port``) and
submission over implicit TLS (``submissions_port``), offers STARTTLS on the
plain IMAP and submission ports, and writes a self-signed certificate whose
PEM (``ca_path``) a client can trust.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from tests.rig.smtp import LmtpRelay, free_ports
from tests.rig.tlscert import write_self_signed_cert

DOVECOT_BIN = "/usr/sbin/dovecot"
HOST = "127.0.0.1"
_PORT_NAMES = ("imap", "imaps", "lmtp", "submission", "submissions", "relay")
_START_ATTEMPTS = 3
_GREETING_POLL_TIMEOUT = 1.0


class _PortTaken(RuntimeError):
    """A port handed out as free was bound by someone else first."""


class Dovecot:
    """One Dovecot master process and its temp dir; see the module docstring."""

    def __init__(
        self,
        *,
        tls: bool = False,
        start_timeout: float = 15.0,
        capabilities: str | None = None,
        oauth2_introspection_url: str | None = None,
        max_connections: int | None = None,
        idle_check_seconds: int | None = None,
    ) -> None:
        """``capabilities`` replaces the IMAP CAPABILITY list (Dovecot's ``imap_capability``),
        e.g. to play a server without CONDSTORE and QRESYNC.

        ``oauth2_introspection_url`` adds Dovecot's oauth2 passdb (XOAUTH2 and
        OAUTHBEARER on IMAP and submission) in front of the password one: each
        token is POSTed there (RFC 7662 introspection) and the answer's
        ``email`` is the user. Passwords keep working.

        ``max_connections`` raises Dovecot's process limits (default 100
        processes per service: one per IMAP connection).

        ``idle_check_seconds`` sets how often an IMAP process in IDLE looks
        at its mailbox when it cannot be told of changes (Dovecot's
        ``mailbox_idle_check_interval``, 30 s by default). Dovecot learns of
        new mail through inotify, one instance per IMAP process, and the
        kernel allows 128 per user (``fs.inotify.max_user_instances``): past
        that many connections the rest fall back to this check."""
        self.tls = tls
        self.oauth2_introspection_url = oauth2_introspection_url
        self.max_connections = max_connections
        self.idle_check_seconds = idle_check_seconds
        self.capabilities = capabilities
        self.start_timeout = start_timeout
        self.directory: Path | None = None
        self._ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._relay: LmtpRelay | None = None
        self._ca_path: Path | None = None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        """Start Dovecot; return once the IMAP greeting has been received.

        Retried with fresh ports when one was taken between ``free_ports`` and
        the bind (a test run's own outgoing connections use that range too).
        """
        if self._process is not None:
            raise RuntimeError("Dovecot already started")
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once()
                return
            except _PortTaken:
                self.stop()
                if attempt == _START_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise

    def _start_once(self) -> None:
        self._prepare_directory()
        self._relay = LmtpRelay(self.host, self._ports["relay"], self.lmtp_port)
        try:
            self._relay.start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise _PortTaken(str(error)) from error
            raise
        self._process = _spawn(
            [DOVECOT_BIN, "-F", "-c", str(self._path("dovecot.conf"))], stderr_path=self._path("stderr.log")
        )
        self._wait_for_imap_greeting()

    def stop(self) -> None:
        """SIGTERM Dovecot and wait for it, stop the relay, remove the temp dir.

        Safe to call more than once and after a failed ``start``.
        """
        if self._process is not None:
            _terminate(self._process)
            self._process = None
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def restart(self, *, while_down: Callable[[], None] | None = None) -> None:
        """Stop the master process (every connection drops), run ``while_down``, start again.

        Same directory, ports, users and mail: what a mail server's restart
        looks like to its clients.
        """
        assert self._process is not None, "Dovecot not started"
        _terminate(self._process)
        self._process = None
        if while_down is not None:
            while_down()
        self._process = _spawn(
            [DOVECOT_BIN, "-F", "-c", str(self._path("dovecot.conf"))], stderr_path=self._path("stderr.log")
        )
        self._wait_for_imap_greeting()

    def drop_into_inbox(self, email: str, message_bytes: bytes) -> None:
        """Put a message straight into a user's Maildir INBOX (works while Dovecot is down).

        The user must have logged in once (that creates the Maildir). Written
        into tmp/ and renamed into new/, as Maildir delivery does.
        """
        maildir = self._path("mail") / email / "Maildir"
        name = f"{time.time_ns()}.rig{os.getpid()}.{len(message_bytes)}"
        partial = maildir / "tmp" / name
        partial.write_bytes(message_bytes)
        partial.chmod(0o644)
        partial.rename(maildir / "new" / name)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- endpoints --------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def imap_port(self) -> int:
        return self._ports["imap"]

    @property
    def lmtp_port(self) -> int:
        return self._ports["lmtp"]

    @property
    def submission_port(self) -> int:
        """Plain submission (RFC 6409); offers STARTTLS in TLS mode."""
        return self._ports["submission"]

    @property
    def imaps_port(self) -> int:
        """IMAP over implicit TLS (RFC 8314); TLS mode only."""
        self._require_tls("imaps_port")
        return self._ports["imaps"]

    @property
    def submissions_port(self) -> int:
        """Submission over implicit TLS (RFC 8314); TLS mode only."""
        self._require_tls("submissions_port")
        return self._ports["submissions"]

    @property
    def ca_path(self) -> Path:
        """The self-signed certificate PEM, to load as a client's CA; TLS mode only."""
        self._require_tls("ca_path")
        assert self._ca_path is not None, "Dovecot not started"
        return self._ca_path

    # -- users and mail ---------------------------------------------------

    def add_user(self, email: str, password: str) -> None:
        """Create a user whose login is ``email``; usable at the next login.

        Raises ValueError for an existing user: Dovecot would notice a changed
        password only within a second or so (see the module docstring).
        """
        _check_passwd_field("email", email)
        _check_passwd_field("password", password)
        path = self._path("users") / email
        if path.exists():
            raise ValueError(f"user {email} already exists")
        # Written aside then renamed, so auth never reads a half-written file.
        partial = self._path("users") / f".{email}.partial"
        partial.write_text(f"{email}:{{PLAIN}}{password}\n", encoding="utf-8")
        partial.chmod(0o644)
        partial.rename(path)

    def deliver(self, rcpt: str, message_bytes: bytes, *, mail_from: str = "rig@example.test") -> None:
        """Deliver one message to one recipient's INBOX over LMTP (RFC 2033).

        One recipient per call: LMTP answers DATA once per recipient and
        ``smtplib.LMTP`` reads only the first answer.
        """
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=10) as lmtp:
            lmtp.sendmail(mail_from, [rcpt], message_bytes)

    def log_text(self) -> str:
        """Dovecot's own log so far, for failure messages."""
        texts = []
        for name in ("stderr.log", "dovecot.log"):
            with contextlib.suppress(OSError):
                texts.append(self._path(name).read_text(errors="replace"))
        return "\n".join(texts)

    # -- internals --------------------------------------------------------

    def _path(self, name: str) -> Path:
        assert self.directory is not None, "Dovecot not started"
        return self.directory / name

    def _require_tls(self, what: str) -> None:
        if not self.tls:
            raise AttributeError(f"{what} exists only on Dovecot(tls=True)")

    def _prepare_directory(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="salesinbox-dovecot-"))
        _make_traversable(self.directory)
        mail = self.directory / "mail"
        mail.mkdir()
        shutil.chown(mail, "nobody", "nogroup")
        self._path("users").mkdir(mode=0o755)
        self._ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
        tls_lines = ""
        if self.tls:
            cert = write_self_signed_cert(self.directory)
            self._ca_path = cert.cert_path
            tls_lines = _tls_config(cert.cert_path, cert.key_path, self._ports)
        config = _base_config(self.directory, self._ports) + tls_lines
        if self.oauth2_introspection_url:
            config = _with_oauth2(config, self.directory, self.oauth2_introspection_url)
        if self.capabilities is not None:
            config += f"imap_capability = {self.capabilities}\n"
        if self.max_connections is not None:
            config += (f"default_process_limit = {self.max_connections}\n"
                       f"default_client_limit = {4 * self.max_connections}\n")
        if self.idle_check_seconds is not None:
            config += f"mailbox_idle_check_interval = {self.idle_check_seconds} secs\n"
        self._path("dovecot.conf").write_text(config)

    def _wait_for_imap_greeting(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            self._fail_if_exited()
            # Short reads: whoever holds the port may accept and never greet
            # (another process, if Dovecot lost the port race), and a failed
            # Dovecot must be noticed well before the deadline.
            wait = min(_GREETING_POLL_TIMEOUT, max(deadline - time.monotonic(), 0.01))
            if _read_greeting(self.host, self.imap_port, wait).startswith(b"* OK"):
                return
            time.sleep(0.02)  # polling interval while the listener comes up
        raise TimeoutError(f"Dovecot gave no IMAP greeting in {self.start_timeout}s\n{self.log_text()}")

    def _fail_if_exited(self) -> None:
        assert self._process is not None
        exited = _exit_status_unreaped(self._process.pid)
        if exited is not None:
            log = self.log_text()
            error = _PortTaken if "Address already in use" in log else RuntimeError
            raise error(f"Dovecot exited with status {exited}\n{log}")


# -- configuration ----------------------------------------------------------


def _base_config(d: Path, ports: dict[str, int]) -> str:
    return f"""\
instance_name = test-{ports["imap"]}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
listen = {HOST}
protocols = imap lmtp submission
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
postmaster_address = postmaster@example.test
hostname = mail.example.test
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u allow_all_users=yes
}}
mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
{_special_use_mailboxes()}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {ports["imap"]}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {ports["lmtp"]}
  }}
}}
service submission-login {{
  inet_listener submission {{
    address = {HOST}
    port = {ports["submission"]}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
submission_relay_host = {HOST}
submission_relay_port = {ports["relay"]}
submission_relay_trusted = yes
"""


def _with_oauth2(config: str, d: Path, introspection_url: str) -> str:
    """The oauth2 passdb first (it answers only XOAUTH2 / OAUTHBEARER), the passwd-file one after it."""
    (d / "oauth2.conf.ext").write_text(
        f"introspection_mode = post\n"
        f"introspection_url = {introspection_url}\n"
        "username_attribute = email\n"
        "active_attribute = active\n"
        "active_value = true\n"
        "force_introspection = yes\n"
    )
    oauth_passdb = (
        f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {d}/oauth2.conf.ext\n}}\n"
    )
    config = config.replace("auth_mechanisms = plain login\n", "auth_mechanisms = plain login xoauth2 oauthbearer\n")
    return config.replace("passdb {\n", oauth_passdb + "passdb {\n", 1)


def _special_use_mailboxes() -> str:
    """RFC 6154 folders, created and subscribed on first login."""
    blocks = []
    for name in ("Drafts", "Sent", "Trash", "Junk", "Archive"):
        blocks.append(f"  mailbox {name} {{\n    special_use = \\{name}\n    auto = subscribe\n  }}")
    return "\n".join(blocks)


def _tls_config(cert_path: Path, key_path: Path, ports: dict[str, int]) -> str:
    # Later settings override the base file's "ssl = no"; the extra listeners
    # merge into the services already declared above.
    return f"""\
ssl = yes
ssl_cert = <{cert_path}
ssl_key = <{key_path}
service imap-login {{
  inet_listener imaps {{
    address = {HOST}
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service submission-login {{
  inet_listener submissions {{
    address = {HOST}
    port = {ports["submissions"]}
    ssl = yes
  }}
}}
"""


# -- process and network helpers ---------------------------------------------


def _read_greeting(host: str, port: int, timeout: float) -> bytes:
    """The first line the server sends, or b"" if none came within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, sock.makefile("rb") as stream:
            return stream.readline()
    except OSError:
        return b""


def _spawn(argv: list[str], *, stderr_path: Path) -> subprocess.Popen[bytes]:
    """Start Dovecot's master as the leader of a new process group."""
    with stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, wait for the master, then sweep.

    Signalling only the master takes ~1.1 s: it stops its children one by one.
    Its children share its process group, so signalling the group at once
    ends everything in a few milliseconds.

    The master is reaped last, and nothing else here reaps it (no
    ``Popen.poll``): while it is an unreaped zombie its pid, and so the group
    id, cannot be reused, so the signals cannot reach a stranger's group.
    """
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _exit_status_unreaped(process.pid) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    _signal_group(process.pid, signal.SIGKILL)  # stragglers, or a master that ignored SIGTERM
    process.wait()
    # Children orphaned by the master are reaped by init, not by us: until it
    # gets to them they linger as zombies in the group. Wait for that, briefly.
    deadline = time.monotonic() + 10
    while _group_exists(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _exit_status_unreaped(pid: int) -> int | None:
    """The child's exit status if it has exited, without reaping it."""
    result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return None if result is None else result.si_status


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up once in the parent: the pre-exec hook runs between fork and exec,
# where loading libraries is unsafe if other threads (the SMTP relays) exist.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM Dovecot if pytest dies without cleaning up.

    Belt and braces for a pytest killed by SIGKILL or a crash: the fixtures
    already stop Dovecot on every normal and failing path. Linux sends the
    signal when the *thread* that started Dovecot ends, so start it from a
    long-lived thread (pytest's main thread, as the fixtures do), never from a
    worker thread that finishes before the tests do.
    """
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _make_traversable(directory: Path) -> None:
    directory.chmod(0o755)
    for parent in directory.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _check_passwd_field(what: str, value: str) -> None:
    # ':' and newlines would break the passwd-file line; '/' the file name.
    if not value or any(char in value for char in ":/\r\n") or value.startswith("."):
        raise ValueError(f"{what} must be non-empty, not start with '.', and contain no ':', '/' or newline")
