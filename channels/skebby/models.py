"""Enums and result records of the Skebby client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

QueryValue = str | int | float | bool | None
MoType = Literal["STOP", "CONTACT", "OTHER"]


class MessageType(StrEnum):
    GP = "GP"  # Classic+: custom sender, delivery reports
    TI = "TI"  # Classic
    SI = "SI"  # Basic: no custom sender


class Encoding(StrEnum):
    GSM = "gsm"
    UCS2 = "ucs2"


class SkebbyBoolean(StrEnum):
    """Booleans as Skebby's query strings spell them."""

    TRUE = "true"
    FALSE = "false"

    @classmethod
    def of(cls, value: bool) -> SkebbyBoolean:
        return cls.TRUE if value else cls.FALSE


class OrderState(StrEnum):
    WAITING = "WAITING"
    WAIT4DLVR = "WAIT4DLVR"
    SENT = "SENT"
    DLVRD = "DLVRD"
    TOOM4USER = "TOOM4USER"
    TOOM4NUM = "TOOM4NUM"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    UNKNRCPT = "UNKNRCPT"
    UNKNPFX = "UNKNPFX"
    DEMO = "DEMO"
    SCHEDULED = "SCHEDULED"
    INVALIDDST = "INVALIDDST"
    BLACKLISTED = "BLACKLISTED"
    KO = "KO"
    INVALIDCONTENTS = "INVALIDCONTENTS"

    @property
    def is_pending(self) -> bool:
        """Skebby has not reached a final verdict yet."""
        return self in _PENDING

    @property
    def is_delivered(self) -> bool:
        return self is OrderState.DLVRD

    @property
    def is_failed(self) -> bool:
        """Final and not delivered (``DEMO`` counts: a demo send reaches no handset)."""
        return not self.is_pending and not self.is_delivered


_PENDING = frozenset(
    {OrderState.WAITING, OrderState.WAIT4DLVR, OrderState.SENT, OrderState.SCHEDULED}
)


@dataclass(frozen=True, slots=True)
class SkebbyReply:
    """One HTTP answer from Skebby (status already accepted by the caller)."""

    status: int
    text: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SendResult:
    order_id: str
    total_sent: int  # credits used (SMS fragments x recipients) when return_credits is True
    remaining_credits: int | None
    internal_order_id: str | None


@dataclass(frozen=True, slots=True)
class RecipientState:
    destination: str
    status: OrderState
    delivery_date: datetime | None  # UTC


@dataclass(frozen=True, slots=True)
class OrderStatus:
    order_id: str
    recipients: tuple[RecipientState, ...]

    def state_of(self, destination: str) -> OrderState | None:
        for recipient in self.recipients:
            if recipient.destination == destination:
                return recipient.status
        return None

    @property
    def is_final(self) -> bool:
        return all(not r.status.is_pending for r in self.recipients)


@dataclass(frozen=True, slots=True)
class UserStatus:
    sms: dict[str, int]  # message type -> SMS that can still be sent
    money: float | None
    email: dict[str, Any] | None

    def credits(self, message_type: MessageType | str) -> int:
        return self.sms.get(str(message_type), 0)


@dataclass(frozen=True, slots=True)
class TwoFactorResult:
    """Outcome of ``POST 2fa/verify``: ``valid`` when the PIN matched."""

    valid: bool
    tries_remaining: int | None = None
    error: str | None = None
