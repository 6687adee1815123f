"""The hostile HTML corpus in tests/corpus/xss: a header, then vectors separated by "%%" lines."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).parent.parent / "corpus" / "xss" / "vectors.txt"
REMOTE = "{{REMOTE}}"
SEPARATOR = "%%"


def load_vectors(path: Path | str = CORPUS, *, remote: str | None = None) -> list[str]:
    """Every vector in the file, in order; ``remote`` (an origin, e.g. ``https://attacker.invalid``)
    replaces the ``{{REMOTE}}`` placeholder when given.

    Everything before the first separator line is the header. A record keeps its inner newlines;
    the newline that precedes a separator is not part of it. Empty records are skipped.
    """
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    if SEPARATOR not in lines:
        return []
    records: list[list[str]] = [[]]
    for line in lines[lines.index(SEPARATOR) + 1 :]:
        if line == SEPARATOR:
            records.append([])
        else:
            records[-1].append(line)
    if records[-1] and records[-1][-1] == "":  # the file's final newline
        records[-1].pop()
    vectors = ["\n".join(record) for record in records if any(record)]
    return [vector.replace(REMOTE, remote) for vector in vectors] if remote is not None else vectors
