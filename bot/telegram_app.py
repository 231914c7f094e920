"""Building Herald's python-telegram-bot Application: endpoint, persistence, context, handlers."""

from __future__ import annotations

import warnings
from typing import Any

from telegram.ext import ApplicationBuilder, BasePersistence, ContextTypes
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from bot.aiohttp_request import AiohttpRequest
from bot.context import HeraldContext, TelegramEndpoint
from bot.handlers import install_handlers, publish_commands
from bot.handlers.context import HeraldApplication, HeraldCallbackContext
from bot.polling import PollingErrors
from bot.ptb_rate_limiter import SharedBudgetRateLimiter
from bot.update_processor import PerChatUpdateProcessor
from persistence.bot_persistence import DatabasePersistence

CONCURRENT_UPDATES = 64  # updates of different chats handled at once (one at a time per chat)


def database_persistence(herald: HeraldContext) -> DatabasePersistence:
    return DatabasePersistence(
        herald.sessions, update_interval=herald.settings.persistence_update_interval
    )


def build_application(
    herald: HeraldContext,
    endpoint: TelegramEndpoint,
    *,
    webhook: bool,
    persistence: BasePersistence[Any, Any, Any] | None,
    polling: PollingErrors | None = None,
) -> HeraldApplication:
    """The Application with every handler installed, not yet initialized.

    ``webhook=True`` builds it without an Updater: updates arrive through Herald's own web route.
    ``persistence=None`` keeps PTB's data in memory only (benchmarks compare the two).
    ``polling`` sees the status of every getUpdates answer.
    """
    # The echo handler sends through do_api_request on purpose (no Message object to build);
    # PTB warns on every such call of a method it knows.
    warnings.filterwarnings(
        "ignore", message=r"Please use 'Bot\.sendMessage'", category=PTBUserWarning
    )
    # PTB itself reads RetryAfter.retry_after while building the error and warns that the int
    # form is deprecated; Herald accepts both forms (bot/ptb_rate_limiter.py): the warning is
    # noise.
    warnings.filterwarnings("ignore", message=r".*retry_after.*", category=PTBDeprecationWarning)
    request = AiohttpRequest(pool_size=CONCURRENT_UPDATES)
    updates_request = AiohttpRequest(
        pool_size=1, on_status=polling.answered if polling is not None else None
    )
    builder = (
        ApplicationBuilder()
        .application_class(HeraldApplication, kwargs={"herald": herald})
        .token(endpoint.token)
        .base_url(endpoint.base_url)
        .base_file_url(endpoint.base_file_url)
        .context_types(ContextTypes(context=HeraldCallbackContext))
        .concurrent_updates(
            PerChatUpdateProcessor(CONCURRENT_UPDATES, on_processed=herald.metrics.update_handled)
        )
        .post_init(publish_commands)
        .rate_limiter(SharedBudgetRateLimiter(herald.telegram_limiter))
        .request(request)
        .get_updates_request(updates_request)
    )
    if persistence is not None:
        builder = builder.persistence(persistence)
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    if not isinstance(application, HeraldApplication):  # pragma: no cover - builder contract
        raise TypeError("ApplicationBuilder did not build a HeraldApplication")
    application.http_requests = (request, updates_request)
    install_handlers(application)
    return application


__all__ = ["HeraldApplication", "HeraldCallbackContext", "build_application"]
