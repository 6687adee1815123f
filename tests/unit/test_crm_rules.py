"""Addresses, domains, money and statuses: the keys linking will match on."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesinbox.domain.crm import (
    normalize_currency,
    normalize_domain,
    normalize_email,
    parse_money,
    require_text,
    unique_keys,
)
from salesinbox.domain.errors import ValidationFailed


def test_an_address_is_matched_case_insensitively_and_trimmed():
    assert normalize_email("  Jane.Doe@ACME.com ") == "jane.doe@acme.com"


@pytest.mark.parametrize("bad", ["", "jane", "jane@", "@acme.com", "jane doe@acme.com", "jane@acme"])
def test_a_malformed_address_is_refused_with_the_field_named(bad):
    with pytest.raises(ValidationFailed) as caught:
        normalize_email(bad)
    assert "email" in caught.value.errors


@pytest.mark.parametrize(("typed", "key"), [
    ("acme.com", "acme.com"), ("@Acme.COM", "acme.com"), ("https://www.acme.com/about", "acme.com"),
    ("acme.co.uk.", "acme.co.uk"), ("bücher.de", "xn--bcher-kva.de"),
])
def test_a_domain_as_typed_becomes_its_key(typed, key):
    assert normalize_domain(typed) == key


@pytest.mark.parametrize("bad", ["", "localhost", "acme", "-acme.com", "acme..com", "a b.com"])
def test_a_non_domain_is_refused(bad):
    with pytest.raises(ValidationFailed):
        normalize_domain(bad)


def test_duplicate_addresses_collapse_to_one_keeping_order():
    assert unique_keys(["B@x.io", "a@x.io", "b@X.io", " "], normalize_email) == ["b@x.io", "a@x.io"]


@pytest.mark.parametrize(("typed", "amount"), [
    ("1500", Decimal("1500.00")), ("1,500.5", Decimal("1500.50")), (None, Decimal("0")), ("", Decimal("0")),
])
def test_money_is_parsed_to_cents(typed, amount):
    assert parse_money(typed) == amount


@pytest.mark.parametrize("bad", ["abc", "-1", "NaN", "Infinity", "1e20"])
def test_money_outside_sense_is_refused(bad):
    with pytest.raises(ValidationFailed):
        parse_money(bad)


@given(st.decimals(min_value=0, max_value=Decimal("999999999999"), places=2, allow_nan=False))
def test_any_sane_amount_round_trips(amount):
    assert parse_money(str(amount)) == amount


def test_currency_is_three_letters_upper_case():
    assert normalize_currency("eur") == "EUR"
    with pytest.raises(ValidationFailed):
        normalize_currency("euro")


def test_required_text_is_trimmed_and_bounded():
    assert require_text("title", "  Deal  ") == "Deal"
    with pytest.raises(ValidationFailed):
        require_text("title", "   ")
    with pytest.raises(ValidationFailed):
        require_text("title", "x" * 256)
