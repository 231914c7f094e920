"""Pure channel rules: SMS encoding and fragments, Telegram splitting and escaping, addresses."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.addresses import (
    CHANNEL_FIELDS,
    Candidate,
    Problem,
    Target,
    classify,
    is_valid_email,
)
from channels.sms_text import GSM_BASIC, GSM_EXTENSION, analyse_sms
from channels.telegram_text import (
    escape_html,
    escape_markdown_v2,
    render_messages,
    render_text,
    split_text,
    split_with_separators,
    utf16_len,
)
from persistence.phones import normalize_phone

# --- SMS encoding and fragments ---------------------------------------------------------------


def test_plain_ascii_160_is_one_sms() -> None:
    """A 160-character plain text is billed as a single SMS."""
    result = analyse_sms("a" * 160, max_fragments=1)
    assert (result.encoding, result.characters, result.fragments) == ("gsm", 160, 1)
    assert result.per_fragment == 160
    assert result.fits


def test_plain_ascii_161_is_two_fragments() -> None:
    """One character more turns it into a 2-part SMS of 153 characters per part."""
    result = analyse_sms("a" * 161, max_fragments=5)
    assert (result.fragments, result.per_fragment) == (2, 153)


@pytest.mark.parametrize(("length", "fragments"), [(306, 2), (307, 3), (459, 3), (460, 4)])
def test_gsm_multipart_counts_153_per_fragment(length: int, fragments: int) -> None:
    """Long GSM texts are billed 153 characters per fragment."""
    assert analyse_sms("x" * length, max_fragments=10).fragments == fragments


@pytest.mark.parametrize("char", sorted(GSM_EXTENSION))
def test_extension_characters_count_double(char: str) -> None:
    """€, brackets, braces, tilde, pipe, caret, backslash and form feed each cost two characters."""
    result = analyse_sms(char, max_fragments=1)
    assert (result.encoding, result.characters) == ("gsm", 2)


def test_euro_signs_fill_a_single_sms_at_80() -> None:
    """80 euro signs fit one SMS (160 septets); 81 need two."""
    assert analyse_sms("€" * 80, max_fragments=1).fragments == 1
    assert analyse_sms("€" * 81, max_fragments=5).fragments == 2


def test_extension_character_is_not_split_across_fragments() -> None:
    """A € straddling a fragment boundary moves whole to the next fragment (one more part)."""
    text = "a" * 152 + "€" + "a" * 152  # 306 septets: naively 2 fragments
    result = analyse_sms(text, max_fragments=5)
    assert result.characters == 306
    assert result.fragments == 3


@pytest.mark.parametrize("text", ["Perché è così", "Ça va? Ñoño, Übermaß", "Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ"])
def test_gsm_accented_letters_stay_gsm(text: str) -> None:
    """Accents present in the GSM alphabet (è é ù ì ò Ç Ñ Ü ß, Greek capitals) keep GSM-7."""
    result = analyse_sms(text, max_fragments=1)
    assert result.encoding == "gsm"
    assert result.characters == len(text)
    assert result.unsupported == ()


@pytest.mark.parametrize(
    ("text", "culprits"), [("À bientôt", ("À", "ô")), ("ça", ("ç",)), ("Ñandú", ("ú",))]
)
def test_accents_outside_gsm_force_ucs2(text: str, culprits: tuple[str, ...]) -> None:
    """À, ô, ú or a lower-case ç switch the whole SMS to UCS-2 and are named as the cause."""
    result = analyse_sms(text, max_fragments=1)
    assert result.encoding == "ucs2"
    assert result.unsupported == culprits


def test_emoji_counts_two_units() -> None:
    """An emoji forces UCS-2 and costs two of the 70 characters."""
    result = analyse_sms("ok 😀", max_fragments=1)
    assert (result.encoding, result.characters, result.unsupported) == ("ucs2", 5, ("😀",))


def test_newlines_are_allowed() -> None:
    """Line breaks are part of GSM-7: a multi-line SMS is not rejected (the seed's defect)."""
    result = analyse_sms("Hello\nworld\r\nbye", max_fragments=1)
    assert result.encoding == "gsm"
    assert result.characters == 16
    assert result.fits


def test_ucs2_70_is_one_sms_71_is_two() -> None:
    """70 UCS-2 characters fit one SMS; 71 make two parts of 67."""
    assert analyse_sms("À" * 70, max_fragments=1).fragments == 1
    result = analyse_sms("À" * 71, max_fragments=2)
    assert (result.fragments, result.per_fragment) == (2, 67)
    assert analyse_sms("À" * 134, max_fragments=2).fragments == 2
    assert analyse_sms("À" * 135, max_fragments=3).fragments == 3


def test_emoji_is_not_split_across_ucs2_fragments() -> None:
    """An emoji (a surrogate pair) straddling a boundary moves whole to the next fragment."""
    text = "À" * 66 + "😀" + "À" * 66  # 134 units: naively 2 fragments
    assert analyse_sms(text, max_fragments=5).fragments == 3


def test_max_fragments_exceeded_does_not_fit() -> None:
    """A text needing more parts than allowed is reported as not fitting."""
    result = analyse_sms("a" * 161, max_fragments=1)
    assert result.fragments == 2
    assert not result.fits


def test_empty_text_does_not_fit() -> None:
    """An empty SMS has no fragments and cannot be sent."""
    result = analyse_sms("", max_fragments=3)
    assert (result.fragments, result.characters, result.fits) == (0, 0, False)


GSM_CHARS = sorted(GSM_BASIC | GSM_EXTENSION)


@given(st.text(alphabet=sorted(GSM_BASIC), min_size=1, max_size=1200))
def test_gsm_basic_fragments_invariant(text: str) -> None:
    """Without extension characters, fragments are exactly 1 up to 160, else ceil(n / 153)."""
    result = analyse_sms(text, max_fragments=10)
    assert result.encoding == "gsm"
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert result.fragments == expected


@given(st.text(alphabet=GSM_CHARS, min_size=1, max_size=1200))
def test_gsm_extension_fragments_invariant(text: str) -> None:
    """With € and friends, septets are counted double and each fragment loses at most one."""
    result = analyse_sms(text, max_fragments=10)
    septets = len(text) + sum(char in GSM_EXTENSION for char in text)
    assert result.characters == septets
    if septets <= 160:
        assert result.fragments == 1
    else:
        assert math.ceil(septets / 153) <= result.fragments <= math.ceil(septets / 152)


@given(
    st.text(alphabet=GSM_CHARS, max_size=300),
    st.sampled_from(["À", "ç", "😀", "中", "ô"]),
    st.text(alphabet=["À", "😀", "a", "€", "\n"], max_size=300),
)
def test_ucs2_fragments_invariant(head: str, culprit: str, tail: str) -> None:
    """Any non-GSM character forces UCS-2; units are UTF-16 and each fragment loses at most one."""
    text = head + culprit + tail
    result = analyse_sms(text, max_fragments=20)
    units = utf16_len(text)
    assert result.encoding == "ucs2"
    assert culprit in result.unsupported
    assert result.characters == units
    if units <= 70:
        assert result.fragments == 1
    else:
        assert math.ceil(units / 67) <= result.fragments <= math.ceil(units / 66)


# --- Telegram splitting, escaping, rendering ----------------------------------------------------


def test_text_of_exactly_4096_is_one_message() -> None:
    """A text at the Telegram limit is sent as a single message."""
    assert split_text("a" * 4096) == ["a" * 4096]


def test_text_of_4097_is_two_messages_nothing_lost() -> None:
    """One character over the limit gives two messages, never a truncated one."""
    parts = split_text("a" * 4097)
    assert [len(p) for p in parts] == [4096, 1]


def test_emoji_at_the_boundary_is_not_cut() -> None:
    """An emoji (2 UTF-16 units) that would end past 4096 moves whole to the next message."""
    text = "a" * 4095 + "😀" + "b"
    parts = split_text(text)
    assert parts == ["a" * 4095, "😀b"]
    assert all(utf16_len(p) <= 4096 for p in parts)


def test_limit_is_measured_in_utf16_units() -> None:
    """3000 emoji are 6000 units for Telegram, so they need two messages."""
    parts = split_text("😀" * 3000)
    assert [utf16_len(p) for p in parts] == [4096, 1904]


def test_split_prefers_paragraph_breaks() -> None:
    """Long texts break between paragraphs, not inside them."""
    first = "\n".join(["line of the first paragraph"] * 100)  # ~2800 chars with line breaks
    second = "word " * 600
    parts = split_text(f"{first}\n\n{second}")
    assert parts[0] == first
    assert parts[1] == second


def test_split_falls_back_to_line_breaks_then_spaces() -> None:
    """Without paragraphs, the break is at a line end; without lines, between words."""
    lines = "\n".join(["x" * 99] * 60)  # 6000 chars, line breaks only
    parts = split_text(lines)
    assert all(not p.startswith("\n") and not p.endswith("\n") for p in parts)
    assert all(set(p.split("\n")) == {"x" * 99} for p in parts)
    words = " ".join(["abcdefghi"] * 600)
    assert all(set(p.split(" ")) == {"abcdefghi"} for p in split_text(words))


def test_hard_split_when_there_is_no_whitespace() -> None:
    """A text with no spaces at all is still delivered in full, cut at the limit."""
    text = "x" * 10_000
    assert "".join(split_text(text)) == text


def test_an_early_paragraph_break_does_not_waste_a_message() -> None:
    """A paragraph break near the start is ignored in favour of a fuller message."""
    text = "Hi\n\n" + "word " * 1000
    parts = split_text(text)
    assert utf16_len(parts[0]) > 2048


@given(
    st.text(alphabet=["a", "b", " ", "\n", "😀", "é", "&"], max_size=400),
    st.integers(min_value=2, max_value=60),
)
def test_split_invariants(text: str, limit: int) -> None:
    """Every part fits the limit, none is empty, and nothing of the text is lost."""
    pairs = split_with_separators(text, limit)
    assert "".join(part + sep for part, sep in pairs) == text
    assert all(sep in {"", " ", "\n", "\n\n"} for _, sep in pairs)
    assert all(utf16_len(part) <= limit for part, _ in pairs)
    if text:
        assert all(part for part, _ in pairs)
    assert split_text(text, limit) == [part for part, _ in pairs]


def test_escape_html() -> None:
    """Text with <, > and & shows literally in HTML mode instead of breaking the message."""
    assert escape_html('<a href="x">A & B</a>') == '&lt;a href="x"&gt;A &amp; B&lt;/a&gt;'


def test_escape_markdown_v2() -> None:
    """Every MarkdownV2 reserved character is escaped, including the backslash itself."""
    escaped = escape_markdown_v2("1.5 * (x_y) - [a]! \\")
    assert escaped == "1\\.5 \\* \\(x\\_y\\) \\- \\[a\\]\\! \\\\"
    assert escape_markdown_v2("plain text") == "plain text"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (None, "Sale <now>\n\nA & B."),
        ("HTML", "<b>Sale &lt;now&gt;</b>\n\nA &amp; B."),
        ("MarkdownV2", "*Sale <now\\>*\n\nA & B\\."),
    ],
)
def test_render_text_puts_the_subject_in_bold(mode: str | None, expected: str) -> None:
    """The subject is a bold first line and the body is escaped for the parse mode."""
    assert render_text("Sale <now>", "A & B.", mode) == expected


