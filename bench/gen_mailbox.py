"""A deterministic synthetic mailbox, written straight into a Maildir.

Realistic enough to exercise the sync engine: conversations of 1-6 messages
with In-Reply-To / References (some replies arrive before their parents, some
lost their headers), many charsets and transfer encodings, HTML alternatives,
right-to-left text, and attachments (about one message in four) so that the
average size is near 35 KB. Same seed, same bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import shutil
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

WORDS = ("proposal offer contract renewal pricing discount meeting demo onboarding invoice payment "
         "licence seats quarter pipeline forecast security review integration roadmap support").split()
TEXTS = {
    "utf-8": ["Dziękujemy za ofertę, zażółć gęślą jaźń.", "Grüße aus München, schöne Woche!",
              "שלום, מצורפת ההצעה המעודכנת.", "مرحبا، نرسل لكم العرض المحدث.", "こんにちは、見積書を送ります。"],
    "iso-8859-2": ["Zażółć gęślą jaźń — oferta na przyszły kwartał."],
    "koi8-r": ["Здравствуйте, направляем вам коммерческое предложение."],
    "shift_jis": ["お世話になっております。契約書を添付します。"],
    "windows-1252": ["Café crème and naïve façade — résumé attached."],
    "us-ascii": ["Plain old ASCII text for the old-fashioned mail client."],
}
PEOPLE = [f"{n}@{d}" for n in ("anna", "ben", "chloe", "dev", "emil", "fatima", "gus", "hana")
          for d in ("acme.example", "globex.example", "initech.example")]


def _body(rng: random.Random, charset: str) -> str:
    sentence = rng.choice(TEXTS[charset])
    filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 400)))
    return f"Hello,\n\n{sentence}\n\n{filler}\n\nBest regards\n"


def build(rng: random.Random, index: int, thread: list[str], when: dt.datetime, me: str) -> EmailMessage:
    charset = rng.choice(list(TEXTS))
    msg = EmailMessage()
    outgoing = rng.random() < 0.2
    other = rng.choice(PEOPLE)
    msg["From"], msg["To"] = (me, other) if outgoing else (other, me)
    if rng.random() < 0.2:
        msg["Cc"] = rng.choice(PEOPLE)
    topic = f"{rng.choice(WORDS).title()} {thread[0].split('.')[0][-4:]}"
    msg["Subject"] = ("Re: " if len(thread) > 1 else "") + topic
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{thread[-1]}>"
    if len(thread) > 1 and rng.random() > 0.03:  # a few replies lost their headers
        msg["In-Reply-To"] = f"<{thread[-2]}>"
        msg["References"] = " ".join(f"<{t}>" for t in thread[:-1])
    text = _body(rng, charset)
    cte = rng.choice(["quoted-printable", "base64", "8bit"]) if charset != "us-ascii" else "7bit"
    try:
        msg.set_content(text, charset=charset, cte=cte)
    except (UnicodeEncodeError, LookupError):
        msg.set_content(text, charset="utf-8", cte="quoted-printable")
    if rng.random() < 0.3:
        msg.add_alternative(f"<html><body><p>{text.replace(chr(10), '<br>')}</p></body></html>", subtype="html")
    if rng.random() < 0.25:
        size = rng.randint(20_000, 160_000)
        data = rng.randbytes(size)
        name = rng.choice(["offer.pdf", "Angebot übersicht.pdf", "contract.docx", "photo.jpg", "עסקה.xlsx"])
        maintype, subtype = ("image", "jpeg") if name.endswith("jpg") else ("application", "octet-stream")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def generate(maildir: Path, count: int, *, seed: int = 42, me: str = "bench@speed.test") -> int:
    """Write ``count`` messages into ``maildir`` (cur/), threads interleaved; returns bytes written."""
    rng = random.Random(seed)
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    threads: list[list[str]] = []
    written = 0
    for index in range(count):
        if threads and rng.random() < 0.55:
            thread = rng.choice(threads[-200:])
            if len(thread) >= 6:
                thread = [f"t{index}.{seed}@bench.example"]
                threads.append(thread)
            else:
                thread.append(f"m{index}.{seed}@bench.example")
        else:
            thread = [f"t{index}.{seed}@bench.example"]
            threads.append(thread)
        when = start + dt.timedelta(minutes=index * 7 + rng.randint(0, 5))
        raw = bytes(build(rng, index, list(thread), when, me))
        flags = "S" if rng.random() < 0.7 else ""
        name = f"{1_700_000_000 + index}.M{index}P{seed}.bench,S={len(raw)}:2,{flags}"
        (maildir / "cur" / name).write_bytes(raw)
        written += len(raw)
    return written


def chown_tree(path: Path, user: str = "nobody", group: str = "nogroup") -> None:
    for root, dirs, files in os.walk(path):
        shutil.chown(root, user, group)
        for name in (*dirs, *files):
            shutil.chown(os.path.join(root, name), user, group)


if __name__ == "__main__":
    import sys

    target, n = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    size = generate(target, n)
    print(f"{n} messages, {size / 1e6:.0f} MB in {target}")
    print(base64.b64encode(b"ok").decode())
