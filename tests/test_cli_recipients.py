"""The operator's CLI for recipients and typologies: every command's help, list/show/update/
delete with the API's filters and owner rules, CSV import that upserts, typologies."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bot import cli
from tests.cli_support import Herald


def _leaf_commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return [prefix]
    found: list[tuple[str, ...]] = []
    for name, child in subparsers[0].choices.items():
        found += _leaf_commands(child, (*prefix, name))
    return found


def test_every_command_explains_itself_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    """`herald COMMAND --help` exits 0 and shows at least one example, for every command."""
    commands = _leaf_commands(cli.build_parser())
    assert ("recipients", "list") in commands and ("keys", "revoke") in commands
    for command in commands:
        assert cli.main([*command, "--help"]) == 0, command
        shown = capsys.readouterr().out
        assert "example" in shown and f"herald {' '.join(command)}" in shown, command
    assert cli.main(["recipients", "list", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


async def test_recipients_add_list_show_update_delete(herald: Herald) -> None:
    """Recipients are managed end to end, found with the API's filters, and missing ids say so."""
    assert (await herald("typologies", "create", "customer", "Retail")).code == 0
    ada = await herald.json("recipients", "add", "--name", "Ada", "--phone", "333 123 4567")
    assert ada["sms"] == "+393331234567"
    bob = await herald.json(
        "recipients", "add", "--name", "Bob", "--email", "bob@example.org", "--typology", "retail"
    )
    bad = await herald("recipients", "add", "--name", "X", "--phone", "12")
    assert bad.code == 2 and "--phone: '12' is not a valid phone number" in bad.err
    listed = await herald.json("recipients", "list", "--has", "sms")
    assert [r["name"] for r in listed["items"]] == ["Ada"]
    retail = await herald.json("recipients", "list", "--typology", "Retail", "--lacks", "sms")
    assert [r["id"] for r in retail["items"]] == [bob["id"]]
    found = await herald("recipients", "list", "--search", "ad")
    assert found.code == 0 and "Ada" in found.out and "Bob" not in found.out
    changed = await herald.json(
        "recipients", "update", str(ada["id"]), "--email", "ada@example.org", "--opted-out", "yes"
    )
    assert changed["email"] == "ada@example.org" and changed["telegram_opted_out"] is True
    assert [
        r["id"] for r in (await herald.json("recipients", "list", "--opted-out", "yes"))["items"]
    ] == [ada["id"]]
    cleared = await herald.json(
        "recipients", "update", str(bob["id"]), "--typology", "", "--email", ""
    )
    assert cleared["typology_id"] is None and cleared["email"] is None
    shown = await herald("recipients", "show", str(ada["id"]))
    assert shown.code == 0 and "ada@example.org" in shown.out
    deleted = await herald("recipients", "delete", str(bob["id"]), "999")
    assert deleted.code == 1 and "customer 999 not found" in deleted.err
    missing = await herald("recipients", "show", str(bob["id"]))
    assert missing.code == 1 and f"customer {bob['id']} not found" in missing.err


async def test_recipients_follow_the_api_owner_rules(herald: Herald) -> None:
    """--as a user who is not a superuser sees and changes only the recipients they own."""
    assert (await herald("keys", "create", "alice")).code == 0
    theirs = await herald.json("recipients", "add", "--name", "Cli's", "--phone", "3331112222")
    mine = await herald.json(
        "recipients", "add", "--name", "Alice's", "--phone", "3332223333", "--as", "alice"
    )
    seen = await herald.json("recipients", "list", "--as", "alice")
    assert [r["id"] for r in seen["items"]] == [mine["id"]]
    refused = await herald(
        "recipients", "update", str(theirs["id"]), "--name", "X", "--as", "alice"
    )
    assert refused.code == 1 and "not found" in refused.err
    everyone = await herald.json("recipients", "list")
    assert {r["id"] for r in everyone["items"]} == {theirs["id"], mine["id"]}
    nobody = await herald("recipients", "list", "--as", "nobody")
    assert nobody.code == 1 and "no active user named 'nobody'" in nobody.err


async def test_csv_import_from_a_spreadsheet_upserts_and_reports_every_row(
    herald: Herald, tmp_path: Path
) -> None:
    """A ;-separated UTF-8 file with a BOM imports; a second import changes nothing; a bad row
    is reported with its line and exit code 1; all-or-nothing writes nothing."""
    sheet = tmp_path / "clienti.csv"
    sheet.write_bytes(
        "external_id;Nome;Cellulare;Codice Fiscale\n"
        "A1;Anna Rossi;333 111 2222;RSSNNA80A01H501U\n"
        "A2;Bruno Bianchi;333 222 3333;\n".encode("utf-8-sig")
    )
    first = await herald.json("recipients", "import", str(sheet))
    assert (first["created"], first["delimiter"], first["match"]) == (2, ";", "external_id")
    again = await herald("recipients", "import", str(sheet))
    assert again.code == 0 and "created 0, updated 0, unchanged 2, rejected 0" in again.out
    sheet.write_text(
        "external_id;Nome;Cellulare\nA1;Anna Rossi;333 999 0000\nA3;Carla;12\n", encoding="utf-8"
    )
    edited = await herald.json("recipients", "import", str(sheet), code=1)
    assert (edited["updated"], edited["rejected"]) == (1, 1)
    assert edited["rows"][0]["changed"] == ["sms"]
    assert edited["rows"][1]["errors"][0]["message"] == "'12' is not a valid phone number"
    strict = await herald("recipients", "import", str(sheet), "--all-or-nothing")
    assert strict.code == 1 and "nothing written" in strict.err
    names = await herald.json("recipients", "list")
    assert sorted(r["name"] for r in names["items"]) == ["Anna Rossi", "Bruno Bianchi"]
    help_text = await herald("recipients", "import", "--help")
    assert "external_id" in help_text.out and "codice_fiscale" in help_text.out


async def test_typologies_list_create_delete(herald: Herald) -> None:
    """Typologies of each kind and of messages; duplicates and non-superusers are refused."""
    created = await herald.json("typologies", "create", "message", "Invoices")
    assert created["scope"] == "message"
    assert (await herald("typologies", "create", "external_subject", "Accountants")).code == 0
    duplicate = await herald("typologies", "create", "message", "invoices")
    assert duplicate.code == 1 and "already exists" in duplicate.err
    assert (await herald("keys", "create", "bob")).code == 0
    refused = await herald("typologies", "create", "customer", "VIP", "--as", "bob")
    assert refused.code == 1 and "only a superuser" in refused.err
    listed = await herald.json("typologies", "list")
    assert [(t["scope"], t["name"]) for t in listed["typologies"]] == [
        ("external_subject", "Accountants"),
        ("message", "Invoices"),
    ]
    gone = await herald("typologies", "delete", "message", "Invoices", "Nope")
    assert gone.code == 1 and "message typology Nope not found" in gone.err
    assert (await herald.json("typologies", "list", "message"))["typologies"] == []
    unknown = await herald("typologies", "list", "robots")
    assert unknown.code == 2 and "unknown typology scope 'robots'" in unknown.err