def test_render_text_without_subject_is_just_the_body() -> None:
    """A message without subject has no empty bold line."""
    assert render_text("", "a & b", "HTML") == "a &amp; b"
    with pytest.raises(ValueError, match="parse mode"):
        render_text("s", "b", "BBCode")


def test_render_messages_never_cuts_an_escape() -> None:
    """Escaped long texts are split before escaping, so no entity is broken across messages."""
    messages = render_messages("Hello & welcome", "a&b " * 3000, "HTML")
    assert all(utf16_len(m) <= 4096 for m in messages)
    assert messages[0].startswith("<b>Hello &amp; welcome</b>\n\n")
    assert all("<b>" not in m for m in messages[1:])
    bodies = [messages[0].split("\n\n", 1)[1], *messages[1:]]
    assert all(m.endswith("a&amp;b") for m in bodies[:-1])


# --- addresses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+39 347 123 4567",
        "0039 347 123 4567",
        "393471234567",  # as Telegram shares a contact: no plus
        "347-123-4567",  # national, default region
        "(347) 123.4567",
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str) -> None:
    """The usual ways of writing a mobile number all become the same E.164 number."""
    assert normalize_phone(raw, "IT") == "+393471234567"


def test_foreign_number_without_plus_from_telegram() -> None:
    """A foreign number shared via Telegram (no plus) is not mistaken for a national one."""
    assert normalize_phone("447911123456", "IT") == "+447911123456"


