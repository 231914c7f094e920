"""Importing recipients in bulk (a CSV file, already parsed into rows): create or update.

A second import of the same file updates instead of duplicating: a row names its record by
``id``, or is matched on a stable column the caller chooses (``external_id``, ``sms`` or
``email``). Every row ends up ``created``, ``updated``, ``unchanged`` or ``rejected`` (with the
reasons); with ``all_or_nothing`` one rejected row means nothing is written (the caller rolls the
transaction back). The statements are per batch of rows, never per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import audit
from persistence.audit import Actor, AuditAction
from persistence.common_queries import chunks, require_may_name_owner
from persistence.models import User
from persistence.recipient_kinds import RecipientKind
from persistence.recipient_queries import RECIPIENT_FIELDS, owned_values

MatchColumn = Literal["external_id", "sms", "email"]
MATCH_COLUMNS: Final = ("external_id", "sms", "email")
_BATCH = 1000


@dataclass
class ImportRow:
    """One parsed CSV row: its line number, the values, and the problems found so far."""

    line: int
    values: dict[str, Any]
    errors: list[dict[str, str]] = field(default_factory=list)
    typology_name: str | None = None

    def reject(self, field_name: str, message: str) -> None:
        self.errors.append({"field": field_name, "message": message})


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    applied: bool = True
    match: str = "id"


@dataclass
class _Planned:
    row: ImportRow
    target: int | None = None  # the record to update; None creates one
    changes: dict[str, Any] = field(default_factory=dict)


async def _check_owners(session: AsyncSession, rows: Sequence[ImportRow]) -> None:
    """A row naming a user that does not exist is rejected with the reason."""
    named = sorted({r.values["owner_id"] for r in rows if r.values.get("owner_id") is not None})
    found: set[int] = set()
    for chunk in chunks(named):
        found.update((await session.scalars(select(User.id).where(User.id.in_(chunk)))).all())
    for row in rows:
        owner = row.values.get("owner_id")
        if owner is not None and owner not in found:
            row.errors.append({"field": "owner_id", "message": f"no user with id {owner}"})


async def import_recipients(
    session: AsyncSession,
    kind: RecipientKind,
    user: User,
    rows: Sequence[ImportRow],
    *,
    all_or_nothing: bool,
    match: MatchColumn | None = None,
    actor: Actor,
) -> ImportReport:
    """Create or update one record per row (see the module docstring); the audit log names
    ``actor`` and the records created or changed (a dry run rolls it back with the rest)."""
    for row in rows:  # naming another owner refuses the whole import, as it would one record
        if row.values.get("owner_id") is not None:
            require_may_name_owner(user, row.values["owner_id"], f"owner_id (line {row.line})")
    await _check_owners(session, rows)
    await _resolve_typologies(session, kind, rows)
    planned = [_Planned(row) for row in rows]
    await _find_targets(session, kind, user, planned, match)
    current = await _current_values(session, kind, [p.target for p in planned if p.target])
    for plan in planned:
        if plan.row.errors:
            continue
        values = {k: v for k, v in plan.row.values.items() if k in RECIPIENT_FIELDS}
        if plan.target is None:
            plan.changes = owned_values(user, values)
        else:
            values.pop("owner_id", None)
            before = current[plan.target]
            plan.changes = {k: v for k, v in values.items() if before.get(k) != v}
    await _check_external_ids(session, kind, planned, current)
    report = ImportReport(match=match or "id")
    for plan in planned:
        if plan.row.errors:
            report.rejected += 1
            report.rows.append(
                {"line": plan.row.line, "status": "rejected", "errors": plan.row.errors}
            )
    if all_or_nothing and report.rejected:
        report.applied = False
        return report
    accepted = [p for p in planned if not p.row.errors]
    await _write(session, kind, accepted, report)
    report.rows.sort(key=lambda r: int(r["line"]))
    await _audit(session, actor, kind.name, report)
    return report


async def _audit(session: AsyncSession, actor: Actor, kind: str, report: ImportReport) -> None:
    ids = [row["id"] for row in report.rows if row["status"] in ("created", "updated")]
    counts = {
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "match": report.match,
    }
    await audit.record(session, actor, AuditAction.RECIPIENTS_IMPORTED, kind, ids, counts)


async def _write(
    session: AsyncSession, kind: RecipientKind, accepted: list[_Planned], report: ImportReport
) -> None:
    creates = [p for p in accepted if p.target is None]
    if creates:
        new_ids = await _bulk_create(session, kind, [p.changes for p in creates])
        for plan, new_id in zip(creates, new_ids, strict=True):
            report.rows.append({"line": plan.row.line, "status": "created", "id": new_id})
        report.created = len(creates)
    changed = [p for p in accepted if p.target is not None and p.changes]
    # Grouped by the columns they change: one executemany UPDATE per group.
    groups: dict[tuple[str, ...], list[_Planned]] = {}
    for plan in changed:
        groups.setdefault(tuple(sorted(plan.changes)), []).append(plan)
    for columns, group in groups.items():
        statement = update(kind.model).execution_options(synchronize_session=False)
        for start in range(0, len(group), _BATCH):
            batch = group[start : start + _BATCH]
            await session.execute(
                statement, [{"id": p.target, **{c: p.changes[c] for c in columns}} for p in batch]
            )
    for plan in accepted:
        if plan.target is None:
            continue
        if plan.changes:
            report.updated += 1
            entry = {"line": plan.row.line, "status": "updated", "id": plan.target}
            report.rows.append({**entry, "changed": sorted(plan.changes)})
        else:
            report.unchanged += 1
            report.rows.append({"line": plan.row.line, "status": "unchanged", "id": plan.target})


async def _resolve_typologies(
    session: AsyncSession, kind: RecipientKind, rows: Sequence[ImportRow]
) -> None:
    model = kind.typology_model
    typologies = {
        name.casefold(): tid for name, tid in await session.execute(select(model.name, model.id))
    }
    known = set(typologies.values())
    for row in rows:
        if row.typology_name:
            tid = typologies.get(row.typology_name.casefold())
            if tid is None:
                row.reject("typology", f"unknown typology {row.typology_name!r}")
            else:
                row.values["typology_id"] = tid
        elif row.values.get("typology_id") is not None and row.values["typology_id"] not in known:
            row.reject("typology_id", f"no typology {row.values['typology_id']}")


async def _visible(
    session: AsyncSession, kind: RecipientKind, user: User, column: str, values: Iterable[Any]
) -> dict[Any, list[int]]:
    """The ids of the records ``user`` may see, by their value in ``column``."""
    wanted = sorted(set(values), key=str)
    found: dict[Any, list[int]] = {}
    attribute = getattr(kind.model, column)
    for chunk in chunks(wanted):
        rows = await session.execute(
            select(attribute, kind.model.id).where(attribute.in_(chunk), kind.visible_to(user))
        )
        for value, rid in rows:
            found.setdefault(value, []).append(int(rid))
    return found


async def _find_targets(
    session: AsyncSession,
    kind: RecipientKind,
    user: User,
    planned: list[_Planned],
    match: MatchColumn | None,
) -> None:
    """Which record each row updates: its ``id``, else the one record matching ``match``."""
    by_id = await _visible(
        session, kind, user, "id", (p.row.values["id"] for p in planned if p.row.values.get("id"))
    )
    keyed = [p for p in planned if not p.row.values.get("id") and match and p.row.values.get(match)]
    by_key: dict[Any, list[int]] = {}
    if match == "external_id":
        # Unique per owner: match within the owner the caller's new records get.
        by_key = await _in_owner_bucket(session, kind, user, [p.row.values[match] for p in keyed])
    elif match is not None:
        by_key = await _visible(session, kind, user, match, (p.row.values[match] for p in keyed))
    first_line: dict[Any, int] = {}
    for plan in planned:
        row = plan.row
        rid = row.values.get("id")
        if rid:
            if rid in by_id:
                plan.target = rid
            else:
                row.reject("id", f"no {kind.name} {rid} of yours to update")
            key: Any = ("id", rid)
        elif match and row.values.get(match):
            value = row.values[match]
            found = by_key.get(value, [])
            if len(found) > 1:
                listed = ", ".join(str(i) for i in sorted(found)[:5])
                row.reject(match, f"{value!r} matches {len(found)} {kind.name} records ({listed})")
            elif found:
                plan.target = found[0]
            key = (match, value)
        else:
            continue
        if key in first_line:
            row.reject(key[0], f"line {first_line[key]} already names {key[1]!r}")
        else:
            first_line[key] = row.line


async def _in_owner_bucket(
    session: AsyncSession, kind: RecipientKind, user: User, external_ids: list[Any]
) -> dict[Any, list[int]]:
    owner = owned_values(user, {}).get("owner_id")
    model = kind.model
    owned = model.owner_id.is_(None) if owner is None else model.owner_id == owner
    found: dict[Any, list[int]] = {}
    wanted = sorted(set(external_ids))
    for start in range(0, len(wanted), _BATCH):
        chunk = wanted[start : start + _BATCH]
        rows = await session.execute(
            select(model.external_id, model.id).where(model.external_id.in_(chunk), owned)
        )
        for value, rid in rows:
            found.setdefault(value, []).append(int(rid))
    return found


async def _current_values(
    session: AsyncSession, kind: RecipientKind, ids: list[int]
) -> dict[int, dict[str, Any]]:
    model = kind.model
    columns = [getattr(model, name) for name in RECIPIENT_FIELDS]
    current: dict[int, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(ids))):
        rows = await session.execute(select(model.id, *columns).where(model.id.in_(chunk)))
        for row in rows:
            current[int(row[0])] = dict(zip(RECIPIENT_FIELDS, row[1:], strict=True))
    return current


async def _check_external_ids(
    session: AsyncSession,
    kind: RecipientKind,
    planned: list[_Planned],
    current: dict[int, dict[str, Any]],
) -> None:
    """Refuse a row that would give an owner two records with one external_id."""
    model = kind.model
    claims: dict[tuple[int | None, str], _Planned] = {}
    for plan in planned:
        if plan.row.errors or not plan.changes.get("external_id"):
            continue
        owner = (
            plan.changes.get("owner_id")
            if plan.target is None
            else current[plan.target].get("owner_id")
        )
        bucket = (owner, plan.changes["external_id"])
        if bucket in claims:
            other = claims[bucket].row.line
            plan.row.reject("external_id", f"line {other} already uses {bucket[1]!r}")
        else:
            claims[bucket] = plan
    wanted = sorted({external_id for _, external_id in claims})
    for start in range(0, len(wanted), _BATCH):
        chunk = wanted[start : start + _BATCH]
        rows = await session.execute(
            select(model.owner_id, model.external_id, model.id).where(model.external_id.in_(chunk))
        )
        for owner, external_id, rid in rows:
            claim = claims.get((owner, external_id))
            if claim is not None and claim.target != rid:
                claim.row.reject(
                    "external_id",
                    f"{external_id!r} already belongs to {kind.name} {rid} "
                    "(match on external_id to update it)",
                )


async def _bulk_create(
    session: AsyncSession, kind: RecipientKind, values: list[dict[str, Any]]
) -> list[int]:
    """One INSERT per batch of rows with RETURNING, in the order given."""
    columns = {name for row in values for name in row}
    rows = [{name: row.get(name, _default(name)) for name in columns} for row in values]
    ids: list[int] = []
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        result = await session.execute(
            insert(kind.model).returning(kind.model.id, sort_by_parameter_order=True), batch
        )
        ids.extend(int(rid) for rid in result.scalars())
    return ids


def _default(name: str) -> Any:
    if name in ("telegram_opted_out", "telegram_blocked"):
        return False
    if name == "note":
        return ""
    if name == "extra":
        return {}
    return None
