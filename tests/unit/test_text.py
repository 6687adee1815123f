"""``Text``: a service's message is its English text to everyone who reads it as a str, and keeps what a
translation needs (the msgid and the parameters), also through pickling."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from salesinbox.domain.errors import PlanRequired, ValidationFailed
from salesinbox.domain.text import Text

POLISH = {
    "Use 1 to %(max)s MB.": "Podaj wartość od 1 do %(max)s MB.",
    "%(feature)s needs the %(plan)s plan or higher.": "%(feature)s wymaga planu %(plan)s lub wyższego.",
    "Email sync": "Synchronizacja poczty",
    "No such user.": "Nie ma takiego użytkownika.",
}


def polish(msgid: str) -> str:
    return POLISH.get(msgid, msgid)


def test_a_text_is_its_english_with_the_parameters_filled_in():
    text = Text("Use 1 to %(max)s MB.", max=150)
    assert text == "Use 1 to 150 MB." and isinstance(text, str)
    assert (text.msgid, text.params) == ("Use 1 to %(max)s MB.", {"max": 150})
    assert hash(text) == hash("Use 1 to 150 MB.")
    assert f"{text}" == str(text) == "%s" % text == "Use 1 to 150 MB."  # noqa: UP031 - as log lines format it
    assert repr(text) == repr("Use 1 to 150 MB.")
    assert json.dumps({"message": text}) == '{"message": "Use 1 to 150 MB."}'


def test_a_text_without_parameters_is_its_msgid_even_with_a_percent_sign():
    assert Text("No such user.") == "No such user."
    assert Text("100% done.") == "100% done." and Text("100% done.").params == {}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_text_pickles_as_a_text(protocol):
    text = Text("Use 1 to %(max)s MB.", max=150)
    again = pickle.loads(pickle.dumps(text, protocol=protocol))
    assert type(again) is Text and again == text
    assert (again.msgid, again.params) == (text.msgid, text.params)


def test_a_copied_text_is_still_a_text():
    text = Text("Use 1 to %(max)s MB.", max=150)
    assert type(copy.copy(text)) is Text and copy.deepcopy(text).params == {"max": 150}


def test_translating_looks_up_the_msgid_and_fills_in_the_same_parameters():
    assert Text("Use 1 to %(max)s MB.", max=150).translate(polish) == "Podaj wartość od 1 do 150 MB."
    assert Text("No such user.").translate(polish) == "Nie ma takiego użytkownika."


def test_a_parameter_that_is_a_text_is_translated_too():
    error = PlanRequired(Text("Email sync"), "growth")
    assert str(error) == "Email sync needs the Growth plan or higher."
    assert error.args[0].translate(polish) == "Synchronizacja poczty wymaga planu Growth lub wyższego."


def test_a_missing_translation_falls_back_to_the_english():
    assert Text("Unheard of %(what)s.", what="x").translate(polish) == "Unheard of x."


def test_a_validation_failure_reads_as_before():
    error = ValidationFailed({"attachment_limit_mb": Text("Use 1 to %(max)s MB.", max=150), "name": "plain"})
    assert str(error) == "attachment_limit_mb: Use 1 to 150 MB.; name: plain"
    assert pickle.loads(pickle.dumps(error.errors))["attachment_limit_mb"].msgid == "Use 1 to %(max)s MB."
