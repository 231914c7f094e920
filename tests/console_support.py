"""The web console over the aiohttp test client: a person with a cookie jar who reads pages and
submits their forms (the CSRF token taken from the page, as a browser would)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from persistence.users import hash_password, set_password_hash
from tests.api_support import Api, running_api

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Page:
    status: int
    text: str
    url: str
    headers: Any

    @property
    def csrf(self) -> str:
        match = _CSRF.search(self.text)
        assert match, f"no CSRF token on {self.url}"
        return html.unescape(match.group(1))

    def has(self, text: str) -> bool:
        return html.escape(text, quote=False) in self.text or text in self.text


class Browser:
    """One person's cookie jar against the console."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def get(self, path: str, **kwargs: Any) -> Page:
        headers = {"Accept": "text/html", **kwargs.pop("headers", {})}
        async with self.http.get(self.base + path, headers=headers, **kwargs) as response:
            page = Page(response.status, await response.text(), str(response.url), response.headers)
        if _CSRF.search(page.text):
            self.csrf = page.csrf
        return page

    async def post(self, path: str, data: Any = None, *, csrf: bool = True, **kwargs: Any) -> Page:
        if csrf:
            if isinstance(data, aiohttp.FormData):
                data.add_field("csrf_token", self.csrf)
            else:
                data = [*(_pairs(data)), ("csrf_token", self.csrf)]
        headers = {"Accept": "text/html", **kwargs.pop("headers", {})}
        async with self.http.post(
            self.base + path, data=data, headers=headers, **kwargs
        ) as response:
            page = Page(response.status, await response.text(), str(response.url), response.headers)
        if _CSRF.search(page.text):
            self.csrf = page.csrf
        return page

    async def login(self, username: str, password: str = PASSWORD) -> Page:
        await self.get("/login")
        return await self.post("/login", {"username": username, "password": password})


def _pairs(data: Any) -> list[tuple[str, Any]]:
    if data is None:
        return []
    if isinstance(data, dict):
        pairs: list[tuple[str, Any]] = []
        for key, value in data.items():
            if isinstance(value, list):
                pairs += [(key, item) for item in value]
            else:
                pairs.append((key, value))
        return pairs
    return list(data)


@dataclass
class Console:
    api: Api

    def __post_init__(self) -> None:
        self._browsers: list[Browser] = []

    def browser(self) -> Browser:
        """A fresh browser (its own cookies) on the same server."""
        browser = Browser(str(self.api.client.make_url("/")))
        self._browsers.append(browser)
        return browser

    async def add_user(self, username: str, *, superuser: bool = False) -> str:
        """A user with PASSWORD; their API key."""
        _, key = await self.api.user(username, superuser=superuser)
        async with self.api.db.sessions.begin() as session:
            await set_password_hash(session, username, hash_password(PASSWORD))
        return key

    async def user(self, username: str, *, superuser: bool = False) -> Browser:
        """A user with PASSWORD, logged in in a fresh browser."""
        await self.add_user(username, superuser=superuser)
        browser = self.browser()
        page = await browser.login(username)
        assert page.status == 200 and "/login" not in page.url, page.text[:500]
        return browser

    async def close(self) -> None:
        for browser in self._browsers:
            await browser.http.close()


@asynccontextmanager
async def running_console(db: Any, tmp_path: Path, **kwargs: Any) -> AsyncIterator[Console]:
    async with running_api(db, tmp_path, **kwargs) as api:
        console = Console(api)
        try:
            yield console
        finally:
            await console.close()
