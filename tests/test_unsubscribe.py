"""Unsubscribe links in emails: RFC 8058 one-click, the confirmation page, forged tokens."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from sqlalchemy import select

from channels.base import Delivery, OutgoingMessage
from channels.composition import ComposeRequest
from channels.smtp_channel import EmailChannel, SmtpConfig
from channels.unsubscribe import UnsubscribeLinks
from persistence.audit import AuditAction
from persistence.models import AuditEvent
from persistence.preferences import list_preferences
from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.factories import make_customers

LINKS = UnsubscribeLinks(b"k" * 32, "https://herald.example.org/")
SMTP = SmtpConfig(
    host="127.0.0.1",
    port=25,
    username=None,
    password=None,
    starttls=False,
    ssl=False,
    timeout=5,
    sender="Herald <herald@example.org>",
)


def _links(api: Api) -> UnsubscribeLinks:
    assert api.context.unsubscribe is not None
    return api.context.unsubscribe


async def _post(api: Api, path: str, data: str, **headers: str) -> tuple[int, str]:
    # A mail client: no cookies, no CSRF token.
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            api.client.make_url(path),
            data=data,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        ) as response,
    ):
        return response.status, await response.text()


async def _refused_email(api: Api, rid: int) -> list[tuple[str, bool]]:
    async with api.db.sessions() as session:
        return [
            (p.channel, p.accepted)
            for p in await list_preferences(session, "customer", rid)
            if p.typology_id is None
        ]


def test_every_email_carries_the_one_click_headers_and_a_visible_link() -> None:
    """List-Unsubscribe names this person's own link, List-Unsubscribe-Post says one-click,
    and the text and HTML parts both end with the link."""
    message = OutgoingMessage(42, "email", "News", "Hello", "<html><body><p>Hi</p></body></html>")
    mail = EmailChannel.build(
        SMTP, message, Delivery(7, 42, "customer", 12, "anna@example.org", 1), unsubscribe=LINKS
    )
    url = LINKS.url("customer", 12, "email")
    assert mail["List-Unsubscribe"] == f"<{url}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert url in text.get_content() and f'href="{url}"' in html.get_content()
    assert html.get_content().index(url) < html.get_content().index("</body>")
    ref = LINKS.read(url.rsplit("/", 1)[1])
    assert ref is not None and (ref.kind, ref.id, ref.channel) == ("customer", 12, "email")


def test_a_forged_or_altered_token_reads_as_nothing() -> None:
    """A token signed with another secret, or naming someone else, is no token at all."""
    other = UnsubscribeLinks(b"x" * 32, "https://herald.example.org")
    genuine = LINKS.token("customer", 12, "email")
    moved = LINKS.token("customer", 13, "email").split(".")[0] + "." + genuine.split(".")[1]
    assert LINKS.read(other.token("customer", 12, "email")) is None
    assert LINKS.read(moved) is None
    assert LINKS.read("garbage") is None and LINKS.read("a.b.c") is None


async def test_one_click_unsubscribes_without_a_page_and_is_audited(
    db: Database, tmp_path: Path
) -> None:
    """The RFC 8058 POST answers 200 at once; presend then says "unsubscribed from email", and
    the audit log names the person; a second POST changes nothing more."""
    async with running_api(db, tmp_path) as api:
        (person,) = await make_customers(db.sessions, 1, email="anna@example.org")
        path = f"/unsubscribe/{_links(api).token('customer', person.id, 'email')}"
        status, text = await _post(api, path, "List-Unsubscribe=One-Click")
        assert status == 200 and "unsubscribed" in text
        assert (await _post(api, path, "List-Unsubscribe=One-Click"))[0] == 200
        assert await _refused_email(api, person.id) == [("email", False)]
        plan = await api.context.composer.presend(
            api.admin,
            ComposeRequest(
                channels=["email"], subject="Hi", body="x", recipients={"customer": [person.id]}
            ),
        )
        (problem,) = plan.channels[0].classification.invalid
        assert problem.reason == "unsubscribed from email"
        async with db.sessions() as session:
            events = (
                await session.execute(
                    select(AuditEvent).where(
                        AuditEvent.action == AuditAction.PREFERENCES_CHANGED.value
                    )
                )
            ).scalars()
            (event,) = list(events)
        assert (event.actor_kind, event.actor_label) == ("person", f"customer {person.id}")
        assert event.detail["via"] == "one-click"


async def test_a_forged_token_is_refused_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    """A one-click POST with a token Herald did not sign is refused; the person still gets
    email."""
    async with running_api(db, tmp_path) as api:
        (person,) = await make_customers(db.sessions, 1, email="anna@example.org")
        forged = UnsubscribeLinks(b"f" * 32, "http://x").token("customer", person.id, "email")
        status, _ = await _post(api, f"/unsubscribe/{forged}", "List-Unsubscribe=One-Click")
        assert status == 404
        assert await _refused_email(api, person.id) == []


async def test_the_link_opens_a_confirmation_page_in_the_persons_language(
    db: Database, tmp_path: Path
) -> None:
    """Following the link asks first (in Italian for an Italian browser), without a login; the
    button unsubscribes and says so."""
    async with running_api(db, tmp_path) as api:
        (person,) = await make_customers(db.sessions, 1, name="Anna", email="anna@example.org")
        path = f"/unsubscribe/{_links(api).token('customer', person.id, 'email')}"
        async with aiohttp.ClientSession() as http:
            async with http.get(
                api.client.make_url(path), headers={"Accept-Language": "it"}
            ) as response:
                page = await response.text()
            assert response.status == 200 and "Anna" in page and 'name="confirm"' in page
            assert await _refused_email(api, person.id) == []
            assert 'lang="it"' in page
        status, done = await _post(api, path, "confirm=1")
        assert status == 200 and 'id="unsubscribed"' in done
        assert await _refused_email(api, person.id) == [("email", False)]
