"""Label names and the IMAP keywords they are stored as."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesinbox.domain.errors import ValidationFailed
from salesinbox.domain.labels import (
    MAX_KEYWORD,
    is_keyword,
    is_system_keyword,
    keyword_for,
    keyword_key,
    keywords_of,
    name_for,
    name_key,
    normalize_name,
)


def test_a_name_is_trimmed_and_its_inner_whitespace_made_one_space():
    assert normalize_name("  Hot \t lead ") == "Hot lead"
    assert name_key("HOT Lead") == name_key("hot lead")


@pytest.mark.parametrize("bad", ["", "   ", "x" * 51, "tab\x00here"])
def test_an_empty_long_or_control_character_name_is_refused(bad):
    with pytest.raises(ValidationFailed) as caught:
        normalize_name(bad)
    assert "name" in caught.value.errors


@pytest.mark.parametrize(("name", "keyword"), [
    ("Hot lead", "Hot_lead"),
    ("Q4 (EMEA)", "Q4__EMEA_"),
    ('say "hi" 100%*', "say__hi__100__"),
    ("R&D", "R&-D"),
    ("Überprüfung", "&ANw-berpr&APw-fung"),
    ("$Forwarded", "_Forwarded"),
    ("Junk", "_Junk"),
    ("NonJunk", "_NonJunk"),
])
def test_a_keyword_is_an_imap_atom_derived_from_the_name(name, keyword):
    assert keyword_for(name) == keyword
    assert is_keyword(keyword) and not is_system_keyword(keyword)


def test_a_keyword_taken_by_another_label_gets_a_number():
    assert keyword_for("hot lead", {keyword_key("Hot_lead")}) == "hot_lead_2"
    assert keyword_for("hot lead", {"hot_lead", "hot_lead_2"}) == "hot_lead_3"


@pytest.mark.parametrize("keyword", ["$Forwarded", "$MDNSent", "$Junk", "$NotJunk", "NonJunk", "junk", "\\Seen"])
def test_system_keywords_never_become_labels(keyword):
    assert is_system_keyword(keyword)


def test_a_keyword_from_another_client_reads_as_a_name():
    assert name_for("follow_up") == "follow up"
    assert name_for("&ANw-berpr&APw-fung") == "Überprüfung"
    assert name_for("bad&Zm9v-") == "bad&Zm9v-"  # not modified UTF-7: kept as it is


def test_the_keywords_among_stored_flags_are_matched_case_insensitively():
    assert keywords_of("\\Seen Hot_lead $Forwarded") == {"hot_lead", "$forwarded"}


@given(st.text(min_size=1, max_size=50).filter(lambda t: t.strip()))
def test_every_valid_name_has_a_valid_short_keyword_that_reads_back(text):
    try:
        name = normalize_name(text)
    except ValidationFailed:
        return
    keyword = keyword_for(name)
    assert is_keyword(keyword) and len(keyword) <= MAX_KEYWORD and not is_system_keyword(keyword)
    kept_as_typed = not set(name) & set('_(){%*"\\]') and not name.startswith("$")
    if kept_as_typed:  # forbidden characters all become "_": no way back; a long keyword reads back its start
        assert name_key(name).startswith(name_key(name_for(keyword)))
