"""The suite's own leak finder (tests/support/secrets_audit.py) finds every planted secret, wherever it sits."""

from __future__ import annotations

import secrets

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.secrets_audit import leaks

SECRETS = {"Adm1n-pass!", "Rep-pass-1!", "x]^\\-y.z+*", secrets.token_urlsafe(12), secrets.token_urlsafe(32)}


def test_a_secret_is_found_at_the_start_the_end_inside_a_word_and_next_to_another():
    token, long_token = sorted((s for s in SECRETS if "-pass" not in s and "]" not in s), key=len)
    text = (
        f"Adm1n-pass! opened; password={token}&next, x{long_token}y\n"
        f"'Rep-pass-1!Rep-pass-1!' x]^\\-y.z+*"
    )
    assert leaks(text, SECRETS) == sorted(SECRETS)


def test_nothing_is_found_where_a_secret_is_only_in_pieces():
    token = next(s for s in SECRETS if len(s) == 16)
    text = f"Adm1n pass! Rep-pass-1 {token[:8]} {token[8:]} x]^\\-y.z+"
    assert leaks(text, SECRETS) == []


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=0, max_size=300),
    st.sets(st.text(min_size=1, max_size=12), min_size=1, max_size=6),
    st.data(),
)
def test_it_finds_exactly_what_a_plain_search_finds(text: str, planted: set[str], data):
    for secret in data.draw(st.lists(st.sampled_from(sorted(planted)), max_size=3)):
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + secret + text[at:]
    assert leaks(text, planted) == sorted(s for s in planted if s in text)
