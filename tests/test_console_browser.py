"""The console in a real browser (Debian's Chromium through Playwright) against a real
``herald run`` in sandbox mode, on SQLite and on PostgreSQL: the scenario a person follows, and
the security properties a browser sees.

Set HERALD_CONSOLE_SCREENSHOTS=1 to write screenshots of the main pages to docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import (
    REQUIRE_POSTGRES,
    _create_postgres_database,
    _drop_postgres_database,
)
from tests.console_browser_support import CHROMIUM, CHROMIUM_ARGS, Sandbox

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ADA_PHONE = "+393331234567"
ADA_CHAT = 501
expect.set_options(timeout=20_000)
T = TypeVar("T")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One browser for the module; each test gets a fresh context (its own cookies)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end in its own thread: Playwright's sync API owns this one's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


def _database(backend: str, tmp: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'herald.db'}", None
    try:
        url = _in_thread(_create_postgres_database)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"HERALD_REQUIRE_POSTGRES=1 but PostgreSQL is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    return url, url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    """A fresh database and ``herald run`` on it, as ``make run`` starts it."""
    workdir = tmp_path_factory.mktemp(f"console-{request.param}")
    url, dropped = _database(request.param, workdir)
    running = Sandbox(workdir, url)
    try:
        running.start()
        running.create_users("carol", "bob")
        yield running
    finally:
        running.stop()
        # The service's own log, for a failing test's report (pytest shows captured output).
        print("\n".join(running.log[-200:]))
        if dropped is not None:
            _in_thread(lambda: _drop_postgres_database(dropped))


@pytest.fixture
def context(chromium: Browser, sandbox: Sandbox) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(base_url=sandbox.url, locale="en-GB", timezone_id="Europe/Rome")
    yield ctx
    ctx.close()


def shot(page: Page, name: str) -> None:
    if os.environ.get("HERALD_CONSOLE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def add_recipient(page: Page, name: str, phone: str) -> None:
    page.goto("/recipients/customer/new")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Mobile phone").fill(phone)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()


def test_a_person_runs_a_broadcast_end_to_end(context: BrowserContext, sandbox: Sandbox) -> None:
    """Log in, add a recipient, broadcast, watch it live, read and answer a reply, cancel a
    scheduled broadcast, import a CSV after its check, find the import in the audit log, log
    out."""
    assert sandbox.admin is not None, "make run must print how to log in"
    username, password = sandbox.admin
    page = context.new_page()

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    shot(page, "login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    log_in(page, username, password)

    # A recipient through the form: the invalid phone is refused next to its field.
    page.goto("/recipients/customer/new")
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Mobile phone").fill("12")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#error-sms")).to_contain_text("Not a valid phone number")
    page.get_by_label("Mobile phone").fill(ADA_PHONE)
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("cell", name="Ada Lovelace", exact=True)).to_be_visible()

    sandbox.register(ADA_CHAT, "Ada", ADA_PHONE)
    page.reload()
    expect(
        page.get_by_role("row", name=re.compile("Ada Lovelace")).get_by_text("linked")
    ).to_be_visible()
    shot(page, "recipients")

    # Compose on two channels, check, send; the counters reach the end without a reload.
    before = sandbox.last_message_id(ADA_CHAT)
    page.goto("/send")
    page.get_by_label("In-app inbox").check()
    page.get_by_label("Search").fill("Ada")
    page.get_by_role("textbox", name=re.compile("^Subject")).fill("Office closed")
    page.get_by_label("Message", exact=True).fill("The office is closed on Friday.")
    expect(page.locator("#counters")).to_contain_text("SMS: GSM")
    shot(page, "send")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("heading", name="Check your message")).to_be_visible()
    expect(page.locator('[data-channel="telegram"] .will-get')).to_have_text("1")
    expect(page.locator('[data-channel="storage"] .will-get')).to_have_text("1")
    shot(page, "check")
    page.get_by_role("button", name="Send").click()
    expect(page).to_have_url(re.compile(r"/broadcasts/[0-9a-f-]+$"))
    broadcast_url = page.url
    for bar in page.locator("progress[data-progress]").all():
        expect(bar).to_have_attribute("value", "1")
    expect(page.locator('[data-count$=":success"]').first).to_have_text("1")
    assert page.url == broadcast_url  # no reload, no navigation
    received = sandbox.next_messages(ADA_CHAT, before)
    assert any("Office closed" in (m["text"] or "") for m in received)
    shot(page, "broadcast")

    # Ada answers; the inbox shows the unread thread; the answer from the console reaches her.
    echoed = sandbox.last_message_id(ADA_CHAT)
    sandbox.person_says(ADA_CHAT, "Thanks, see you on Monday")
    sandbox.next_messages(ADA_CHAT, echoed)  # the bot echoes once it has stored the message
    page.goto("/inbox")
    thread_row = page.get_by_role("row", name=re.compile("Ada Lovelace"))
    expect(thread_row.locator(".badge.unread")).to_have_text("1")
    shot(page, "inbox")
    thread_row.get_by_role("link").click()
    expect(page.get_by_text("Thanks, see you on Monday")).to_be_visible()
    last = sandbox.last_message_id(ADA_CHAT)
    page.get_by_label("Your answer").fill("You are welcome, Ada")
    page.get_by_role("button", name="Send the answer").click()
    answered = sandbox.next_messages(ADA_CHAT, last)
    assert [m["text"] for m in answered] == ["You are welcome, Ada"]
    answer = page.locator(".bubble.ours", has_text="You are welcome, Ada")
    expect(answer.locator(".badge")).to_have_text("delivered")
    shot(page, "thread")

    # A scheduled broadcast, cancelled before its time.
    page.goto("/send")
    page.get_by_label("Search").fill("Ada")
    page.get_by_label("Message", exact=True).fill("Reminder for next year")
    page.get_by_label("Send at").fill("2099-01-04T09:00")
    page.get_by_role("button", name="Check").click()
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator("#scheduled-at")).to_contain_text("2099")
    page.get_by_role("link", name="Cancel this broadcast").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("[data-status]").first).to_have_text("cancelled")

    # A CSV with a bad row: its error is shown and nothing is written until confirmed.
    page.goto("/recipients/customer/import")
    csv = b"name,sms\nGrace Hopper,+393330000001\nBad Row,12\n"
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": csv}]
    )
    page.get_by_role("button", name="Check the file").click()
    expect(page.locator("#import-summary")).to_contain_text("1 to create, 0 to update, 1 rejected")
    expect(page.get_by_role("row", name=re.compile("^3 "))).to_contain_text("sms:")
    shot(page, "import")
    check_page = page.url
    listing = context.new_page()
    listing.goto("/recipients/customer?q=Grace")
    expect(listing.get_by_text("No recipients match.")).to_be_visible()
    listing.close()
    assert page.url == check_page
    page.get_by_role("button", name=re.compile("Import the good rows")).click()
    expect(page.get_by_role("cell", name="Grace Hopper", exact=True)).to_be_visible()

    # The audit log names this person as the one who imported (a superuser's page).
    page.get_by_role("link", name="Audit").click()
    imported = page.get_by_role("row", name=re.compile(r"recipients\.imported"))
    expect(imported).to_contain_text(username)
    shot(page, "audit")

    page.goto("/")
    shot(page, "dashboard")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to Herald")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))


def test_a_form_post_without_the_csrf_token_is_refused(
    context: BrowserContext, sandbox: Sandbox
) -> None:
    """A logged-in browser that posts a form without the page's token gets 403, and no key."""
    assert sandbox.admin is not None
    page = context.new_page()
    log_in(page, *sandbox.admin)
    forged = page.request.post("/keys", form={"name": "forged"})
    assert forged.status == 403
    page.goto("/keys")
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.get_by_role("cell", name="forged")).to_have_count(0)


