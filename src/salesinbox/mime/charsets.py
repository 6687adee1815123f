"""Bytes to text when the declared charset is missing, unknown or lying.

Mail declares its charset per part (``Content-Type: text/plain; charset=...``)
and per encoded word (RFC 2047 ``=?charset?B?...?=``). Senders get it wrong
in predictable ways, handled here in this order:

1. Labels are mapped to the superset real mailers use, as browsers do
   (WHATWG Encoding Standard): iso-8859-1 -> windows-1252, gb2312/gbk ->
   gb18030, shift_jis -> cp932, euc-kr/ks_c_5601-1987 -> cp949, big5 ->
   big5hkscs, iso-2022-jp -> its -2 and -ext extensions.
2. The declared charset is tried strictly. A single-byte Latin label is
   distrusted when the bytes are valid UTF-8, or when most letters are high
   bytes (Cyrillic or Greek sent as "iso-8859-1").
3. Otherwise UTF-8 is tried strictly, then charset-normalizer guesses, and
   the guess is decoded with errors replaced.

Nothing here raises ``UnicodeDecodeError``; every fallback returns a short
note saying what was wrong, for ``ParsedMessage.problems``.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Iterable
from email.errors import HeaderParseError
from email.header import decode_header

import charset_normalizer

_SUPERSETS: dict[str, tuple[str, ...]] = {
    "iso-8859-1": ("cp1252", "latin-1"),
    "iso8859-1": ("cp1252", "latin-1"),
    "iso_8859-1": ("cp1252", "latin-1"),
    "8859-1": ("cp1252", "latin-1"),
    "latin1": ("cp1252", "latin-1"),
    "latin-1": ("cp1252", "latin-1"),
    "l1": ("cp1252", "latin-1"),
    "windows-1252": ("cp1252", "latin-1"),
    "cp1252": ("cp1252", "latin-1"),
    "iso-8859-9": ("cp1254", "iso8859-9"),
    "iso8859-9": ("cp1254", "iso8859-9"),
    "iso-8859-11": ("cp874",),
    "tis-620": ("cp874",),
    "windows-874": ("cp874",),
    "iso-8859-8-i": ("iso8859-8",),
    "gb2312": ("gb18030",),
    "gb_2312-80": ("gb18030",),
    "csgb2312": ("gb18030",),
    "euc-cn": ("gb18030",),
    "gbk": ("gb18030",),
    "x-gbk": ("gb18030",),
    "cp936": ("gb18030",),
    "big5": ("big5hkscs", "cp950"),
    "x-x-big5": ("big5hkscs", "cp950"),
    "cn-big5": ("big5hkscs", "cp950"),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "shift-jis": ("cp932", "shift_jis_2004"),
    "sjis": ("cp932", "shift_jis_2004"),
    "x-sjis": ("cp932", "shift_jis_2004"),
    "ms_kanji": ("cp932",),
    "windows-31j": ("cp932",),
    "x-euc-jp": ("euc_jp", "euc_jis_2004"),
    "euc-jp": ("euc_jp", "euc_jis_2004"),
    "euc_jp": ("euc_jp", "euc_jis_2004"),
    "euc-kr": ("cp949",),
    "euc_kr": ("cp949",),
    "ks_c_5601-1987": ("cp949",),
    "ks_c_5601": ("cp949",),
    "ksc5601": ("cp949",),
    "iso-2022-jp": ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_3"),
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_3"),
    "x-mac-cyrillic": ("mac_cyrillic",),
    "x-mac-roman": ("mac_roman",),
    "cp-850": ("cp850",),
    "unicode-1-1-utf-7": ("utf-7",),
}
# Labels that mean "we do not know" (RFC 1428 unknown-8bit, and Outlook's x-unknown).
_UNKNOWN = frozenset({"unknown-8bit", "x-unknown", "unknown", "x-user-defined", "default", "8bit", "charset"})
# Codecs in which plain ASCII bytes may mean something else (escape sequences, shifts).
_NOT_ASCII_SAFE = ("utf_7", "utf-7", "hz", "iso2022", "utf_16", "utf-16", "utf_32", "utf-32", "cp037", "cp500")
_LATIN_SINGLE_BYTE = frozenset({"cp1252", "latin-1", "iso8859-15", "ascii"})
# What a Latin label on non-Latin text usually hides.
_SINGLE_BYTE_GUESSES = [
    "cp1251", "koi8_r", "iso8859_5", "cp1253", "iso8859_7", "cp1255", "cp1256", "cp1250", "cp1252",
    "cp1254", "cp1257", "cp874", "koi8_u", "cp866",
]
# Header words are short; charset-normalizer guesses better from a short list.
_HEADER_GUESSES = [*_SINGLE_BYTE_GUESSES, "gb18030", "big5hkscs", "cp932", "euc_jp", "cp949"]
_POPULARITY = {
    name: rank
    for rank, name in enumerate([
        "utf_8", "cp1252", "cp1251", "gb18030", "gbk", "gb2312", "cp932", "shift_jis", "euc_jp", "cp949", "euc_kr",
        "big5", "cp950", "big5hkscs", "cp1250", "iso8859_2", "koi8_r", "cp1253", "cp1254", "cp1255", "cp1256",
        "cp1257", "cp874", "koi8_u", "cp866", "iso8859_5", "iso8859_7", "latin_1", "iso8859_15",
    ])
}
_HIGH_BYTES = bytes(range(0x80, 0x100))
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DETECT_SAMPLE = 64 * 1024
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[qQbB]\?[^?\s]*\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)[ \t\r\n]+(?==\?)")
_LABEL = re.compile(r"[a-z0-9][a-z0-9_.:+-]{0,39}")
_UNSAFE_CHARS = re.compile("[\x00\ud800-\udfff]")


def decode_text(data: bytes, charset: str | None, *, short: bool = False) -> tuple[str, str | None]:
    """Decode ``data`` declared as ``charset`` (``None`` if undeclared); return the text and a note or ``None``.

    ``short`` says the bytes are a header value, too short for unrestricted guessing.
    """
    label = _label(charset)
    candidates = _candidates(label)
    if data.isascii() and all(_ascii_safe(codec) for codec in candidates):
        return data.decode("ascii"), None
    for codec in candidates:
        try:
            text = data.decode(codec)
        except UnicodeError:  # UnicodeDecodeError, or idna's and punycode's plain UnicodeError
            continue
        if codec in _LATIN_SINGLE_BYTE:
            return _reconsider_latin(data, text, label)
        return text, None
    return _fall_back(data, label, candidates, short)


def decode_words(text: str) -> tuple[str, str | None]:
    """Decode RFC 2047 encoded words in an already-unicode header value, leniently."""
    if "=?" not in text:
        return text, None
    try:
        chunks = decode_header(text)
    except (HeaderParseError, ValueError, LookupError, UnicodeError):
        return _decode_words_one_by_one(text)
    notes = []
    pieces = []
    for chunk, chunk_charset in chunks:
        if isinstance(chunk, str):
            pieces.append(chunk)
        elif chunk_charset is None:
            # decode_header turns the unencoded runs into bytes with raw-unicode-escape.
            pieces.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            piece, note = decode_text(chunk, chunk_charset, short=True)
            pieces.append(piece)
            notes.append(note)
    return "".join(pieces), next((note for note in notes if note), None)


def header_charset(raws: Iterable[str], hint: str | None = None) -> str | None:
    """The charset of a message's raw 8-bit header bytes that are not UTF-8; ``None`` if there are none.

    UTF-8 in headers is allowed (RFC 6532); other 8-bit bytes are a sender
    bug, and all of them in one message come from the same sender's charset.
    So it is chosen once: the body's declared charset (``hint``) if every
    value fits it, else one guess from all the values together (more text
    guesses better, and one guess per message bounds the cost).
    """
    samples = [data for data in (_raw_bytes(raw) for raw in raws if not raw.isascii()) if not _is_utf8(data)]
    if not samples:
        return None
    joined = b"\n".join(samples)
    label = _label(hint)
    if label not in (None, "us-ascii", "utf-8"):
        candidates = _candidates(label)
        if candidates and _is_valid(joined, candidates[0]):
            return hint
    return _detect(joined, _HEADER_GUESSES) or "cp1252"


def header_bytes_to_text(raw: str, charset: str | None = None) -> tuple[str, str | None]:
    """A raw header value as the stdlib parser left it (8-bit bytes as surrogate escapes) -> text and a note.

    ``charset`` (from ``header_charset``) decodes 8-bit bytes that are not UTF-8.
    """
    if raw.isascii():
        return raw, None
    data = _raw_bytes(raw)
    if _is_utf8(data):
        return data.decode("utf-8"), None
    charset = charset or "cp1252"
    codec = (_candidates(_label(charset)) or ("cp1252",))[0]
    try:
        return data.decode(codec, "replace"), f"raw 8-bit bytes (decoded as {charset})"
    except (UnicodeError, LookupError):
        return data.decode("cp1252", "replace"), "raw 8-bit bytes (decoded as cp1252)"


def _raw_bytes(raw: str) -> bytes:
    return raw.encode("utf-8", "surrogateescape")


def _is_utf8(data: bytes) -> bool:
    return _is_valid(data, "utf-8")


def _is_valid(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except (UnicodeError, LookupError):
        return False
    return True


def clean(text: str) -> str:
    """Drop NUL (PostgreSQL text refuses it) and lone surrogates (not encodable as UTF-8)."""
    if text.isascii():  # known without a scan (CPython keeps the flag): only a NUL can be there
        return text.replace("\x00", "") if "\x00" in text else text
    if _UNSAFE_CHARS.search(text) is None:
        return text
    return _UNSAFE_CHARS.sub(lambda found: "" if found.group() == "\x00" else "\ufffd", text)


def _label(charset: str | None) -> str | None:
    if charset is None:
        return None
    # RFC 2231 allows a language after "*" (utf-8*en); quotes and spaces are sender noise.
    label = charset.strip().strip("\"'").split("*", 1)[0].strip().lower()
    return label or None


@functools.lru_cache(maxsize=256)
def _candidates(label: str | None) -> tuple[str, ...]:
    if label is None or label in _UNKNOWN or not _LABEL.fullmatch(label):
        return ()
    if label in _SUPERSETS:
        return _SUPERSETS[label]
    try:
        name = codecs.lookup(label).name
        # Python also registers bytes-to-bytes and text-to-text codecs (base64, rot13) and "undefined".
        "Az".encode(name).decode(name)
    except (LookupError, ValueError, TypeError, UnicodeError):
        return ()
    if name in ("ascii", "us-ascii"):
        return ("ascii",)
    if name in ("idna", "punycode"):  # domain-name codecs, not charsets; they refuse errors="replace"
        return ()
    return _SUPERSETS.get(name, (name,))


def _ascii_safe(codec: str) -> bool:
    return not codec.startswith(_NOT_ASCII_SAFE)


def _reconsider_latin(data: bytes, text: str, label: str | None) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8"), f"declared {label} but is UTF-8"
    except UnicodeDecodeError:
        pass
    if not _mostly_high_bytes(data):
        return text, None
    guess = _detect(data, _SINGLE_BYTE_GUESSES)
    if guess is None or guess in ("cp1252", "latin_1"):
        return text, None
    return data.decode(guess, "replace"), f"declared {label} but looks like {guess}"


def _mostly_high_bytes(data: bytes) -> bool:
    """True when high bytes make up over 30% of letters: Latin scripts stay far below it."""
    high = len(data) - len(data.translate(None, _HIGH_BYTES))
    letters = len(data) - len(data.translate(None, _ASCII_LETTERS))
    return high * 10 > (high + letters) * 3


def _fall_back(data: bytes, label: str | None, candidates: tuple[str, ...], short: bool) -> tuple[str, str | None]:
    if label is None:
        problem = "no charset declared"
    elif not candidates:
        problem = f"unknown charset {label!r}"
    else:
        problem = f"bytes are not valid {label}"
    if "utf_8" not in candidates and "utf-8" not in candidates:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return text, None if label is None else f"{problem}; decoded as UTF-8"
    guess = _detect(data, _HEADER_GUESSES if short else None) or (candidates[0] if candidates else "cp1252")
    try:
        return data.decode(guess, "replace"), f"{problem}; decoded as {guess}"
    except (UnicodeError, LookupError):
        return data.decode("cp1252", "replace"), f"{problem}; decoded as cp1252"


def _detect(data: bytes, isolation: list[str] | None) -> str | None:
    """charset-normalizer's guess; among near-ties, the charset mail most often uses.

    Short texts fit several charsets equally well (Western text in cp1252 is a
    perfect cp1250 or cp1257 text too), and the first of a tie is arbitrary.
    """
    matches = list(charset_normalizer.from_bytes(data[:_DETECT_SAMPLE], cp_isolation=isolation))
    if not matches:
        return None
    best = matches[0]
    ties = [match for match in matches if match.chaos <= best.chaos + 0.01 and match.coherence >= best.coherence - 0.1]
    return min(ties, key=lambda match: _POPULARITY.get(match.encoding, len(_POPULARITY))).encoding


def _decode_words_one_by_one(text: str) -> tuple[str, str | None]:
    """decode_header gives up on the whole value at one bad word; keep the good ones."""
    notes: list[str] = []

    def one(found: re.Match[str]) -> str:
        try:
            [(chunk, chunk_charset)] = decode_header(found.group())
        except (HeaderParseError, ValueError, LookupError, UnicodeError):
            notes.append("an encoded word could not be decoded")
            return found.group()
        if isinstance(chunk, str):
            return chunk
        return decode_text(chunk, chunk_charset, short=True)[0]

    decoded = _ENCODED_WORD.sub(one, _BETWEEN_WORDS.sub("", text))
    return decoded, notes[0] if notes else None
