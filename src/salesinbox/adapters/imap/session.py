"""One IMAP connection, as the sync engine uses it (RFC 3501, 4551 CONDSTORE, 6154 SPECIAL-USE, 2177 IDLE).

Blocking calls (imapclient) meant to run in a worker thread; every socket
operation has a timeout, so a server that stops answering raises instead of
hanging the sync. Quirks handled here:

- Folder roles come from SPECIAL-USE flags (``\\Sent``, ``\\Drafts`` ...), INBOX
  by name; Gmail's ``\\All`` is "All Mail".
- CHANGEDSINCE is only ever sent when CONDSTORE is advertised (Yahoo answers
  it with an error otherwise), after ``ENABLE CONDSTORE``; a HIGHESTMODSEQ a
  server reports without CONDSTORE (Yahoo does, on SELECT) is ignored.
- The provider profile (domain/provider_profiles.py) is read from the
  greeting and CAPABILITY at connect; its connection cap is kept per account
  by ``gate.GATE`` (a session waits for a place rather than be refused).
- A refusal keeps the server's own text (``ImapError.server_text``, the
  password scrubbed out) so the sync can read it as a provider's error.
- Every SELECT is read-only (EXAMINE): syncing never sets \\Seen or expunges.
- UIDs are only meaningful with the UIDVALIDITY they were read under; callers
  compare it on every select before using stored UIDs.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imapclient import _parse_untagged_response, join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from salesinbox.adapters.imap.gate import GATE
from salesinbox.domain.provider_errors import TroubleKind, kind_of
from salesinbox.domain.provider_profiles import (
    ProviderProfile,
    detect_profile,
    hinted_profile,
    may_use_changedsince,
)
from salesinbox.mime import lean

IDLE_POLL = 2.0  # seconds between looks at should_stop during IDLE

ROLE_FLAGS = {
    b"\\sent": "sent",
    b"\\drafts": "drafts",
    b"\\trash": "trash",
    b"\\junk": "junk",
    b"\\archive": "archive",
    b"\\all": "all",
}


class ImapError(Exception):
    """A failure talking to the server, in words fit for the account's health.

    ``server_text`` is what the server answered (NO, BAD or BYE text), when it
    answered at all; None for a dropped connection or a timeout. ``provider``
    names the server's profile as far as it was known.
    """

    def __init__(self, message: str, server_text: str | None = None, provider: str = "the mail server") -> None:
        super().__init__(message)
        self.server_text = server_text
        self.provider = provider  # the profile's name, for plain words: "Gmail", "Microsoft 365"


class ImapAuthError(ImapError):
    pass


_REPR = re.compile(r"\bb(['\"])(.*?)\1")
# imaplib: "FETCH command error: BAD [b'...']"; imapclient: "fetch failed: ..."
_WRAPPERS = (
    re.compile(r"^\w+ command error: (?:BAD|NO) \[(.*)\]$", re.DOTALL),
    re.compile(r"^\w+ failed: (.*)$", re.DOTALL),
)


def server_words(exc: BaseException, password: str = "") -> str:
    """The server's text inside a client library's error (``b'[ALERT] ...'`` unwrapped), the password scrubbed."""
    text = _REPR.sub(lambda m: m[2], str(exc)).strip()
    for wrapper in _WRAPPERS:
        found = wrapper.match(text)
        if found:
            text = found[1].strip()
    return text.replace(password, "***") if password else text


@dataclass(frozen=True)
class FolderInfo:
    name: str
    role: str  # inbox, sent, drafts, trash, junk, archive, all, other


@dataclass(frozen=True)
class Landed:
    """Where moved or copied messages landed, as the server said (UIDPLUS COPYUID, RFC 4315 section 3)."""

    uidvalidity: int
    uids: dict[int, int]  # source UID -> UID in the destination folder


_COPYUID = re.compile(r"(?:\[COPYUID )?(\d+) ([\d:,]+) ([\d:,]+)")
_APPENDUID = re.compile(r"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_MOST_LANDED = 100_000  # more than we ever move at once: a server that says so is not believed


def _uid_set(text: str) -> list[int] | None:
    uids: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        a, b = sorted((int(low), int(high or low)))
        if b - a + len(uids) > _MOST_LANDED:
            return None
        uids.extend(range(a, b + 1))
    return uids


def landed_from(code: bytes | str | None) -> Landed | None:
    """Parse a COPYUID response code ("uidvalidity source-set destination-set"); None if absent or odd.

    The two sets name the messages in the same order (RFC 4315); a range may be
    written high:low, so each is read in ascending order, as servers number them.
    """
    text = code.decode("ascii", "replace") if isinstance(code, bytes) else (code or "")
    found = _COPYUID.match(text.strip())
    if not found:
        return None
    source, target = _uid_set(found[2]), _uid_set(found[3])
    if source is None or target is None or len(source) != len(target):
        return None
    return Landed(int(found[1]), dict(zip(source, target, strict=True)))


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int | None
    exists: int
    highestmodseq: int | None


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes  # the whole message, or a skeleton without its large attachments (``lean`` set)
    flags: tuple[str, ...]
    modseq: int | None
    gm_thrid: str | None
    size: int | None = None  # the message's size on the server (RFC822.SIZE), when read; else len(raw)
    lean: lean.LeanPlan | None = None  # a skeleton: these parts were left on the server


_FETCH_HEAD = re.compile(rb"\d+ \((.*)BODY\[\] \{(\d+)\}\Z", re.DOTALL)
_FETCH_ITEM = re.compile(rb" *(UID|MODSEQ|X-GM-THRID|FLAGS) (\d+|\(\d+\)|\([^()\"{}]*\)) *")
_Fetched = tuple[bytes, tuple[str, ...], int | None, str | None]  # raw, flags, modseq, Gmail thread id


def _read_fetched(data: list) -> dict[int, _Fetched] | None:
    """The FETCH answers of ``fetch_raw``, read with two regular expressions; None for anything else.

    imapclient's general parser tokenises every response byte by byte: a third
    of a sync's fetching time. Our answers have one shape -- ``n (UID u FLAGS
    (...) MODSEQ (m) BODY[] {size}`` then the literal, items possibly after it
    -- so this reads them directly and hands anything unexpected (another
    item, a quoted string, an unsolicited answer it cannot place) back to the
    general parser, untouched.
    """
    found: dict[int, _Fetched] = {}
    position = 0
    while position < len(data):
        entry = data[position]
        position += 1
        if not isinstance(entry, tuple) or len(entry) != 2:
            return None
        head, raw = entry
        match = _FETCH_HEAD.match(head)
        if match is None or int(match[2]) != len(raw):
            return None
        items = match[1]
        if position < len(data) and isinstance(data[position], bytes) and data[position][:1] in (b")", b" "):
            items += data[position]
            position += 1
        if not items.endswith(b")"):
            return None
        values: dict[bytes, bytes] = {}
        at, end = 0, len(items) - 1
        while at < end:
            item = _FETCH_ITEM.match(items, at, end)
            if item is None:
                return None
            values[item[1]] = item[2]
            at = item.end()
        if b"UID" not in values or not values[b"UID"].isdigit():
            return None
        flags = tuple(f.decode("utf-8", "replace") for f in values.get(b"FLAGS", b"()")[1:-1].split())
        modseq = values.get(b"MODSEQ")
        thrid = values.get(b"X-GM-THRID")
        found[int(values[b"UID"])] = (
            raw,
            flags,
            int(modseq.strip(b"()")) if modseq is not None else None,
            thrid.decode("ascii") if thrid is not None else None,
        )
    return found


def _fetched_by_imapclient(parsed: dict) -> dict[int, _Fetched]:
    found = {}
    for uid, d in parsed.items():
        if b"BODY[]" in d:
            thrid = d.get(b"X-GM-THRID")
            found[uid] = (
                bytes(d[b"BODY[]"]),
                _flag_text(d.get(b"FLAGS", ())),
                d.get(b"MODSEQ", (None,))[0],
                str(thrid) if thrid is not None else None,
            )
    return found


def _flag_text(flags) -> tuple[str, ...]:
    return tuple(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in flags)


def _label_text(label) -> str:
    return decode_utf7(label) if isinstance(label, bytes) else str(label)


def _uid_ranges(line: bytes | str) -> list[tuple[int, int]]:
    """``(EARLIER) 3:5,9`` -> [(3, 5), (9, 9)]; anything unreadable is skipped."""
    text = line.decode("ascii", "replace") if isinstance(line, bytes) else str(line)
    ranges = []
    for part in text.replace("(EARLIER)", "").strip().split(","):
        low, _, high = part.strip().partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            a, b = int(low), int(high or low)
            ranges.append((min(a, b), max(a, b)))
    return ranges


def _message_id(data: dict) -> str | None:
    """The Message-ID out of a FETCH of ``BODY[HEADER.FIELDS (MESSAGE-ID)]``, without its angle brackets."""
    block = next((v for k, v in data.items() if isinstance(k, bytes) and k.startswith(b"BODY[HEADER")), b"") or b""
    for line in bytes(block).decode("ascii", "replace").replace("\r\n ", " ").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "message-id" and value.strip():
            return value.strip().strip("<>")
    return None


def _shutdown(client: IMAPClient | None) -> None:
    if client is not None:
        try:
            client.shutdown()
        except OSError:
            pass


class ImapSession:
    def __init__(
        self,
        host: str,
        port: int,
        security: str,
        login: str,
        password: str,
        *,
        timeout: float = 60.0,
        ca_file: str | None = None,
        mechanism: str = "password",
    ) -> None:
        self._args = (host, port, security, login, password, timeout, ca_file)
        self._mechanism = mechanism  # "password" (LOGIN) or "xoauth2" (password holds an OAuth access token)
        self._client: IMAPClient | None = None
        self._writing: tuple[str, int] | None = None  # the folder opened for writing, and its UIDVALIDITY
        self.capabilities: frozenset[bytes] = frozenset()
        # close() may run in another thread while connect() is still logging in (the
        # task awaiting it was cancelled): the late connection is then shut, not leaked.
        self._lock = threading.Lock()
        self._closed = False
        self.profile: ProviderProfile = hinted_profile(host)
        self._account = (host.lower(), port, login.lower())
        self._in_gate = False

    # ---- connection ----------------------------------------------------------------

    def connect(self) -> ImapSession:
        host, port, security, login, password, timeout, ca_file = self._args
        if not GATE.enter(self._account, self.profile.max_connections, timeout):
            raise ImapError(
                f"All {self.profile.max_connections} connections this app may open to {login} are in use; "
                "waiting for one to close took too long."
            )
        self._in_gate = True
        try:
            return self._connect()
        except BaseException:
            self._leave_gate()
            raise

    def _connect(self) -> ImapSession:
        host, port, security, login, password, timeout, ca_file = self._args
        context = ssl.create_default_context(cafile=ca_file) if security != "none" else None
        client = None
        try:
            client = IMAPClient(host, port=port, ssl=security == "tls", ssl_context=context, timeout=timeout)
            # imapclient sets imaplib's debug level to 5, which makes imaplib format
            # the repr of every response (whole messages included) for a logger that
            # drops it: 80 % of a FETCH's time. Our own logging does not need it.
            client._imap.debug = 0
            # the greeting and the capabilities imaplib read before login already say who this is
            profile = self.profile = detect_profile(client._imap.capabilities, client.welcome or b"", host)
            if security == "starttls":
                client.starttls(context)
            if self._mechanism == "xoauth2":
                client.oauth2_login(login, password)  # AUTHENTICATE XOAUTH2 (Google's and Microsoft's SASL)
            else:
                client.login(login, password)
            capabilities = frozenset(c.upper() for c in client.capabilities())
            profile = detect_profile(capabilities | set(client._imap.capabilities), client.welcome or b"", host)
            if b"QRESYNC" in capabilities:
                client.enable("QRESYNC")  # implies CONDSTORE (RFC 7162 3.2.3)
            elif b"CONDSTORE" in capabilities:
                client.enable("CONDSTORE")
        except LoginError as exc:
            _shutdown(client)
            said, name = server_words(exc, password), self.profile.name
            if isinstance(exc.__context__, IMAPClientAbortError):  # not a refusal: the connection dropped in LOGIN
                raise ImapError(f"Could not talk to the IMAP server {host}:{port}: {said}", said, name) from exc
            if kind_of(said) in (TroubleKind.AUTH, TroubleKind.WEB_LOGIN, TroubleKind.TRANSIENT):
                raise ImapAuthError("The server refused the user name or password.", said, name) from exc
            # a refusal that is not about the password: too many connections, quota, throttling
            raise ImapError(f"The IMAP server {host}:{port} refused the login: {said}", said, name) from exc
        except IMAPClientError as exc:
            _shutdown(client)
            said, name = server_words(exc, password), self.profile.name
            raise ImapError(f"Could not talk to the IMAP server {host}:{port}: {said}", said, name) from exc
        except OSError as exc:
            _shutdown(client)
            raise ImapError(f"Could not talk to the IMAP server {host}:{port}: {exc}") from exc
        with self._lock:
            if not self._closed:
                self._client, self.capabilities, self.profile = client, capabilities, profile
                GATE.learn(self._account, profile.max_connections)
                return self
        _shutdown(client)
        raise ImapError("The connection was closed while it was being opened.")

    def _leave_gate(self) -> None:
        if self._in_gate:
            self._in_gate = False
            GATE.leave(self._account)

    def has(self, capability: bytes) -> bool:
        return capability.upper() in self.capabilities

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (OSError, IMAPClientError):
            _shutdown(client)
        finally:
            self._leave_gate()

    def __enter__(self) -> ImapSession:
        return self.connect()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise ImapError("not connected")
        return self._client

    # ---- folders ------------------------------------------------------------------

    def folders(self) -> list[FolderInfo]:
        found = []
        for flags, _delimiter, name in self._call(self.client.list_folders):
            lowered = {f.lower() for f in flags}
            if b"\\noselect" in lowered or b"\\nonexistent" in lowered:
                continue
            role = (
                "inbox"
                if name.upper() == "INBOX"
                else next((r for flag, r in ROLE_FLAGS.items() if flag in lowered), "other")
            )
            found.append(FolderInfo(name, role))
        return found

    def examine(self, name: str) -> FolderStatus:
        info = self._call(self.client.select_folder, name, readonly=True)
        # Yahoo reports HIGHESTMODSEQ without CONDSTORE; trusting it would lead to CHANGEDSINCE, which it refuses
        modseq = info.get(b"HIGHESTMODSEQ") if may_use_changedsince(self.capabilities) else None
        return FolderStatus(
            uidvalidity=int(info[b"UIDVALIDITY"]),
            uidnext=int(info[b"UIDNEXT"]) if b"UIDNEXT" in info else None,
            exists=int(info.get(b"EXISTS", 0)),
            highestmodseq=int(modseq) if modseq is not None else None,
        )

    def examine_numbered(self, name: str, uidvalidity: int) -> FolderStatus:
        """EXAMINE, refusing a folder renumbered since its UIDs were read (UIDVALIDITY): those UIDs mean nothing now."""
        status = self.examine(name)
        if status.uidvalidity != uidvalidity:
            raise ImapError(
                f"The numbering of “{name}” changed during the sync (UIDVALIDITY); "
                "the next pass reads the folder again."
            )
        return status

    # ---- reading ------------------------------------------------------------------

    def uids(self, since: dt.date | None = None) -> list[int]:
        criteria = ["SINCE", since] if since else ["ALL"]
        return sorted(self._call(self.client.search, criteria))

    def uids_from(self, first: int, since: dt.date | None = None) -> list[int]:
        """UIDs >= ``first`` (``first:*`` always matches the last message, so it is filtered)."""
        criteria = ["UID", f"{first}:*", *(["SINCE", since] if since else [])]
        return sorted(uid for uid in self._call(self.client.search, criteria) if uid >= first)

    def changes_and_vanished(
        self, uids: list[int], modseq: int
    ) -> tuple[dict[int, tuple[tuple[str, ...], int | None]], set[int]]:
        """RFC 7162 QRESYNC: flags of ``uids`` changed after ``modseq``, and which of them were expunged since.

        The expunged ones come as ``* VANISHED (EARLIER) <uid set>``, which
        imaplib keeps among its untagged responses; only UIDs asked for count.
        """
        if not self.has(b"QRESYNC"):
            raise ImapError("VANISHED without QRESYNC")
        changed: dict[int, tuple[tuple[str, ...], int | None]] = {}
        vanished: set[int] = set()
        untagged = self.client._imap.untagged_responses
        for start in range(0, len(uids), 2000):
            chunk = uids[start : start + 2000]
            untagged.pop("VANISHED", None)
            data = self._call(
                self.client.fetch, chunk, [b"FLAGS", b"MODSEQ"], modifiers=[f"CHANGEDSINCE {modseq}", "VANISHED"]
            )
            changed.update(
                {uid: (_flag_text(d.get(b"FLAGS", ())), d.get(b"MODSEQ", (None,))[0]) for uid, d in data.items()}
            )
            ranges = [r for line in untagged.pop("VANISHED", []) for r in _uid_ranges(line)]
            vanished.update(uid for uid in chunk if any(low <= uid <= high for low, high in ranges))
        return changed, vanished

    def flags(self, uids: list[int]) -> dict[int, tuple[tuple[str, ...], int | None]]:
        if not uids:
            return {}
        items = [b"FLAGS", b"MODSEQ"] if self.has(b"CONDSTORE") else [b"FLAGS"]
        data = self._call(self.client.fetch, uids, items)
        return {uid: (_flag_text(d.get(b"FLAGS", ())), d.get(b"MODSEQ", (None,))[0]) for uid, d in data.items()}

    def changed_since(self, uids: list[int], modseq: int) -> dict[int, tuple[tuple[str, ...], int | None]]:
        """Flags of those ``uids`` changed after ``modseq`` (RFC 7162 CHANGEDSINCE); needs CONDSTORE.

        imapclient filters FETCH results by the UIDs asked for, so the set is
        spelled out (in chunks) rather than sent as ``1:*``.
        """
        if not self.has(b"CONDSTORE"):
            raise ImapError("CHANGEDSINCE without CONDSTORE")
        changed = {}
        for start in range(0, len(uids), 2000):
            data = self._call(
                self.client.fetch,
                uids[start : start + 2000],
                [b"FLAGS", b"MODSEQ"],
                modifiers=[f"CHANGEDSINCE {modseq}"],
            )
            changed.update(
                {uid: (_flag_text(d.get(b"FLAGS", ())), d.get(b"MODSEQ", (None,))[0]) for uid, d in data.items()}
            )
        return changed

    def uids_changed_since(self, modseq: int) -> list[int]:
        """UIDs of every message whose flags changed, or that arrived, after ``modseq`` (RFC 7162
        SEARCH MODSEQ; needs CONDSTORE). Expunged ones are not among them."""
        if not self.has(b"CONDSTORE"):
            raise ImapError("SEARCH MODSEQ without CONDSTORE")
        return sorted(self._call(self.client.search, ["MODSEQ", str(modseq + 1)]))

    def fetch_raw(self, uids: list[int]) -> Iterator[FetchedMessage]:
        """Whole messages (BODY.PEEK[]: never sets \\Seen) with their flags."""
        if not uids:
            return
        items = [b"BODY.PEEK[]", b"FLAGS"]
        if self.has(b"CONDSTORE"):
            items.append(b"MODSEQ")
        gmail = self.has(b"X-GM-EXT-1")
        if gmail:
            items.append(b"X-GM-THRID")
        data = self._call(self._fetch_untagged, uids, items)
        found = _read_fetched(data)
        if found is None:  # something our reader does not know: imapclient's full parser reads it
            found = _fetched_by_imapclient(parse_fetch_response(data, self.client.normalise_times, True))
        for uid in uids:
            item = found.get(uid)
            if item is not None:  # else expunged between SEARCH and FETCH
                yield FetchedMessage(uid, *item)

    def fetch_mail(self, uids: list[int]) -> Iterator[FetchedMessage]:
        """Messages to store: whole up to ``lean.LEAN_OVER`` bytes; a larger one as a skeleton (``mime.lean``)
        whose large attachments stay on the server, fetched when someone opens them. A message whose
        structure the skeleton cannot follow is fetched whole. Never sets \\Seen."""
        if not uids:
            return
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 2000):
            answer = self._call(self.client.fetch, uids[start : start + 2000], [b"RFC822.SIZE"])
            sizes.update({uid: d[b"RFC822.SIZE"] for uid, d in answer.items() if b"RFC822.SIZE" in d})
        large = [uid for uid in uids if sizes.get(uid, 0) > lean.LEAN_OVER]
        skeletons: dict[int, FetchedMessage] = {}
        if large:
            structures = self._call(self.client.fetch, large, [b"BODYSTRUCTURE"])
            for uid in large:
                structure = structures.get(uid, {}).get(b"BODYSTRUCTURE")
                planned = lean.plan(structure) if structure is not None else None
                skeleton = self._fetch_skeleton(uid, structure, planned) if planned is not None else None
                if skeleton is not None:
                    skeletons[uid] = skeleton
        whole = {item.uid: item for item in self.fetch_raw([uid for uid in uids if uid not in skeletons])}
        for uid in uids:
            item = skeletons.get(uid) or whole.get(uid)
            if item is not None:  # else expunged meanwhile
                yield replace(item, size=sizes.get(uid) or len(item.raw))

    def _fetch_skeleton(self, uid: int, structure, planned: lean.LeanPlan) -> FetchedMessage | None:
        """The skeleton of one message, if its sections assemble into a message that parses as planned."""
        items = [b"BODY.PEEK[%s]" % s.encode("ascii") for s in planned.sections] + [b"FLAGS"]
        if self.has(b"CONDSTORE"):
            items.append(b"MODSEQ")
        if self.has(b"X-GM-EXT-1"):
            items.append(b"X-GM-THRID")
        answer = self._call(self.client.fetch, [uid], items).get(uid)
        if answer is None:
            return None
        sections = {}
        for section in planned.sections:
            value = answer.get(b"BODY[%s]" % section.encode("ascii"))
            if value is None:
                return None
            sections[section] = bytes(value)
        raw = lean.assemble(structure, sections)
        if raw is None or not lean.trusted(raw, planned):
            return None
        thrid = answer.get(b"X-GM-THRID")
        return FetchedMessage(
            uid,
            raw,
            _flag_text(answer.get(b"FLAGS", ())),
            answer.get(b"MODSEQ", (None,))[0],
            str(thrid) if thrid is not None else None,
            lean=planned,
        )

    def fetch_part(self, uid: int, part_id: str) -> bytes | None:
        """One body part of a message in the examined folder, as a message of its own: the part's MIME
        header and its (still encoded) body; None if the UID or the part is gone (or empty: nothing to give)."""
        section = part_id.encode("ascii")
        answer = self._call(self.client.fetch, [uid], [b"BODY.PEEK[%s.MIME]" % section, b"BODY.PEEK[%s]" % section])
        found = answer.get(uid) or {}
        header, body = found.get(b"BODY[%s.MIME]" % section), found.get(b"BODY[%s]" % section)
        if header is None or body is None or not (bytes(header).strip() or body):  # Dovecot: "" for no such part
            return None
        return lean.header_block(bytes(header)) + bytes(body)

    def _fetch_untagged(self, uids: list[int], items: list[bytes]) -> list:
        """UID FETCH as imapclient's ``fetch`` sends it, answering imaplib's raw untagged data
        (header lines and literals) for ``_read_fetched``."""
        imap = self.client._imap
        tag = imap._command("UID", "FETCH", join_message_ids(uids), seq_to_parenstr_upper(items))
        typ, data = imap._command_complete("FETCH", tag)
        self.client._checkok("fetch", typ, data)
        return imap._untagged_response(typ, data, "FETCH")[1]

    def gmail_places(self, uids: list[int]) -> dict[int, tuple[int, tuple[str, ...], int | None]]:
        """Gmail: each UID's X-GM-MSGID (the message's id across every folder of the account), flags and modseq.

        No bodies: a message already stored under this id from another folder
        (All Mail, INBOX ...) needs only its place recorded here.
        """
        items = [b"X-GM-MSGID", b"FLAGS", *([b"MODSEQ"] if self.has(b"CONDSTORE") else [])]
        found = {}
        for start in range(0, len(uids), 2000):
            data = self._call(self.client.fetch, uids[start : start + 2000], items)
            found.update(
                {
                    uid: (int(d[b"X-GM-MSGID"]), _flag_text(d.get(b"FLAGS", ())), d.get(b"MODSEQ", (None,))[0])
                    for uid, d in data.items()
                    if b"X-GM-MSGID" in d
                }
            )
        return found

    def gmail_labels(self, uids: list[int]) -> dict[int, tuple[int, tuple[str, ...]]]:
        """Gmail: each UID's X-GM-MSGID and X-GM-LABELS (names decoded from modified UTF-7, system ones keep ``\\``)."""
        found = {}
        for start in range(0, len(uids), 2000):
            data = self._call(self.client.fetch, uids[start : start + 2000], [b"X-GM-MSGID", b"X-GM-LABELS"])
            found.update(
                {
                    uid: (int(d[b"X-GM-MSGID"]), tuple(_label_text(x) for x in d.get(b"X-GM-LABELS", ())))
                    for uid, d in data.items()
                    if b"X-GM-MSGID" in d
                }
            )
        return found

    def fetch_one(self, uid: int) -> bytes | None:
        """One whole message (BODY.PEEK[]: never sets \\Seen) from the examined folder; None if the UID is gone."""
        data = self._call(self.client.fetch, [uid], [b"BODY.PEEK[]"])
        found = data.get(uid) or {}
        return bytes(found[b"BODY[]"]) if b"BODY[]" in found else None

    # ---- writing ------------------------------------------------------------------

    def has_message_id(self, folder: str, message_id: str) -> bool:
        """Whether ``folder`` holds a message with this Message-ID header (SEARCH HEADER)."""
        self._call(self.client.select_folder, folder, readonly=True)
        return bool(self._call(self.client.search, ["HEADER", "Message-ID", message_id]))

    def append(self, folder: str, raw: bytes, flags: tuple[bytes, ...] = (b"\\Seen",)) -> tuple[int, int] | None:
        """APPEND; returns (UIDVALIDITY, UID) of the new message where the server says (UIDPLUS APPENDUID)."""
        answer = self._call(self.client.append, folder, raw, flags=flags)
        text = answer.decode("ascii", "replace") if isinstance(answer, bytes) else str(answer or "")
        found = _APPENDUID.search(text) if self.has(b"UIDPLUS") else None
        return (int(found[1]), int(found[2])) if found else None

    def uids_with_header(self, name: str, value: str) -> list[int]:
        """UIDs in the selected folder whose header ``name`` contains ``value`` (SEARCH HEADER, a substring match)."""
        return sorted(self._call(self.client.search, ["HEADER", name, value]))

    def open_for_writing(self, folder: str) -> int:
        """SELECT ``folder`` read-write; returns its UIDVALIDITY (the caller compares it to the stored one)."""
        info = self._call(self.client.select_folder, folder)
        self._writing = (folder, int(info[b"UIDVALIDITY"]))
        return self._writing[1]

    def open_for_keywords(self, folder: str) -> tuple[int, bool]:
        """SELECT ``folder`` read-write; its UIDVALIDITY, and whether new keywords may be stored in it.

        New keywords are allowed when ``PERMANENTFLAGS`` holds ``\\*`` (RFC 3501
        section 7.1); Dovecot's Maildir drops it once a folder has 26 keywords.
        """
        info = self._call(self.client.select_folder, folder)
        permanent = {bytes(f) if isinstance(f, bytes) else str(f).encode() for f in info.get(b"PERMANENTFLAGS", ())}
        self._writing = (folder, int(info[b"UIDVALIDITY"]))
        return self._writing[1], b"\\*" in permanent

    def set_flags(self, uids: list[int], flags: list[str], *, add: bool) -> None:
        """Add or remove flags on UIDs of the folder opened for writing."""
        if uids:
            method = self.client.add_flags if add else self.client.remove_flags
            self._call(method, uids, [f.encode() for f in flags], silent=True)

    def set_gmail_labels(self, uids: list[int], names: list[str], *, add: bool) -> None:
        """Gmail: add or remove labels (X-GM-LABELS, by name) on UIDs of the folder opened for writing."""
        if uids and names:
            method = self.client.add_gmail_labels if add else self.client.remove_gmail_labels
            self._call(method, uids, names, silent=True)

    def rename_label(self, before: str, after: str) -> bool:
        """Gmail: RENAME a label (a label is a folder there); False when the account has no label of that name."""
        try:
            self._call(self.client.rename_folder, before, after)
        except ImapError as exc:
            if "NONEXISTENT" in str(exc).upper() or "NOT FOUND" in str(exc).upper():
                return False
            raise
        return True

    def move(self, uids: list[int], destination: str) -> Landed | None:
        """MOVE (RFC 6851) where offered, else COPY, flag \\Deleted and expunge those UIDs only.

        Returns the UIDs the messages got in ``destination`` when the server
        says (UIDPLUS): with MOVE in an untagged ``OK [COPYUID ...]``, with
        COPY in the tagged answer; imaplib keeps both codes among its untagged
        responses, where ``_landing`` reads them.
        """
        if not uids:
            return None
        if self.has(b"MOVE"):
            return self._landing(self.client.move, uids, destination)
        copied = self._not_yet_in(destination, uids)
        landed = self._landing(self.client.copy, copied, destination) if copied else None
        self.destroy(uids)
        return landed

    def copy(self, uids: list[int], destination: str) -> Landed | None:
        """COPY: the messages stay here and get a place in ``destination`` (Gmail: its label); their UIDs there
        where the server says (UIDPLUS)."""
        return self._landing(self.client.copy, uids, destination) if uids else None

    def _landing(self, command, uids: list[int], destination: str) -> Landed | None:
        """Run UID MOVE or UID COPY; the COPYUID code of its answer, tagged or untagged (imaplib keeps both
        among its untagged responses, and imapclient returns neither)."""
        responses = self.client._imap  # noqa: SLF001 - the only place imapclient keeps response codes
        responses.response("COPYUID")  # drop one an earlier command may have left
        self._call(command, uids, destination)
        _, codes = responses.response("COPYUID")
        return landed_from(codes[-1]) if codes and codes[-1] and self.has(b"UIDPLUS") else None

    def _not_yet_in(self, destination: str, uids: list[int]) -> list[int]:
        """The UIDs whose message ``destination`` does not hold yet (by Message-ID); the source is selected again.

        COPY and the EXPUNGE after it are two commands: a connection lost
        between them leaves the message in both folders, and the move tried
        again would copy it a second time. A message without a Message-ID is
        always copied. The source must come back under the UIDVALIDITY it was
        opened with, else nothing is written (its UIDs would name other messages).
        """
        if self._writing is None:
            raise ImapError("no folder opened for writing")
        source, uidvalidity = self._writing
        headers = self._call(self.client.fetch, uids, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        ids = {uid: _message_id(d) for uid, d in headers.items()}
        self._call(self.client.select_folder, destination, readonly=True)
        search = self.client.search
        there = {uid for uid, found in ids.items() if found and self._call(search, ["HEADER", "Message-ID", found])}
        if self.open_for_writing(source) != uidvalidity:
            raise ImapError(f"The folder {source} was renumbered by the server while messages were being moved.")
        return [uid for uid in uids if uid not in there]

    def destroy(self, uids: list[int]) -> None:
        """Delete for good: \\Deleted, then UID EXPUNGE of exactly these UIDs (UIDPLUS), else EXPUNGE."""
        if not uids:
            return
        self._call(self.client.delete_messages, uids, silent=True)
        if self.has(b"UIDPLUS"):
            self._call(self.client.uid_expunge, uids)
        else:
            self._call(self.client.expunge)

    # ---- push --------------------------------------------------------------------

    def idle(self, seconds: float, should_stop: Callable[[], bool] | None = None) -> frozenset[str]:
        """Wait in IDLE up to ``seconds``; what the server reported, by kind (``EXISTS``, ``RECENT``,
        ``FETCH`` (flags), ``EXPUNGE`` ...), empty when nothing changed.

        With ``should_stop``, the wait looks at it every ``IDLE_POLL`` seconds
        and ends early when it answers True (the socket only waits in between:
        nothing is sent to the server).
        """
        client = self.client
        self._call(client.idle)
        responses: list = []
        try:
            deadline = time.monotonic() + seconds
            # What the server said along with "+ idling" (a change made just before IDLE began) may sit
            # in the reader's buffer already, where polling the socket would never see it.
            responses = self._call(self._buffered_responses)
            while not responses and (remaining := deadline - time.monotonic()) > 0:
                if should_stop is not None and should_stop():
                    break
                step = remaining if should_stop is None else min(IDLE_POLL, remaining)
                started = time.monotonic()
                responses = self._call(client.idle_check, timeout=step)
                if not responses and time.monotonic() - started < step / 2:
                    # Readable yet no line: imapclient swallows EOF here. DONE below
                    # then either fails (the connection is gone) or ends this IDLE early.
                    break
        finally:
            _text, late = self._call(client.idle_done)  # what came while DONE was on its way counts too
        return frozenset(_news_kind(r) for r in [*responses, *late])

    def _buffered_responses(self) -> list:
        """Untagged responses already read from the socket into imaplib's buffer, parsed as idle_check does."""
        imap = self.client._imap
        sock = imap.sock
        timeout = sock.gettimeout()
        sock.setblocking(False)  # an empty buffer then makes peek give up at once instead of waiting for the server

        def ahead() -> bytes:
            try:
                return imap.file.peek(1)  # for TLS this also reads what the TLS layer decrypted already
            except (BlockingIOError, ssl.SSLWantReadError):  # nothing there (a TLS socket says so by raising)
                return b""

        try:
            found = []
            while b"\n" in ahead():  # whole lines only: the rest of a line comes through the socket
                found.append(_parse_untagged_response(imap._get_line()))
            return found
        finally:
            sock.settimeout(timeout)

    def _call(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except IMAPClientError as exc:
            said = server_words(exc, self._args[4])
            raise ImapError(f"The IMAP server stopped answering: {said}", said, self.profile.name) from exc
        except OSError as exc:
            raise ImapError(f"The IMAP server stopped answering: {exc}") from exc


def _news_kind(response) -> str:
    """``(3, b"EXISTS")`` -> "EXISTS"; ``(2, b"FETCH", (...))`` -> "FETCH"; ``(b"OK", b"Still here")`` -> "OK"."""
    if isinstance(response, tuple) and len(response) > 1 and isinstance(response[0], int):
        kind = response[1]
    else:
        kind = response[0] if isinstance(response, tuple) and response else response
    return kind.decode("ascii", "replace").upper() if isinstance(kind, bytes) else str(kind).upper()
