"""``herald broadcasts``: a send read, listed and cancelled as one object from the shell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cli_support import Herald


async def _ada(herald: Herald) -> int:
    added = await herald.json("recipients", "add", "--name", "Ada", "--email", "a@x.org")
    return int(added["id"])


async def _broadcast(herald: Herald, *extra: str) -> dict[str, object]:
    """Two channels to a new recipient, as JSON."""
    ada = await _ada(herald)
    sent: dict[str, object] = await herald.json(
        "broadcast",
        "--channel",
        "storage",
        "--channel",
        "email",
        "--to",
        f"customer:{ada}",
        "--subject",
        "Closed",
        "--body",
        "Closed on Friday",
        *extra,
    )
    return sent


async def test_show_and_list_describe_the_broadcast_as_the_api_does(herald: Herald) -> None:
    """`broadcasts show` has both channels and their counters; `list` finds it by status."""
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    sent = await _broadcast(herald, "--send-at", later)
    shown = await herald.json("broadcasts", "show", str(sent["broadcast_id"]))
    assert shown["channels"] == ["storage", "email"] and shown["status"] == "scheduled"
    assert shown["counters"] == {"pending": 2}
    listed = await herald.json("broadcasts", "list", "--status", "scheduled")
    assert [b["id"] for b in listed["items"]] == [sent["broadcast_id"]]
    assert (await herald.json("broadcasts", "list", "--status", "done"))["items"] == []
    table = await herald("broadcasts", "show", str(sent["broadcast_id"]))
    assert table.code == 0 and "scheduled" in table.out and "email" in table.out


async def test_cancel_stops_every_channel_and_a_second_cancel_is_refused(herald: Herald) -> None:
    """One cancel ends both channels; asking again exits 1 saying everything is final."""
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    sent = await _broadcast(herald, "--send-at", later)
    bid = str(sent["broadcast_id"])
    cancelled = await herald.json("broadcasts", "cancel", bid)
    assert cancelled["cancelled"] == 2 and cancelled["broadcast"]["status"] == "cancelled"
    again = await herald("broadcasts", "cancel", bid)
    assert again.code == 1 and "already final" in again.err


async def test_recall_of_a_scheduled_broadcast_cancels_it_and_is_audited(herald: Herald) -> None:
    """A recall before anything was delivered cancels it; the audit log records the recall."""
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    bid = str((await _broadcast(herald, "--send-at", later))["broadcast_id"])
    recalled = await herald.json("broadcasts", "recall", bid)
    assert recalled["cancelled"] == 2 and recalled["to_delete"] == 0
    events = await herald.json("audit", "list", "--action", "broadcast.recalled")
    assert [e["detail"]["broadcast_id"] for e in events["items"]] == [bid]
    nothing = await herald("broadcasts", "recall", bid)
    assert nothing.code == 1 and "nothing to recall" in nothing.err


async def test_a_past_send_at_is_refused_from_the_shell(herald: Herald) -> None:
    """`--send-at` in the past exits 1 naming send_at; nothing is queued."""
    ada = await _ada(herald)
    past = await herald(
        "broadcast",
        "--channel",
        "storage",
        "--to",
        f"customer:{ada}",
        "--body",
        "Hi",
        "--send-at",
        "2020-01-01T10:00:00+01:00",
    )
    assert past.code == 1 and "send_at" in past.err and "past" in past.err
    assert (await herald.json("broadcasts", "list"))["items"] == []
