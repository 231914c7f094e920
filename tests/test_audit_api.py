"""The audit log through the admin API: every action an API key takes leaves one row naming the
key's owner, the key's prefix, the records and where the request came from; only superusers read
it, with filters; no secret is ever in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from persistence.audit import Actor, AuditAction, record
from persistence.models import AuditEvent
from tests.api_support import Api, running_api
from tests.conftest import Database


async def audit_text(db: Database) -> str:
    """Every value of every audit row, as one text to search for secrets."""
    async with db.sessions() as session:
        events = (await session.execute(select(AuditEvent))).scalars().all()
    return "\n".join(
        repr([getattr(e, c.key) for c in AuditEvent.__table__.columns]) for e in events
    )


def zulu(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _every_action(api: Api) -> dict[str, Any]:
    """Create, change, import, send, cancel, invoice and delete, as the admin's key."""
    created = await api.post(
        "/api/v1/recipients/customer",
        json={"name": "Ada", "email": "ada@example.org"},
        expect=201,
    )
    await api.call("PATCH", f"/api/v1/recipients/customer/{created['id']}", json={"note": "VIP"})
    report = await api.post(
        "/api/v1/recipients/customer/import",
        data="name,email,external_id\nBruno,bruno@example.org,B1\n",
        headers={"Content-Type": "text/csv"},
        expect=200,
    )
    sent = await api.post(
        "/api/v1/messages",
        json={"channels": ["storage"], "body": "Hi", "recipients": {"customer": [created["id"]]}},
        expect=202,
    )
    message_id = sent["messages"][0]["id"]
    await api.post(f"/api/v1/messages/{message_id}/cancel", expect=200)
    today = datetime.now(UTC).date()
    await api.post(
        "/api/v1/invoices/mark-invoiced",
        json={
            "period_start": today.replace(day=1).isoformat(),
            "sender_id": api.admin.id,
            "channel": "storage",
            "force": True,
        },
        expect=200,
    )
    await api.call("DELETE", f"/api/v1/recipients/customer/{created['id']}", expect=200)
    return {"customer": created["id"], "imported": report["rows"][0]["id"], "message": message_id}


async def test_each_api_action_leaves_one_row_naming_the_key_and_the_records(
    db: Database, tmp_path: Path
) -> None:
    """A superuser reads who did what: the admin's key, its prefix, the records, the address."""
    async with running_api(db, tmp_path) as api:
        ids = await _every_action(api)
        page = await api.get("/api/v1/audit", expect=200)
    customer, message = str(ids["customer"]), str(ids["message"])
    seen = [(e["action"], e["subject_kind"], e["subject_ids"]) for e in reversed(page["items"])]
    assert seen == [
        ("recipient.created", "customer", [customer]),
        ("recipient.updated", "customer", [customer]),
        ("recipients.imported", "customer", [str(ids["imported"])]),
        ("broadcast.sent", "message", [message]),
        ("broadcast.cancelled", "message", [message]),
        ("invoices.marked", "message", [message]),
        ("recipient.deleted", "customer", [customer]),
    ]
    by_action = {e["action"]: e for e in page["items"]}
    assert by_action["recipient.updated"]["detail"] == {"fields": ["note"]}
    assert by_action["recipients.imported"]["detail"]["created"] == 1
    assert by_action["broadcast.cancelled"]["detail"] == {"cancelled_deliveries": 1}
    assert by_action["invoices.marked"]["detail"]["messages"] == 1
    for event in page["items"]:
        assert event["actor_kind"] == "api_key"
        assert (event["actor_id"], event["actor_label"]) == (api.admin.id, "admin")
        assert event["key_prefix"] == api.admin_key[:11]
        assert event["remote_addr"] == "127.0.0.1" and event["user_agent"]
    assert page["next_offset"] is None


async def test_only_a_superuser_reads_the_log_and_its_filters_narrow_it(
    db: Database, tmp_path: Path
) -> None:
    """A clerk gets 403 with the reason; filters by action, actor, record and time all work."""
    async with running_api(db, tmp_path) as api:
        _, clerk_key = await api.user("clerk")
        ids = await _every_action(api)
        clerk_made = await api.post(
            "/api/v1/recipients/customer", json={"name": "Own"}, key=clerk_key, expect=201
        )
        refused = await api.get("/api/v1/audit", key=clerk_key, expect=403)
        assert "superuser" in refused["error"]["message"]

        async def actions(**params: str) -> list[str]:
            page = await api.get("/api/v1/audit", params=params, expect=200)
            return [e["action"] for e in reversed(page["items"])]

        assert await actions(action="recipient.created") == ["recipient.created"] * 2
        assert await actions(actor="clerk") == ["recipient.created"]
        assert len(await actions(actor=api.admin_key[:11])) == 7
        assert await actions(actor_kind="cli") == []
        on_message = await actions(subject_kind="message", subject_id=str(ids["message"]))
        assert on_message == ["broadcast.sent", "broadcast.cancelled", "invoices.marked"]
        assert await actions(subject_id=str(clerk_made["id"]), subject_kind="customer") == [
            "recipient.created"
        ]
        hour = timedelta(hours=1)
        assert len(await actions(since=zulu(datetime.now(UTC) - hour))) == 8
        assert await actions(since=zulu(datetime.now(UTC) + hour)) == []
        assert await actions(until=zulu(datetime.now(UTC) - hour)) == []
        one = await api.get("/api/v1/audit", params={"limit": "1", "offset": "1"}, expect=200)
        assert len(one["items"]) == 1 and one["next_offset"] == 2
        naive = await api.get("/api/v1/audit", params={"since": "2026-12-01T10:00:00"}, expect=422)
        assert "since" in naive["error"]["message"]
        typo = await api.get("/api/v1/audit", params={"who": "admin"}, expect=422)
        assert "who" in typo["error"]["message"]
        assert "unknown query parameter" in typo["error"]["message"]


async def test_no_key_is_ever_written_to_the_log(db: Database, tmp_path: Path) -> None:
    """The keys that made the calls appear nowhere in the table, only their prefixes."""
    async with running_api(db, tmp_path) as api:
        _, clerk_key = await api.user("clerk")
        await _every_action(api)
        await api.post("/api/v1/recipients/customer", json={"name": "C"}, key=clerk_key)
    text = await audit_text(db)
    assert api.admin_key[:11] in text
    assert api.admin_key not in text and clerk_key not in text
    assert api.admin_key[11:] not in text and clerk_key[11:] not in text


async def test_a_recorded_event_cannot_be_changed_afterwards(db: Database, tmp_path: Path) -> None:
    """Even with SQL, an audit row cannot be rewritten: the database refuses the UPDATE."""
    async with running_api(db, tmp_path) as api:
        await api.post("/api/v1/recipients/customer", json={"name": "Ada"}, expect=201)
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.sessions.begin() as session:
            await session.execute(update(AuditEvent).values(actor_label="someone else"))
    async with db.sessions() as session:
        assert (await session.execute(select(AuditEvent.actor_label))).scalars().all() == ["admin"]


async def test_a_detail_named_like_a_secret_is_refused_before_it_is_written(db: Database) -> None:
    """Code that tried to log a password or token in a detail fails at once; nothing is written."""
    for name in ("password", "new_token", "Key_Hash", "client_secret"):
        with pytest.raises(ValueError, match="secret"):
            async with db.sessions.begin() as session:
                await record(
                    session,
                    Actor.bot(),
                    AuditAction.PREFERENCES_CHANGED,
                    "customer",
                    [1],
                    {name: 1},
                )
    async with db.sessions() as session:
        assert (await session.execute(select(AuditEvent))).first() is None
