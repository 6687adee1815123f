"""Folding quoted history and signatures: realistic replies from the common clients, hostile input, and
the promise that no text is ever lost.

The messages are small hand-written imitations of what Gmail, Apple Mail, Thunderbird and Outlook send.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesinbox.mime.quotes import MAX_HTML_CHARS, MAX_TEXT_CHARS, FoldedHtml, FoldedText, split_html, split_text

# A deadline that only stops a hang, never a speed check: regex backtracking on this bait takes hours, not seconds.
HANG = 20.0


def squeeze(text: str) -> str:
    """The text without any whitespace."""
    return "".join(text.split())


def assert_nothing_lost(text: str, folded: FoldedText) -> None:
    assert Counter(squeeze(text)) == Counter(squeeze(folded.body + folded.quoted + folded.signature))
    assert squeeze(folded.body) in squeeze(text)
    assert squeeze(folded.quoted) in squeeze(text)


# --- plain text: attribution lines in several languages --------------------------------------------------------

GMAIL_EN = """Hi Anna,

Friday works for us. I'll send the contract tomorrow.

Best,
Tom

On Mon, Jan 5, 2024 at 10:02 AM Anna Schmidt <anna@example.com> wrote:

> Hi Tom,
>
> could we move the call to Friday?
>
> Anna
"""


def test_gmail_reply_folds_the_attribution_and_the_quote():
    folded = split_text(GMAIL_EN)
    assert folded == FoldedText(
        body="Hi Anna,\n\nFriday works for us. I'll send the contract tomorrow.\n\nBest,\nTom",
        quoted=(
            "On Mon, Jan 5, 2024 at 10:02 AM Anna Schmidt <anna@example.com> wrote:\n\n"
            "> Hi Tom,\n>\n> could we move the call to Friday?\n>\n> Anna"
        ),
        signature="",
    )


def test_attribution_wrapped_over_two_lines():
    text = (
        "Sounds good.\n\n"
        "On Mon, Jan 5, 2024 at 10:02 AM Anna Schmidt-Fischer <\n"
        "anna.schmidt-fischer@example.com> wrote:\n"
        "> Call on Friday?\n"
    )
    folded = split_text(text)
    assert folded.body == "Sounds good."
    assert folded.quoted.startswith("On Mon, Jan 5, 2024 at 10:02 AM Anna Schmidt-Fischer <\nanna.schmidt")
    assert folded.quoted.endswith("> Call on Friday?")


@pytest.mark.parametrize(
    ("body", "attribution", "quote"),
    [
        # German: Gmail, then Thunderbird
        (
            "Hallo Anna,\n\npasst mir gut.",
            "Am Mo., 5. Jan. 2024 um 10:02 Uhr schrieb Anna Schmidt <anna@example.de>:",
            "> Können wir am Freitag telefonieren?",
        ),
        ("Danke, erledigt.", "Am 05.01.24 um 10:02 schrieb Hans Müller:", "> Bitte das Angebot schicken."),
        # French: Gmail, then Thunderbird
        (
            "Bonjour,\n\nC'est noté, merci.",
            "Le lun. 5 janv. 2024 à 10:02, Anne Martin <anne@example.fr> a écrit :",
            "> Pouvons-nous décaler la réunion ?",
        ),
        ("Parfait.", "Le 05/01/2024 à 10:02, Anne Martin a écrit :", "> Réunion vendredi ?"),
        # Polish: Thunderbird, Gmail, Outlook
        (
            "Dzień dobry,\n\ndziękuję za ofertę.",
            "W dniu 5.01.2024 o 10:02, Anna Kowalska pisze:",
            "> Przesyłam ofertę.",
        ),
        ("Dziękuję!", "pt., 5 sty 2024 o 10:02 Anna Kowalska <anna@example.pl> napisała:", "> Przesyłam ofertę."),
        ("Zgoda.", "Dnia 5.01.2024 o 10:02 Jan Nowak napisał(a):", "> Czy piątek pasuje?"),
        # Spanish: Gmail, then Thunderbird
        (
            "Hola Ana,\n\nDe acuerdo.",
            "El lun, 5 ene 2024 a las 10:02, Ana García (<ana@example.es>) escribió:",
            "> ¿Podemos hablar el viernes?",
        ),
        ("Perfecto.", "El 05/01/2024 a las 10:02, Ana García escribió:", "> ¿El viernes?"),
        # Dutch: Gmail, then Thunderbird
        (
            "Hoi Jan,\n\nPrima.",
            "Op ma 5 jan 2024 om 10:02 schreef Jan de Vries <jan@example.nl>:",
            "> Kunnen we vrijdag bellen?",
        ),
        ("Goed.", "Op 05-01-2024 om 10:02 schreef Jan de Vries:", "> Vrijdag?"),
        # Italian, Swedish, Portuguese
        (
            "Va bene.",
            "Il giorno lun 5 gen 2024 alle ore 10:02 Marco Rossi <marco@example.it> ha scritto:",
            "> Venerdì?",
        ),
        ("Det passar.", "Den 5 jan. 2024 kl. 10:02 skrev Erik Svensson <erik@example.se>:", "> Fredag?"),
        ("Combinado.", "Em seg., 5 de jan. de 2024 às 10:02, João Silva <joao@example.pt> escreveu:", "> Sexta?"),
    ],
)
def test_attribution_lines_in_other_languages(body: str, attribution: str, quote: str):
    text = f"{body}\n\n{attribution}\n{quote}\n"
    assert split_text(text) == FoldedText(body=body, quoted=f"{attribution}\n{quote}", signature="")


# --- plain text: Outlook blocks and forwards ----------------------------------------------------------------------

OUTLOOK_ORIGINAL_MESSAGE = """Hi Bob,

