"""The console's doors, over the aiohttp test client on both databases: logging in and out,
throttling, sessions that end, CSRF, the security headers and the cookie's flags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from persistence.users import deactivate_user, hash_password, set_password_hash
from tests.conftest import Database
from tests.console_support import PASSWORD, Console, running_console


@pytest.fixture
async def console(db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(db, tmp_path) as running:
        yield running


async def test_pages_need_a_login_and_come_back_after_it(console: Console) -> None:
    """An anonymous visit goes to the login page and, once logged in, to the page asked for."""
    await console.add_user("alice")
    browser = console.browser()
    page = await browser.get("/messages?channel=sms", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/login?next=/messages?channel%3Dsms"
    await browser.get(page.headers["Location"])
    answer = await browser.post(
        "/login",
        {"username": "alice", "password": PASSWORD, "next": "/messages?channel=sms"},
        allow_redirects=False,
    )
    assert answer.status == 303 and answer.headers["Location"] == "/messages?channel=sms"
    assert (await browser.get("/messages")).status == 200


async def test_a_wrong_password_is_refused_without_saying_which_part(console: Console) -> None:
    """Wrong password and unknown user get the same answer, and no session."""
    await console.add_user("alice")
    browser = console.browser()
    for username, password in (("alice", "wrong password"), ("nobody", PASSWORD)):
        page = await browser.login(username, password)
        assert page.status == 401 and page.has("Wrong username or password.")
    assert "/login" in (await browser.get("/")).url


async def test_repeated_failures_lock_the_user_out_for_a_while(console: Console) -> None:
    """After five failures even the right password is refused (429), for that user only."""
    await console.add_user("alice")
    await console.add_user("bob")
    browser = console.browser()
    for _ in range(5):
        assert (await browser.login("alice", "guess")).status == 401
    locked = await browser.login("alice", PASSWORD)
    assert locked.status == 429 and locked.has("Too many failed attempts")
    assert (await browser.login("bob", PASSWORD)).status == 200


async def test_the_next_page_after_login_stays_on_this_site(console: Console) -> None:
    """A crafted ``next`` cannot send the person to another site after logging in."""
    await console.add_user("alice")
    browser = console.browser()
    await browser.get("/login")
    answer = await browser.post(
        "/login",
        {"username": "alice", "password": PASSWORD, "next": "//evil.example/"},
        allow_redirects=False,
    )
    assert answer.headers["Location"] == "/"


async def test_a_state_change_without_the_csrf_token_is_forbidden(console: Console) -> None:
    """A form posted without (or with a wrong) token is refused with 403 and changes nothing."""
    browser = await console.user("alice")
    for token in (None, "forged"):
        data: dict[str, str] = {"name": "Eve's customer"}
        if token:
            data["csrf_token"] = token
        page = await browser.post("/recipients/customer/new", data, csrf=False)
        assert page.status == 403 and page.has("This form has expired")
    assert not (await browser.get("/recipients/customer")).has("Eve's customer")
    ok = await browser.post("/recipients/customer/new", {"name": "Real customer"})
    assert ok.status == 200 and ok.has("Real customer")


async def test_every_page_carries_a_strict_policy_and_cannot_be_framed(console: Console) -> None:
    """CSP allows only our own scripts and styles; X-Frame-Options is DENY, on pages and errors."""
    browser = await console.user("alice")
    for path in ("/", "/login", "/no-such-page"):
        page = await browser.get(path)
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "'unsafe-inline'" not in policy
        assert page.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in (await browser.get("/")).text  # no inline script anywhere


async def test_static_files_are_cached_by_version(console: Console) -> None:
    """The page links versioned files that browsers may keep for a year."""
    browser = await console.user("alice")
    page = await browser.get("/")
    start = page.text.index("/static/console.css?v=")
    url = page.text[start : page.text.index('"', start)]
    async with browser.http.get(browser.base + url) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


async def test_the_session_cookie_flags(console: Console) -> None:
    """HttpOnly and SameSite=Lax always; Secure when the request came over https."""
    await console.add_user("alice")
    for proto, secure in (("http", False), ("https", True)):
        browser = console.browser()
        await browser.get("/login")
        async with browser.http.post(
            browser.base + "/login",
            data={"username": "alice", "password": PASSWORD, "csrf_token": browser.csrf},
            headers={"X-Forwarded-Proto": proto},
            allow_redirects=False,
        ) as response:
            cookie = response.cookies["herald_session"]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Lax"
        assert bool(cookie["secure"]) is secure


async def test_sessions_end_when_idle_and_after_the_maximum(console: Console) -> None:
    """Thirty idle minutes, or twelve hours in all, and the person must log in again."""
    clock = console.api.clock
    browser = await console.user("alice")
    clock.advance(29 * 60)
    assert (await browser.get("/")).status == 200
    clock.advance(31 * 60)
    page = await browser.get("/")
    assert "/login" in page.url and page.has("Your session has ended")
    await browser.login("alice")
    for _ in range(25):  # busy all day: never idle, still ends after twelve hours
        clock.advance(29 * 60)
        await browser.get("/")
    assert "/login" in (await browser.get("/")).url


async def test_a_new_password_or_deactivation_ends_the_session(console: Console) -> None:
    """Changing someone's password logs them out everywhere; a deactivated user is refused."""
    browser = await console.user("alice")
    async with console.api.db.sessions.begin() as session:
        await set_password_hash(session, "alice", hash_password("another password"))
    assert "/login" in (await browser.get("/")).url
    assert (await browser.login("alice", "another password")).status == 200
    async with console.api.db.sessions.begin() as session:
        await deactivate_user(session, "alice")
    assert "/login" in (await browser.get("/")).url
    assert (await browser.login("alice", "another password")).status == 401


async def test_a_deactivated_user_cannot_use_their_api_keys(console: Console) -> None:
    """Deactivation closes the API too: the key answers 401."""
    key = await console.add_user("alice")
    await console.api.get("/api/v1/messages", key=key, expect=200)
    async with console.api.db.sessions.begin() as session:
        await deactivate_user(session, "alice")
    await console.api.get("/api/v1/messages", key=key, expect=401)


async def test_logging_out_ends_the_session(console: Console) -> None:
    """After logging out the pages ask for a login again."""
    browser = await console.user("alice")
    page = await browser.post("/logout", {})
    assert page.has("You are logged out.")
    assert "/login" in (await browser.get("/keys")).url


async def test_htmx_requests_without_a_session_are_told_where_to_log_in(console: Console) -> None:
    """A partial asked for after the session ended answers 401 with HX-Redirect, not a page."""
    browser = console.browser()
    async with browser.http.get(
        browser.base + "/send/matching?kind=customer", headers={"HX-Request": "true"}
    ) as response:
        assert response.status == 401
        assert response.headers["HX-Redirect"].startswith("/login")


async def test_the_language_follows_the_browser_then_the_choice(console: Console) -> None:
    """Italian from Accept-Language, English after choosing it; dates in the user's time zone."""
    browser = await console.user("alice")
    page = await browser.get("/", headers={"Accept-Language": "it-IT,it;q=0.9,en;q=0.5"})
    assert '<html lang="it">' in page.text
    await browser.post("/language", {"language": "en", "next": "/"})
    page = await browser.get("/", headers={"Accept-Language": "it"})
    assert '<html lang="en">' in page.text and page.has("Dashboard")
    saved = await browser.post("/preferences", {"language": "it", "timezone": "America/New_York"})
    assert saved.has("America/New_York") and '<html lang="it">' in saved.text
