"""What the listing and editing queries share: errors, pages and owner scoping helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import Direction, Message, MessageRecipient, User
from persistence.recipient_kinds import RecipientKindRegistry

T = TypeVar("T")
AnySelect = Select[*tuple[Any, ...]]


class NotFoundError(LookupError):
    """The thing does not exist or the acting user may not see it (the same answer for both)."""


class ConflictError(Exception):
    """The change contradicts what is stored (a duplicate name, a still-open state...)."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class InvalidFieldError(ValueError):
    """A value refers to something that does not exist (a typology, an owner...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class ForbiddenFieldError(PermissionError):
    """The acting user may not set this field to this value (another user's ``owner_id``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def may_name_owner(user: User, owner_id: int | None) -> bool:
    """Only a superuser names another owner (or none); anyone may name themselves."""
    return user.is_superuser or owner_id == user.id


def require_may_name_owner(user: User, owner_id: int | None, field: str = "owner_id") -> None:
    """Refuse, rather than silently replace, an owner the user may not name."""
    if not may_name_owner(user, owner_id):
        raise ForbiddenFieldError(
            field, f"only a superuser may name another owner (you are user {user.id})"
        )


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    limit: int
    offset: int
    has_more: bool

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.has_more else None


async def fetch_page(session: AsyncSession, statement: AnySelect, page: PageRequest) -> Page[Any]:
    """Run ``statement`` for one page; one extra row tells whether another page follows."""
    rows = list((await session.execute(statement.limit(page.limit + 1).offset(page.offset))).all())
    return Page(rows[: page.limit], page.limit, page.offset, len(rows) > page.limit)


def like_pattern(text: str) -> str:
    """A case-insensitive ``LIKE`` pattern matching ``text`` anywhere, wildcards escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def owns_recipient(
    kinds: RecipientKindRegistry, user: User, kind_column: Any, id_column: Any
) -> ColumnElement[bool]:
    """True when the (kind, id) in these columns names a recipient ``user`` owns."""
    clauses = []
    for kind in kinds:
        model = kind.model
        owned = exists().where(model.id == id_column, model.owner_id == user.id)
        clauses.append(and_(kind_column == kind.name, owned))
    return or_(*clauses) if clauses else false()


def message_visible(kinds: RecipientKindRegistry, user: User) -> ColumnElement[bool] | None:
    """Messages ``user`` may read: those they sent, and what their own recipients wrote in.

    ``None`` for superusers (everything is visible, no predicate needed).
    """
    if user.is_superuser:
        return None
    mr = MessageRecipient
    wrote_in = exists().where(
        mr.message_id == Message.id,
        mr.is_sender.is_(True),
        owns_recipient(kinds, user, mr.recipient_kind, mr.recipient_id),
    )
    return or_(
        Message.sender_id == user.id,
        and_(Message.direction == Direction.RECEIVED, wrote_in),
    )


def scoped(statement: AnySelect, predicate: ColumnElement[bool] | None) -> AnySelect:
    return statement if predicate is None else statement.where(predicate)


def chunks(ids: Sequence[int], size: int = 5000) -> list[Sequence[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


__all__ = [
    "ConflictError",
    "ForbiddenFieldError",
    "InvalidFieldError",
    "NotFoundError",
    "Page",
    "PageRequest",
    "fetch_page",
    "like_pattern",
    "may_name_owner",
    "message_visible",
    "owns_recipient",
    "require_may_name_owner",
    "scoped",
    "select",
]