@pytest.mark.parametrize("raw", ["+39 12", "abc", "12", "", "+39 347 123 4567 ext 5"])
def test_invalid_phone_numbers(raw: str) -> None:
    """Too short, non-numeric or decorated numbers are rejected, not guessed."""
    assert normalize_phone(raw, "IT") is None


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("mario.rossi@example.it", True),
        ("first+tag@sub.example.co.uk", True),
        ("a@müller.de", True),
        ("x@", False),
        ("@example.com", False),
        ("a@@b.it", False),
        ("a b@example.it", False),
        ("a..b@example.it", False),
        (".a@example.it", False),
        ("a@localhost", False),
        ("a@-bad.it", False),
        ("a@1.2.3.4", False),
        ("l" * 65 + "@example.it", False),
        ("a@" + "d" * 250 + ".it", False),
    ],
)
def test_email_syntax(address: str, valid: bool) -> None:
    """Addresses that no mail server would accept are caught before sending."""
    assert is_valid_email(address) is valid


def _customer(ident: int, kind: str = "customer", **fields: object) -> Candidate:
    return Candidate(kind=kind, id=ident, name=f"{kind} {ident}", **fields)  # type: ignore[arg-type]


def test_email_classification() -> None:
    """Missing and malformed emails are invalid; the same mailbox twice is sent once."""
    result = classify(
        "email",
        [
            _customer(1, email="Anna@Example.it"),
            _customer(2),
            _customer(3, email="x@"),
            _customer(4, email="anna@example.IT"),
        ],
        default_region="IT",
    )
    assert result.valid == [Target("customer", 1, "Anna@Example.it")]
    assert result.invalid == [
        Problem("customer", 2, None, "no email address"),
        Problem("customer", 3, "x@", "invalid email address 'x@'"),
    ]
    assert result.duplicates == [
        Problem("customer", 4, "anna@example.IT", "same email address as customer 1")
    ]


