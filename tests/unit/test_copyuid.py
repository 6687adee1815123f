"""Reading where the server says moved messages landed: the COPYUID response code (RFC 4315 section 3)."""

from __future__ import annotations

import pytest

from salesinbox.adapters.imap.session import Landed, landed_from


@pytest.mark.parametrize(("code", "landed"), [
    (b"1700 4:6 1:3", Landed(1700, {4: 1, 5: 2, 6: 3})),  # MOVE: the untagged OK's code data
    ("[COPYUID 9 3,5 10:11] Copy completed (0.001 + 0.000 secs).", Landed(9, {3: 10, 5: 11})),  # COPY: tagged
    (b"38505 7:5 12:14", Landed(38505, {5: 12, 6: 13, 7: 14})),  # a range written high:low
])
def test_copyuid_pairs_each_source_uid_with_its_new_uid(code, landed):
    assert landed_from(code) == landed


@pytest.mark.parametrize("code", [
    None, b"", "Copy completed (0.001 + 0.000 secs).",  # no UIDPLUS answer: the next sync pass finds them
    b"9 1:3 7",  # sets of different sizes: not believed
    b"9 1:4000000000 1:4000000000",  # more than anyone moves at once: not expanded
])
def test_a_missing_or_odd_copyuid_is_none(code):
    assert landed_from(code) is None
