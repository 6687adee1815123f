"""The Polish catalog: complete, placeholder-safe, compilable, and chosen from the browser's languages.

Pure Python: the catalog is compiled with Babel into a temporary directory, never
into the source tree (the Makefile owns the .mo files there).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from salesinbox.domain.connection import FailureKind, ProbeFailure, explain
from salesinbox.domain.errors import ValidationFailed
from salesinbox.domain.providers import get_preset
from salesinbox.domain.text import Text
from salesinbox.web import i18n

LOCALE = Path(i18n.__file__).resolve().parent.parent / "locale"
TEMPLATE = LOCALE / "messages.pot"
POLISH = LOCALE / "pl" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fp:
        return read_po(fp, locale=locale)


def _forms(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A message's id or string as a tuple: one element, or one per plural form."""
    return (value,) if isinstance(value, str) else tuple(value)


def _placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module")
def template() -> Catalog:
    return _read(TEMPLATE)


@pytest.fixture(scope="module")
def polish() -> Catalog:
    return _read(POLISH, locale="pl")


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory: pytest.TempPathFactory, polish: Catalog) -> Path:
    """A locale directory holding only the freshly compiled Polish catalog."""
    root = tmp_path_factory.mktemp("locale")
    target = root / "pl" / "LC_MESSAGES"
    target.mkdir(parents=True)
    with (target / "messages.mo").open("wb") as fp:
        write_mo(fp, polish)
    return root


@pytest.fixture(scope="module")
def compiled(compiled_dir: Path) -> Catalog:
    with (compiled_dir / "pl" / "LC_MESSAGES" / "messages.mo").open("rb") as fp:
        return read_mo(fp)


@pytest.fixture
def polish_translations(compiled_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``salesinbox.web.i18n`` reading the compiled catalog, in a Polish request."""
    monkeypatch.setattr(i18n, "LOCALE_DIR", compiled_dir)
    i18n.translations.cache_clear()
    token = i18n.current_locale.set("pl")
    try:
        yield
    finally:
        i18n.current_locale.reset(token)
        i18n.translations.cache_clear()


def test_the_template_has_messages_to_translate(template):
    assert [m for m in template if m.id]


def test_the_polish_catalog_uses_polish_plural_rules(polish):
    assert polish.num_plurals == 3
    assert polish.plural_expr.replace(" ", "") == "(n==1?0:n%10>=2&&n%10<=4&&(n%100<10||n%100>=20)?1:2)"


def test_every_message_of_the_template_has_a_polish_translation(template, polish):
    missing = [m.id for m in template if m.id and m.id not in polish]
    assert not missing, f"not in the Polish catalog: {missing}"
    untranslated = []
    for message in template:
        if not message.id:
            continue
        translated = polish[message.id]
        forms = _forms(translated.string)
        expected = polish.num_plurals if message.pluralizable else 1
        if translated.fuzzy or len(forms) != expected or not all(form.strip() for form in forms):
            untranslated.append(message.id)
    assert not untranslated, f"empty, incomplete or fuzzy in Polish: {untranslated}"


def test_the_compiled_catalog_holds_a_non_empty_translation_for_every_message(template, compiled):
    for message in template:
        if not message.id:
            continue
        assert message.id in compiled, message.id
        assert all(form.strip() for form in _forms(compiled[message.id].string)), message.id


def test_each_polish_translation_keeps_exactly_the_placeholders_of_its_english_text(template, polish):
    wrong = []
    for message in template:
        if not message.id:
            continue
        wanted = _placeholders(_forms(message.id)[-1])
        singular = _placeholders(_forms(message.id)[0])
        for form in _forms(polish[message.id].string):
            # A plural form may leave out a placeholder the singular leaves out, nothing more.
            if _placeholders(form) not in (wanted, singular):
                wrong.append((message.id, form))
    assert not wrong, f"placeholders differ: {wrong}"


def test_each_polish_translation_formats_with_the_english_arguments(template, polish):
    for message in template:
        if not message.id or "python-format" not in message.flags:
            continue
        names = set(PLACEHOLDER.findall(" ".join(_forms(message.id))))
        arguments = dict.fromkeys(names, "x")
        for form in _forms(polish[message.id].string):
            assert isinstance(form % arguments, str)  # raises on a broken or unknown placeholder


def test_the_app_translates_into_polish_from_the_compiled_catalog(polish_translations):
    assert i18n.gettext("Save") == "Zapisz"
    assert i18n.gettext("Cancel") == "Anuluj"
    assert i18n._("%(name)s can now log in.") % {"name": "Ola"} == "Ola może się już zalogować."


def test_every_text_of_the_services_and_the_domain_is_in_the_template(template):
    """``make messages`` was run: each ``Text("...")`` msgid in the source is in the catalogs."""
    source = LOCALE.parent
    msgids = {
        call.args[0].value
        for path in source.rglob("*.py")
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Text"
        and call.args and isinstance(call.args[0], ast.Constant)
    }
    assert len(msgids) > 50
    assert not msgids - {m.id for m in template}, f"run `make messages`: {msgids - {m.id for m in template}}"


def test_a_service_message_is_shown_in_polish_with_its_parts_translated_too(polish_translations):
    gmail = get_preset("gmail")
    english = explain(ProbeFailure(FailureKind.TIMEOUT, "imap", "timed out"), gmail)
    assert english.startswith("The IMAP (receiving) server did not answer in time.")
    assert i18n.localize(english) == (
        "Serwer IMAP (odbieranie) nie odpowiedział na czas. Sprawdź nazwę serwera i port (Gmail / Google "
        "Workspace używa imap.gmail.com, port 993 z TLS), a potem spróbuj ponownie; jeśli to się powtarza, "
        "serwer lub Twoja sieć może blokować albo spowalniać połączenie."
    )
    refused = ValidationFailed({"password": Text("Use at least %(min)s characters.", min=8), "name": "as typed"})
    polish = "password: Hasło jest za krótkie (minimalna liczba znaków: 8).; name: as typed"
    assert i18n.error_message(refused) == polish and str(refused).startswith("password: Use at least 8 characters.")
    assert i18n.localize("plain words") == "plain words" and i18n.localize(None) is None


def test_a_polish_browser_gets_polish():
    assert i18n.negotiate("pl-PL,pl;q=0.9") == "pl"


def test_a_german_browser_gets_english():
    assert i18n.negotiate("de-DE") == "en"


def test_a_missing_header_gets_english():
    assert i18n.negotiate(None) == "en"


def test_the_users_own_choice_beats_the_browser():
    assert i18n.negotiate("pl-PL,pl;q=0.9", preferred="en") == "en"
    assert i18n.negotiate("de-DE", preferred="pl") == "pl"