def test_sms_classification() -> None:
    """Numbers are checked as E.164 and the same phone written two ways gets one SMS."""
    result = classify(
        "sms",
        [
            _customer(1, sms="+39 347 123 4567"),
            _customer(2, kind="external_subject", sms="0039-347-1234567"),
            _customer(3),
            _customer(4, sms="+39 12"),
        ],
        default_region="IT",
    )
    assert result.valid == [Target("customer", 1, "+393471234567")]
    assert result.duplicates == [
        Problem("external_subject", 2, "+393471234567", "same mobile number as customer 1")
    ]
    assert result.invalid == [
        Problem("customer", 3, None, "no mobile number"),
        Problem("customer", 4, "+39 12", "not a valid phone number '+39 12'"),
    ]


def test_telegram_classification() -> None:
    """Only linked chats that did not stop or block the bot receive Telegram messages."""
    result = classify(
        "telegram",
        [
            _customer(1, telegram_chat_id=100),
            _customer(2),
            _customer(3, telegram_chat_id=300, telegram_opted_out=True),
            _customer(4, telegram_chat_id=400, telegram_blocked=True),
            _customer(5, kind="external_subject", telegram_chat_id=100),
        ],
        default_region="IT",
    )
    assert result.valid == [Target("customer", 1, "100")]
    assert [(p.id, p.reason) for p in result.invalid] == [
        (2, "not registered with the bot"),
        (3, "opted out with /stop"),
        (4, "blocked the bot"),
    ]
    assert result.duplicates == [
        Problem("external_subject", 5, "100", "same Telegram chat as customer 1")
    ]


def test_storage_deduplicates_by_kind_and_id() -> None:
    """Customer 1 and external subject 1 both get the inbox message; customer 1 twice gets one."""
    result = classify(
        "storage",
        [_customer(1), _customer(1, kind="external_subject"), _customer(1)],
        default_region="IT",
    )
    assert result.valid == [
        Target("customer", 1, "customer:1"),
        Target("external_subject", 1, "external_subject:1"),
    ]
    assert result.duplicates == [
        Problem("customer", 1, "customer:1", "listed more than once"),
    ]
    assert result.invalid == []


def test_same_recipient_twice_without_address_is_a_duplicate() -> None:
    """A recipient listed twice is reported once as invalid and once as a duplicate."""
    result = classify("email", [_customer(7), _customer(7)], default_region="IT")
    assert [p.reason for p in result.invalid] == ["no email address"]
    assert [p.reason for p in result.duplicates] == ["listed more than once"]


@pytest.mark.parametrize("channel", sorted(CHANNEL_FIELDS))
def test_each_channel_reads_only_the_fields_it_declares(channel: str) -> None:
    """A send loads only the declared fields, and its verdicts are the same as with all of them."""
    full = [
        _customer(1, email="a@example.it", sms="+393471234567", telegram_chat_id=1),
        _customer(2, email="bad@", sms="12", telegram_chat_id=2, telegram_blocked=True),
        _customer(3, telegram_chat_id=3, telegram_opted_out=True),
        _customer(4, kind="external_subject", email="A@example.it", sms="+39 347 123 4567"),
        _customer(4, kind="external_subject", telegram_chat_id=1),
    ]
    defaults = Candidate._field_defaults
    lean = [
        c._replace(
            **{f: defaults[f] for f in Candidate._fields[2:] if f not in CHANNEL_FIELDS[channel]}
        )
        for c in full
    ]
    assert classify(channel, lean, default_region="IT") == classify(
        channel, full, default_region="IT"
    )


def test_unknown_channel_is_refused() -> None:
    """A typo in the channel name is an error, not an empty send."""
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        classify("fax", [], default_region="IT")
