"""Recipient kinds: a registry keyed by a stable name, so a deployment can add its own kinds.

Each kind maps to a mapped class with the ``RecipientMixin`` columns plus ``owner_id`` and
``typology_id``, its typology class, and optionally a query for related recipients (sending to a
customer also reaches the subjects acting for it, and the other way round).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.id_filter import id_filters
from persistence.models import (
    Customer,
    CustomerTypology,
    ExternalSubject,
    ExternalSubjectTypology,
    RecipientMixin,
    TypologyMixin,
    User,
)

RecipientRef = tuple[str, int]  # (kind name, id): a recipient's identity across kinds
RelatedQuery = Callable[[AsyncSession, Sequence[int]], Awaitable[list[RecipientRef]]]


@dataclass(frozen=True)
class RecipientKind:
    name: str
    model: type[Any]  # a mapped class with RecipientMixin columns, owner_id and typology_id
    typology_model: type[Any]
    label: str
    related: RelatedQuery | None = None

    def visible_to(self, user: User) -> ColumnElement[bool]:
        """The seed's get_filters_viewers: superusers see all, others what they own."""
        if user.is_superuser:
            return true()
        owner: ColumnElement[bool] = self.model.owner_id == user.id
        return owner


class RecipientKindRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, RecipientKind] = {}

    def register(self, kind: RecipientKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"recipient kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> RecipientKind:
        try:
            return self._kinds[name]
        except KeyError:
            known = ", ".join(sorted(self._kinds))
            raise KeyError(f"unknown recipient kind {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[RecipientKind]:
        return iter(self._kinds.values())

    def names(self) -> list[str]:
        return list(self._kinds)


async def _subjects_of_customers(session: AsyncSession, ids: Sequence[int]) -> list[RecipientRef]:
    found: list[RecipientRef] = []
    dialect = session.get_bind().dialect.name
    for where in id_filters(ExternalSubject.related_customer_id, ids, dialect):
        rows = await session.execute(select(ExternalSubject.id).where(where))
        found += [("external_subject", subject_id) for (subject_id,) in rows]
    return found


async def _customers_of_subjects(session: AsyncSession, ids: Sequence[int]) -> list[RecipientRef]:
    found: list[RecipientRef] = []
    dialect = session.get_bind().dialect.name
    for where in id_filters(ExternalSubject.id, ids, dialect):
        rows = await session.execute(
            select(ExternalSubject.related_customer_id).where(
                where, ExternalSubject.related_customer_id.is_not(None)
            )
        )
        found += [("customer", customer_id) for (customer_id,) in rows if customer_id is not None]
    return found


def default_registry() -> RecipientKindRegistry:
    registry = RecipientKindRegistry()
    registry.register(
        RecipientKind("customer", Customer, CustomerTypology, "Customer", _subjects_of_customers)
    )
    registry.register(
        RecipientKind(
            "external_subject",
            ExternalSubject,
            ExternalSubjectTypology,
            "External subject",
            _customers_of_subjects,
        )
    )
    return registry


__all__ = [
    "RecipientKind",
    "RecipientKindRegistry",
    "RecipientMixin",
    "RecipientRef",
    "TypologyMixin",
    "default_registry",
]