Please find the updated quote attached.

Regards,
Alice

-----Original Message-----
From: Bob Jones <bob@example.com>
Sent: Monday, January 5, 2024 10:02 AM
To: Alice Smith <alice@example.com>
Subject: Quote

Hi Alice, can you send an updated quote?
"""


def test_outlook_original_message_block_and_the_old_mail_below_it_are_quoted():
    folded = split_text(OUTLOOK_ORIGINAL_MESSAGE)
    assert folded.body == "Hi Bob,\n\nPlease find the updated quote attached.\n\nRegards,\nAlice"
    assert folded.quoted.startswith("-----Original Message-----\nFrom: Bob Jones <bob@example.com>\nSent: Monday")
    assert folded.quoted.endswith("Subject: Quote\n\nHi Alice, can you send an updated quote?")
    assert folded.signature == ""


def test_outlook_header_block_under_an_underscore_rule():
    text = (
        "Thanks Bob, will do.\n\n"
        "________________________________\n"
        "From: Bob Jones <bob@example.com>\n"
        "Sent: Monday, January 5, 2024 10:02 AM\n"
        "To: Alice Smith <alice@example.com>\n"
        "Subject: Quote\n\n"
        "Hi Alice, can you send an updated quote?\n"
    )
    folded = split_text(text)
    assert folded.body == "Thanks Bob, will do."
    assert folded.quoted.startswith("________________________________\nFrom: Bob Jones")
    assert folded.quoted.endswith("can you send an updated quote?")


@pytest.mark.parametrize(
    "header",
    [
        "Von: Bob Jones <bob@example.com>\nGesendet: Montag, 5. Januar 2024 10:02\nAn: Alice\nBetreff: Angebot",
        "Od: Bob Jones <bob@example.com>\nWysłano: poniedziałek, 5 stycznia 2024 10:02\nDo: Alice\nTemat: Oferta",
        "De : Bob Jones <bob@example.com>\nEnvoyé : lundi 5 janvier 2024 10:02\nÀ : Alice\nObjet : Offre",
        "Van: Bob Jones <bob@example.com>\nVerzonden: maandag 5 januari 2024 10:02\nAan: Alice\nOnderwerp: Offerte",
        "De: Bob Jones <bob@example.com>\nEnviado: lunes, 5 de enero de 2024 10:02\nPara: Alice\nAsunto: Oferta",
        "*From:* Bob Jones <bob@example.com>\n*Sent:* Monday, January 5, 2024 10:02 AM\n*To:* Alice\n*Subject:* Quote",
    ],
)
def test_outlook_header_blocks_in_other_languages(header: str):
    text = f"Done, see attachment.\n\n{header}\n\nOld message text.\n"
    assert split_text(text) == FoldedText("Done, see attachment.", f"{header}\n\nOld message text.", "")


def test_forwarded_message_is_quoted_below_the_comment():
    text = (
        "FYI, see below.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Carol <carol@example.com>\n"
        "Date: Mon, Jan 5, 2024 at 10:02 AM\n"
        "Subject: Budget\n"
        "To: Alice <alice@example.com>\n\n"
        "The budget is approved.\n"
    )
    folded = split_text(text)
    assert folded.body == "FYI, see below."
    assert folded.quoted.startswith("---------- Forwarded message ---------\nFrom: Carol")
    assert folded.quoted.endswith("The budget is approved.")


def test_outlook_reply_on_top_of_a_gmail_thread_cuts_at_the_first_header():
    text = (
        "Agreed.\n\n"
        "From: Anna <anna@example.com>\nSent: Tuesday, January 6, 2024 9:00 AM\nTo: Bob\nSubject: RE: Call\n\n"
        "Friday then.\n\n"
        "On Mon, Jan 5, 2024 at 10:02 AM Bob <bob@example.com> wrote:\n> Friday or Monday?\n"
    )
    folded = split_text(text)
    assert folded.body == "Agreed."
    assert folded.quoted.startswith("From: Anna <anna@example.com>")
    assert folded.quoted.endswith("> Friday or Monday?")


# --- plain text: ">" quotes, bottom posting, interleaving ---------------------------------------------------------


def test_quote_without_attribution_line():
    text = "Yes, confirmed.\n\n> Can you confirm the order?\n> Thanks\n"
    assert split_text(text) == FoldedText("Yes, confirmed.", "> Can you confirm the order?\n> Thanks", "")


def test_bottom_posted_reply_folds_the_leading_quote():
    text = (
        "On Mon, Jan 5, 2024 at 10:02 AM Anna <anna@example.com> wrote:\n"
        "> Friday at 3?\n\n"
        "Yes, Friday at 3 works.\n"
        "-- \n"
        "Tom Baker\n"
    )
    assert split_text(text) == FoldedText(
        body="Yes, Friday at 3 works.",
        quoted="On Mon, Jan 5, 2024 at 10:02 AM Anna <anna@example.com> wrote:\n> Friday at 3?",
        signature="-- \nTom Baker",
    )


def test_interleaved_answers_are_not_folded():
    text = "Hi Anna,\n\n> Friday at 3?\nYes.\n\n> Bring the contract?\nSure, two copies.\n"
    assert split_text(text) == FoldedText(text.rstrip(), "", "")


def test_signature_below_the_quote_of_a_top_posted_reply():
    text = "Ok, booked.\n\nOn Mon, Jan 5, 2024, Anna <anna@example.com> wrote:\n> Book it?\n\n-- \nTom\n"
    assert split_text(text) == FoldedText(
        "Ok, booked.", "On Mon, Jan 5, 2024, Anna <anna@example.com> wrote:\n> Book it?", "-- \nTom"
    )


# --- plain text: signatures ------------------------------------------------------------------------------------


def test_dash_dash_space_signature_without_quote():
    text = "Thanks for the call today.\n\n-- \nTom Baker\nAccount Executive, Acme\n+1 555 0100\n"
    assert split_text(text) == FoldedText(
        "Thanks for the call today.", "", "-- \nTom Baker\nAccount Executive, Acme\n+1 555 0100"
    )


def test_iphone_reply_with_quoted_attribution():
    text = (
        "Sounds good, see you Friday.\n\n"
        "Sent from my iPhone\n\n"
        "> On Jan 5, 2024, at 10:02, Anna Schmidt <anna@example.com> wrote:\n"
        "> \n"
        "> Friday at 3?\n"
    )
    assert split_text(text) == FoldedText(
        body="Sounds good, see you Friday.",
        quoted="> On Jan 5, 2024, at 10:02, Anna Schmidt <anna@example.com> wrote:\n> \n> Friday at 3?",
        signature="Sent from my iPhone",
    )


@pytest.mark.parametrize(
    "line",
    [
        "Sent from my iPhone",
        "Sent from my Galaxy",
        "Get Outlook for iOS",
        "Sent from Mail for Windows",
        "Von meinem iPhone gesendet",
        "Envoyé de mon iPhone",
        "Enviado desde mi iPhone",
        "Verstuurd vanaf mijn iPhone",
        "Wysłane z iPhone'a",
    ],
)
def test_mobile_signatures(line: str):
    text = f"Confirmed, thanks.\n\n{line}\n"
    assert split_text(text) == FoldedText("Confirmed, thanks.", "", line)


def test_sign_offs_and_lists_stay_in_the_body():
    text = "Thanks, that works for us.\nWe sign on Friday:\n- pricing\n- timeline\n\nBest regards,\nTom"
    assert split_text(text) == FoldedText(text, "", "")


def test_a_long_block_after_dashes_is_not_a_signature():
    text = "Notes\n--\n" + "\n".join(f"point {n}" for n in range(40))
    assert split_text(text) == FoldedText(text, "", "")


# --- plain text: nothing to fold ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hello\n\nJust a note.  \n\n",
        "  indented first line\nsecond\n",
        "Data: attached\nTo do: review\nDate: Friday\nTo: all of you",
        "See https://example.com/offer:\nhttps://example.com/terms\nthanks",
        "Meeting at 10:00\nRoom: 4B\n",
        "Hi,\r\nplease call me.\r\n\r\n",
    ],
)
def test_text_without_quote_comes_back_stripped_of_trailing_whitespace_only(text: str):
    assert split_text(text) == FoldedText(text.rstrip(), "", "")


def test_crlf_lines_are_kept_as_they_came():
    text = "Yes.\r\n\r\nOn Mon, Jan 5, 2024 at 10:02 AM Anna <anna@example.com> wrote:\r\n> Ok?\r\n"
    folded = split_text(text)
    assert folded.body == "Yes."
    assert folded.quoted == "On Mon, Jan 5, 2024 at 10:02 AM Anna <anna@example.com> wrote:\r\n> Ok?"


# --- plain text: hostile input ----------------------------------------------------------------------------------


def timed(function, argument):
    started = time.thread_time()  # CPU time: a bound on the work, not on the load
    result = function(argument)
    return result, time.thread_time() - started


@pytest.mark.parametrize("text", ["", " ", "\n\n\n", "\t \r\n"])
def test_empty_text(text: str):
    assert split_text(text) == FoldedText("", "", "")


def test_only_quotes():
    assert split_text("> a\n>> b\n> c\n") == FoldedText("", "> a\n>> b\n> c", "")


def test_five_thousand_nested_quote_levels():
    deep = ">" * 5000 + " the oldest message"
    folded, seconds = timed(split_text, f"New answer.\n\n{deep}\n")
    assert folded == FoldedText("New answer.", deep, "")
    assert seconds < HANG


def test_a_thread_of_lines_quoted_five_thousand_deep():
    text = "On Mon, Jan 5, 2024 at 10:02 AM Anna <anna@example.com> wrote:\n" + "\n".join(
        ">" * 5000 + f" line {n}" for n in range(150)
    )
    folded, seconds = timed(split_text, "Top.\n\n" + text)
    assert folded == FoldedText("Top.", text, "")
    assert seconds < HANG


def test_text_over_the_limit_is_not_folded():
    text = "Reply\n\nOn Mon, Jan 5, 2024 at 10:02 AM Anna wrote:\n> " + "x" * MAX_TEXT_CHARS
    assert split_text(text) == FoldedText(text.rstrip(), "", "")


def test_attribution_is_found_above_the_quote_after_a_long_body():
    body = "\n".join(f"Item {n}: {n * 10} units" for n in range(400))  # more header-like lines than are scanned
    attribution = "On Mon, Jan 5, 2024 at 10:02 AM Anna <anna@example.com> wrote:"
    assert split_text(f"{body}\n\n{attribution}\n> ok\n") == FoldedText(body, f"{attribution}\n> ok", "")


@pytest.mark.parametrize(
    "text",
    [
        "\n" * (MAX_TEXT_CHARS - 1),
        "a" * (MAX_TEXT_CHARS - 1),
        ("Am " + " schrieb" * 24 + " x:\n") * 4_000,  # backtracking bait for the German pattern
        ("On" + " wrote" * 32 + " x:\n") * 4_000,
        "From: x\n" * 100_000,
        "--\nx\n" * 150_000,
        "a:\n" * 300_000,
    ],
    ids=["newlines", "one-line", "schrieb", "wrote", "from-lines", "dashes", "colons"],
)
def test_huge_hostile_text_is_handled_quickly_and_loses_nothing(text: str):
    folded, seconds = timed(split_text, text)
    assert seconds < HANG
    assert_nothing_lost(text, folded)


# --- plain text: properties ---------------------------------------------------------------------------------------

EMAIL_LINES = st.sampled_from(
    [
        "",
        " ",
        "Hi Anna,",
        "Thanks, that works.",
        "> quoted line",
        ">> deeper",
        "> ",
        "-- ",
        "--",
        "Sent from my iPhone",
        "On Mon, Jan 5, 2024 at 10:02 AM Anna <anna@example.com> wrote:",
        "> On Jan 5, 2024, at 10:02, Anna <anna@example.com> wrote:",
        "Am 05.01.24 um 10:02 schrieb Hans:",
        "W dniu 5.01.2024 o 10:02, Anna pisze:",
        "-----Original Message-----",
        "________________________________",
        "From: Bob <bob@example.com>",
        "Sent: Monday, January 5, 2024 10:02 AM",
        "To: Alice",
        "Subject: Quote",
        "Data: 5 stycznia",
        "---------- Forwarded message ---------",
        "Anna <",
        "anna@example.com> wrote:",
    ]
)


@settings(max_examples=400, deadline=None, database=None)
@given(st.text())
def test_no_text_is_lost_on_arbitrary_text(text: str):
    folded = split_text(text)
    assert_nothing_lost(text, folded)
    if not folded.quoted and not folded.signature:
        assert folded.body == text.rstrip()


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EMAIL_LINES | st.text(max_size=40), max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_no_text_is_lost_on_email_like_text(lines: list[str], newline: str):
    text = newline.join(lines)
    folded = split_text(text)
    assert_nothing_lost(text, folded)
    if not folded.quoted and not folded.signature:
        assert folded.body == text.rstrip()


# --- HTML ---------------------------------------------------------------------------------------------------------

GMAIL_HTML = (
    '<div dir="ltr">Friday works.<div><br></div><div>Tom</div></div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Jan 5, 2024 at 10:02 AM Anna Schmidt '
    '&lt;<a href="mailto:anna@example.com">anna@example.com</a>&gt; wrote:<br></div>'
    '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);'
    'padding-left:1ex"><div dir="ltr">Could we move the call?</div></blockquote></div>'
)


def test_gmail_quote_div():
    folded = split_html(GMAIL_HTML)
    assert folded.body_html == '<div dir="ltr">Friday works.<div><br></div><div>Tom</div></div><br>'
    assert folded.quoted_html.startswith('<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon')
    assert "Could we move the call?</div></blockquote></div>" in folded.quoted_html


def test_apple_mail_blockquote_type_cite():
    html = (
        '<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"></head>'
        '<body dir="auto">Sounds good!<br><br><div dir="ltr">Sent from my iPhone</div>'
        '<div dir="ltr"><br><blockquote type="cite">On Jan 5, 2024, at 10:02, Anna &lt;anna@example.com&gt; wrote:'
        '<br><br></blockquote></div><blockquote type="cite"><div dir="ltr">Friday at 3?</div></blockquote>'
        "</body></html>"
    )
    folded = split_html(html)
    assert "Sounds good!" in folded.body_html and "Sent from my iPhone" in folded.body_html
    assert "wrote:" not in folded.body_html and "Friday at 3?" not in folded.body_html
    assert folded.quoted_html.startswith("<html><head>")
    assert '<blockquote type="cite">On Jan 5, 2024' in folded.quoted_html
    assert '<div dir="ltr">Friday at 3?</div></blockquote></body></html>' in folded.quoted_html
    assert "Sounds good" not in folded.quoted_html


def test_apple_mail_attribution_above_the_blockquote_goes_with_the_quote():
    html = (
        "<html><body>Yes.<div><br><div>On Jan 5, 2024, at 10:02, Anna &lt;anna@example.com&gt; wrote:</div>"
        '<br class="Apple-interchange-newline"><blockquote type="cite"><div>Friday at 3?</div></blockquote>'
        "</div></body></html>"
    )
    folded = split_html(html)
    assert "Yes." in folded.body_html and "wrote:" not in folded.body_html
    assert "<div>On Jan 5, 2024, at 10:02, Anna &lt;anna@example.com&gt; wrote:</div>" in folded.quoted_html
    assert "Friday at 3?" in folded.quoted_html


def test_thunderbird_cite_prefix_and_blockquote():
    html = (
        "<html><head></head><body><p>Thanks!</p>"
        '<div class="moz-cite-prefix">On 05.01.24 10:02, Anna Schmidt wrote:<br></div>'
        '<blockquote type="cite" cite="mid:abc@example.com">Friday?</blockquote></body></html>'
    )
    assert split_html(html) == FoldedHtml(
        "<html><head></head><body><p>Thanks!</p></body></html>",
        '<html><head></head><body><div class="moz-cite-prefix">On 05.01.24 10:02, Anna Schmidt wrote:<br></div>'
        '<blockquote type="cite" cite="mid:abc@example.com">Friday?</blockquote></body></html>',
    )


def test_outlook_web_appendonsend_and_divrplyfwdmsg():
    html = (
        '<div dir="ltr"><div>Confirmed.</div></div><div id="appendonsend"></div>'
        '<hr style="display:inline-block;width:98%" tabindex="-1">'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif"><b>From:</b> Bob &lt;bob@example.com&gt;'
        "<br><b>Sent:</b> Monday, January 5, 2024 10:02 AM<br><b>Subject:</b> Quote</font></div>"
        "<div>Old text</div>"
    )
    folded = split_html(html)
    assert folded.body_html == '<div dir="ltr"><div>Confirmed.</div></div>'
    assert folded.quoted_html.startswith('<div id="appendonsend"></div><hr')
    assert folded.quoted_html.endswith("<div>Old text</div>")


def test_outlook_web_without_appendonsend():
    html = '<p>Ok.</p><div id="divRplyFwdMsg"><b>From:</b> Bob<br><b>Sent:</b> Monday</div><p>Old</p>'
    assert split_html(html) == FoldedHtml(
        "<p>Ok.</p>", '<div id="divRplyFwdMsg"><b>From:</b> Bob<br><b>Sent:</b> Monday</div><p>Old</p>'
    )


OUTLOOK_DESKTOP = (
    '<html><head><style>p.MsoNormal{margin:0}</style></head><body lang="EN-US"><div class="WordSection1">'
    '<p class="MsoNormal">Attached.<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
    '<div><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">'
    '<p class="MsoNormal"><b>From:</b> Bob Jones &lt;bob@example.com&gt;<br><b>Sent:</b> Monday, January 5, 2024'
    " 10:02 AM<br><b>To:</b> Alice<br><b>Subject:</b> Quote<o:p></o:p></p></div></div>"
    '<p class="MsoNormal">Can you send the quote?<o:p></o:p></p></div></body></html>'
)


def test_outlook_desktop_border_top_header_block():
    folded = split_html(OUTLOOK_DESKTOP)
    assert "Attached." in folded.body_html and "From:" not in folded.body_html
    assert folded.quoted_html.startswith("<html><head><style>p.MsoNormal{margin:0}</style></head>")
    assert '<div style="border:none;border-top:solid #E1E1E1 1.0pt' in folded.quoted_html
    assert "Can you send the quote?" in folded.quoted_html and "Attached." not in folded.quoted_html


def test_outlook_style_border_with_other_spacing_and_language():
    html = (
        '<div><p>Anbei.</p><div style="border: none; border-top: solid #B5C4DF 1pt; padding: 3pt 0 0 0">'
        "<p><b>Von:</b> Bob<br><b>Gesendet:</b> Montag</p></div><p>Alt</p></div>"
    )
    folded = split_html(html)
    assert folded.body_html == "<div><p>Anbei.</p></div>"
    assert "<b>Von:</b> Bob" in folded.quoted_html and "<p>Alt</p>" in folded.quoted_html


def test_attribution_line_without_client_markup():
    html = "<p>Ok</p><p>On Mon, Jan 5, 2024 at 10:02 AM Anna &lt;anna@example.com&gt; wrote:</p><p>old</p>"
    assert split_html(html) == FoldedHtml(
        "<p>Ok</p>", "<p>On Mon, Jan 5, 2024 at 10:02 AM Anna &lt;anna@example.com&gt; wrote:</p><p>old</p>"
    )


def test_outlook_reply_above_a_gmail_thread_cuts_at_the_outlook_header():
    html = (
        '<p>Agreed.</p><div id="divRplyFwdMsg"><b>From:</b> Anna<br><b>Sent:</b> Tuesday</div>'
        '<p>Friday then.</p><div class="gmail_quote">On Mon, Bob wrote:<blockquote>Friday?</blockquote></div>'
    )
    folded = split_html(html)
    assert folded.body_html == "<p>Agreed.</p>"
    assert folded.quoted_html.startswith('<div id="divRplyFwdMsg">')
    assert '<div class="gmail_quote">' in folded.quoted_html


def test_html_is_not_sanitised_here():
    html = '<p>Hi<script>track()</script></p><div class="gmail_quote">old</div>'
    assert split_html(html) == FoldedHtml("<p>Hi<script>track()</script></p>", '<div class="gmail_quote">old</div>')


@pytest.mark.parametrize(
    "html",
    [
        "<p>Just <b>hello</b></p>",
        "<blockquote>Clause 4.2 says we pay in 30 days.</blockquote><p>Agreed?</p>",
        "<!DOCTYPE html><html><body><p>Hi &amp; bye</p></body></html>",
        "plain words, no tags",
    ],
)
def test_html_without_quote_comes_back_unchanged(html: str):
    assert split_html(html) == FoldedHtml(html, "")


# --- HTML: hostile input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("html", ["", "   ", "<!-- only a comment -->", "\x00\x01", "<", "</div></p>"])
def test_empty_or_contentless_html(html: str):
    assert split_html(html) == FoldedHtml(html, "")


def test_broken_html_is_cut_without_raising():
    folded = split_html("<div><p>unclosed <blockquote type=cite>x <b><i></b></i> <<<>>> &&&; </tr></td><td>")
    assert "unclosed" in folded.body_html and "x" not in folded.body_html.replace("unclosed", "")
    assert folded.quoted_html.startswith('<div><blockquote type="cite">x')
    assert "&lt;&lt;&lt;&gt;&gt;&gt;" in folded.quoted_html


@pytest.mark.parametrize(
    "html",
    [
        "<p>a</b></i><table><tr><td>b<blockquote type='cite'>c",
        '<div class="gmail_quote"',
        "<div class=gmail_quote><div class=gmail_quote><div class=gmail_quote>",
        "<html><html><body><body><blockquote type=cite></html>x",
        "<p>\ud800 lone surrogate</p><div class='gmail_quote'>q</div>",
        "<svg><foreignObject><blockquote type=cite>x</blockquote></foreignObject></svg>",
        "<o:p>Outlook</o:p><v:shape>vml</v:shape><div id=divRplyFwdMsg>q</div>",
        "<addr@example.com><div class=gmail_quote>q</div>",
    ],
)
def test_broken_html_never_raises(html: str):
    folded = split_html(html)
    assert isinstance(folded.body_html, str) and isinstance(folded.quoted_html, str)


def test_five_thousand_nested_blockquotes_are_left_alone():
    html = '<blockquote type="cite">' * 5000 + "On Mon, John wrote:<br>deep" + "</blockquote>" * 5000
    folded, seconds = timed(split_html, html)
    assert folded == FoldedHtml(html, "")  # libxml2 would drop what is nested past 256 levels
    assert seconds < HANG


def test_html_over_the_limit_is_not_folded():
    html = "<p>Hi</p><div class='gmail_quote'>" + "x" * MAX_HTML_CHARS + "</div>"
    assert split_html(html) == FoldedHtml(html, "")


@pytest.mark.parametrize(
    "html",
    [
        "x<br>" * 390_000,
        "<p>Am " + " schrieb x" * 4_000 + ":</p>",
        ("Am " + " schrieb x" * 30 + "<br>") * 2_400,
        "<div>x</div>" * 9_000,
        '<div style="border-top:solid #E1E1E1 1.0pt">' * 200 + "From: x" + "</div>" * 200,
    ],
    ids=["many-lines", "long-line", "many-long-lines", "many-divs", "nested-borders"],
)
def test_huge_hostile_html_is_handled_quickly(html: str):
    folded, seconds = timed(split_html, html)
    assert seconds < HANG
    assert isinstance(folded.body_html, str)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_arbitrary_text_as_html_never_raises(text: str):
    folded = split_html(text)
    if not folded.quoted_html:
        assert folded.body_html == text


HTML_PIECES = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<div>",
        "</div>",
        "<br>",
        "<blockquote>",
        "</blockquote>",
        '<blockquote type="cite">',
        '<div class="gmail_quote">',
        '<div id="divRplyFwdMsg">',
        '<div id="appendonsend"></div>',
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt">',
        "<b>From:</b> Bob",
        "<b>Sent:</b> Monday",
        "On Mon, Jan 5, 2024 at 10:02 AM Anna wrote:",
        "hello",
        "&amp;",
        "<",
        ">",
        "<!--",
        "-->",
        "<html>",
        "<body>",
        "</html>",
        "<table><tr><td>",
        "<o:p>",
        "\x00",
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(HTML_PIECES | st.text(max_size=10), max_size=40))
def test_tag_soup_never_raises(pieces: list[str]):
    html = "".join(pieces)
    folded = split_html(html)
    if not folded.quoted_html:
        assert folded.body_html == html
