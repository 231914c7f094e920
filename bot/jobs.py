"""Periodic work on APScheduler. Every job takes the context explicitly and keeps its state in the
database, so a restart neither loses nor repeats anything."""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.context import HeraldContext
from channels.dispatcher import Dispatcher
from persistence.outbox import start_due_scheduled
from persistence.retention import purge_old_data

log = logging.getLogger(__name__)


async def rescue_stale_leases(dispatcher: Dispatcher) -> None:
    await dispatcher.rescue()


async def start_scheduled_messages(context: HeraldContext, dispatcher: Dispatcher) -> None:
    async with context.sessions.begin() as session:
        started = await start_due_scheduled(session, context.clock())
    if started:
        log.info("scheduled messages now due: %s", started)
        dispatcher.wake()


async def purge_retention(context: HeraldContext) -> None:
    async with context.sessions.begin() as session:
        purged = await purge_old_data(
            session, context.clock(), keep_days=context.settings.persistence_retention_days
        )
    if purged.conversations or purged.idempotency_keys:
        log.info(
            "retention: removed %d stale conversations and %d old idempotency keys",
            purged.conversations,
            purged.idempotency_keys,
        )


def schedule_delivery_jobs(
    scheduler: AsyncIOScheduler, context: HeraldContext, dispatcher: Dispatcher
) -> None:
    lease = context.settings.dispatch_lease_seconds
    common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    scheduler.add_job(
        rescue_stale_leases,
        "interval",
        seconds=max(1.0, lease / 2),
        args=[dispatcher],
        id="rescue-leases",
        **common,
    )
    scheduler.add_job(
        start_scheduled_messages,
        "interval",
        seconds=5,
        args=[context, dispatcher],
        id="scheduled-messages",
        **common,
    )
    scheduler.add_job(
        purge_retention, "interval", hours=6, args=[context], id="retention", **common
    )
