"""``herald recipients preferences show|set``: the same choices as the API, audited."""

from __future__ import annotations

from tests.cli_support import Herald


async def test_set_and_show_choices_in_general_and_per_typology(herald: Herald) -> None:
    """Refusing email, then accepting it for one typology, shows both; saying it again
    changes nothing; the audit log names the CLI."""
    assert (await herald("typologies", "create", "message", "Invoices")).code == 0
    ada = await herald.json("recipients", "add", "--name", "Ada", "--email", "ada@example.org")
    rid = str(ada["id"])
    empty = await herald.json("recipients", "preferences", "show", rid)
    assert empty["preferences"] == []
    await herald.json("recipients", "preferences", "set", rid, "--channel", "email", "--refuse")
    both = await herald.json(
        "recipients",
        "preferences",
        "set",
        rid,
        "--channel",
        "email",
        "--accept",
        "--typology",
        "invoices",
    )
    assert [(p["typology_name"], p["accepted"], p["source"]) for p in both["preferences"]] == [
        (None, False, "staff"),
        ("Invoices", True, "staff"),
    ]
    again = await herald("recipients", "preferences", "set", rid, "--channel", "email", "--refuse")
    assert again.code == 0 and "unchanged" in again.out
    shown = await herald("recipients", "preferences", "show", rid)
    assert shown.code == 0 and "refuses" in shown.out and "Invoices" in shown.out
    events = await herald.json("audit", "list", "--action", "preferences.changed")
    assert len(events["items"]) == 2


async def test_an_unknown_typology_or_someone_elses_recipient_is_refused(herald: Herald) -> None:
    """A typology that does not exist is a usage error; another owner's recipient is not found."""
    assert (await herald("keys", "create", "alice")).code == 0
    theirs = await herald.json("recipients", "add", "--name", "Bob")
    rid = str(theirs["id"])
    bad = await herald(
        "recipients", "preferences", "set", rid, "--channel", "sms", "--refuse", "--typology", "X"
    )
    assert bad.code == 2 and "--typology" in bad.err
    hidden = await herald("recipients", "preferences", "show", rid, "--as", "alice")
    assert hidden.code == 1 and "not found" in hidden.err