def test_the_session_cookie_is_http_only_and_same_site(
    context: BrowserContext, sandbox: Sandbox
) -> None:
    """The session cookie cannot be read by scripts and is not sent by other sites' posts."""
    assert sandbox.admin is not None
    page = context.new_page()
    log_in(page, *sandbox.admin)
    (cookie,) = [c for c in context.cookies() if c["name"] == "herald_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain http on loopback; https sets Secure
    assert page.evaluate("document.cookie") == ""


def test_another_user_cannot_open_my_broadcast(chromium: Browser, sandbox: Sandbox) -> None:
    """A second user who is not a superuser gets the not-found page for my broadcast."""
    carol, bob = sandbox.user("carol"), sandbox.user("bob")
    mine = chromium.new_context(base_url=sandbox.url)
    theirs = chromium.new_context(base_url=sandbox.url)
    try:
        page = mine.new_page()
        log_in(page, *carol)
        add_recipient(page, "Carol's customer", "+393339998877")
        page.goto("/send")
        page.get_by_role("checkbox", name="Telegram", exact=True).uncheck()
        page.get_by_label("In-app inbox").check()
        page.get_by_label("Search").fill("Carol")
        page.get_by_label("Message", exact=True).fill("For my customer only")
        page.get_by_role("button", name="Check").click()
        page.get_by_role("button", name="Send").click()
        expect(page).to_have_url(re.compile(r"/broadcasts/[0-9a-f-]+$"))
        other = theirs.new_page()
        log_in(other, *bob)
        response = other.goto(page.url)
        assert response is not None and response.status == 404
        expect(other.get_by_role("heading", name="Page not found")).to_be_visible()
    finally:
        mine.close()
        theirs.close()
