"""The typed pieces handlers see: the Application subclass carrying the HeraldContext, and the
``CallbackContext`` subclass that reads it (never through ``bot_data``, which is persisted data).
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackContext, ExtBot, JobQueue
from telegram.request import BaseRequest

from bot.context import HeraldContext
from bot.texts import Texts, texts_for
from persistence.registration import LinkedRecipient, find_linked

Data = dict[Any, Any]


class HeraldCallbackContext(CallbackContext[ExtBot[None], Data, Data, Data]):
    """What every Herald handler receives: PTB's context plus Herald's, and the access check."""

    def __init__(
        self,
        application: Application[ExtBot[None], HeraldCallbackContext, Data, Data, Data, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application, chat_id, user_id)
        # Set by the access gate (group -1) for this update, so later handlers need no query.
        self.linked: list[LinkedRecipient] | None = None

    @property
    def herald(self) -> HeraldContext:
        application = self.application
        if not isinstance(application, HeraldApplication):
            raise TypeError("Herald handlers need a HeraldApplication (see bot.telegram_app)")
        return application.herald

    async def linked_for(self, chat_id: int) -> list[LinkedRecipient]:
        """The records linked to ``chat_id``, looked up once per update."""
        if self.linked is None:
            herald = self.herald
            self.linked = await find_linked(herald.sessions, herald.recipient_kinds, chat_id)
        return self.linked

    def texts(self, update: Update) -> Texts:
        """The catalog in the language of the person behind ``update``."""
        user = update.effective_user
        code = user.language_code if user is not None else None
        return texts_for(code, self.herald.settings.default_language)


class HeraldApplication(
    Application[
        ExtBot[None],
        HeraldCallbackContext,
        Data,
        Data,
        Data,
        JobQueue[HeraldCallbackContext],
    ]
):
    """PTB's Application that also holds Herald's context object (built by ApplicationBuilder)."""

    def __init__(self, *, herald: HeraldContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.herald = herald
        # The Bot's HTTP clients, so a failed initialize() can close them (PTB does not).
        self.http_requests: tuple[BaseRequest, ...] = ()
