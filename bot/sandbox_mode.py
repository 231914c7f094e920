"""Sandbox mode: with no TELEGRAM_BOT_TOKEN the Bot API simulator runs inside the process.

A newcomer runs ``make run`` and, in a second terminal, ``make chat`` (``herald chat``) to play a
recipient: /start, share a phone number, read what the bot answers and what it broadcasts.
"""

from __future__ import annotations

import logging

from bot.context import TelegramEndpoint
from bot.settings import Settings
from sandbox.telegram_simulator import TelegramSimulator

log = logging.getLogger(__name__)

SANDBOX_HOST = "127.0.0.1"


def telegram_endpoint(settings: Settings) -> TelegramEndpoint:
    """The real Bot API (telegram.org or a self-hosted server) for a configured token."""
    if settings.telegram_bot_token is None:
        raise ValueError("no TELEGRAM_BOT_TOKEN: use the sandbox endpoint")
    return TelegramEndpoint(
        token=settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_api_file_url,
        sandbox=False,
    )


def sandbox_endpoint(simulator: TelegramSimulator) -> TelegramEndpoint:
    return TelegramEndpoint(
        token=simulator.token,
        base_url=simulator.base_url,
        base_file_url=simulator.base_file_url,
        sandbox=True,
    )


async def start_simulator(settings: Settings) -> TelegramSimulator:
    """Start the simulator on TELEGRAM_SANDBOX_PORT and say loudly that this is a sandbox."""
    simulator = TelegramSimulator()
    await simulator.start(SANDBOX_HOST, settings.telegram_sandbox_port)
    log.warning(
        "SANDBOX MODE: no TELEGRAM_BOT_TOKEN is set, so the bot talks to a local Telegram "
        "simulator at %s and nobody on Telegram can reach it. To chat with the bot as a "
        "recipient, run `make chat` (or `herald chat`) in another terminal; create a recipient "
        "to register as with `herald recipients add --name NAME --phone NUMBER`. "
        "Set TELEGRAM_BOT_TOKEN to use the real Telegram.",
        simulator.control_url,
    )
    return simulator
