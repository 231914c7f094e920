"""The whole service in one process: readiness, metrics and a broadcast over the admin API."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from persistence.api_keys import issue_api_key
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import running_service, wait_until
from tests.conftest import Database
from tests.factories import make_customers


async def test_ready_service_broadcasts_and_counts_it_in_metrics(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """/readyz is green, a POSTed broadcast reaches the chat, and /metrics counts the delivery."""
    (customer,) = await make_customers(db.sessions, 1, telegram_chat_id=4242, name="Ada")
    telegram_sim.add_user(4242, "Ada")
    async with db.sessions.begin() as session:
        key = (await issue_api_key(session, "ops", superuser=True)).key
    async with running_service(db, telegram_sim, "polling", data_dir=tmp_path) as service:
        base = f"http://127.0.0.1:{service.http_port}"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
            async with http.get(f"{base}/readyz") as response:
                body = await response.json()
                assert response.status == 200, body
            payload = {
                "channels": ["telegram"],
                "body": "Hello Ada",
                "recipients": {"customer": [customer.id]},
            }
            async with http.post(f"{base}/api/v1/messages", json=payload) as response:
                assert response.status == 202, await response.text()
                message_id = (await response.json())["messages"][0]["id"]
            (sent,) = await telegram_sim.wait_for_messages(4242, 1, timeout=10)
            assert sent.text == "Hello Ada"

            async def recorded() -> bool:
                async with http.get(f"{base}/api/v1/messages/{message_id}") as response:
                    return (await response.json())["counters"].get("success") == 1

            await wait_until(recorded, within=10, what="the delivery is recorded")
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
    assert 'herald_deliveries_total{channel="telegram",status="success"} 1' in metrics


async def test_readyz_reports_an_unreachable_bot_api(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """When the Bot API stops answering, /readyz says 503 and names the telegram check."""
    async with running_service(db, telegram_sim, "polling", data_dir=tmp_path) as service:
        telegram_sim.fail_next("getMe", error_code=502, description="Bad Gateway")
        url = f"http://127.0.0.1:{service.http_port}/readyz"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            body = await response.json()
        assert response.status == 503
        assert "telegram" in str(body)
