"""Periodic work on APScheduler. Every job takes the context explicitly and keeps its state in the
database, so a restart neither loses nor repeats anything.

A job never raises into the scheduler: a failing run is one log line per failure episode (the
first failure, then the recovery) and a counter in /metrics, and the next run simply tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.context import HeraldContext
from channels.backoff import FailureEpisode, LoopObserver
from channels.dispatcher import Dispatcher
from channels.skebby_gateway import SkebbyGateway
from channels.sms_inbound import poll_received_sms, sync_blacklist
from channels.sms_reports import sms_report_job
from persistence.outbox import announce_due, start_due_scheduled
from persistence.recall import recall_late_deliveries
from persistence.retention import purge_old_data

log = logging.getLogger(__name__)

SMS_REPORT_BATCH = 200
# Jobs that run in one process only (the scheduler leader); the others are safe to run in every
# process at once: the rescue takes rows with SKIP LOCKED and conditional updates.
LEADER_JOBS = (
    "scheduled-messages",
    "retention",
    "recall-late",
    "sms-reports",
    "sms-received",
    "sms-blacklist",
)


class GuardedJob:
    """A job function run by the scheduler, with its failures logged once per episode."""

    def __init__(
        self,
        name: str,
        job: Callable[..., Awaitable[object]],
        every_seconds: float,
        observer: LoopObserver | None = None,
    ) -> None:
        self.name = name
        self._job = job
        self.episode = FailureEpisode(
            f"job {name}",
            log,
            observer=observer,
            cadence=f"at its next run (every {every_seconds:g} s)",
        )

    async def run(self, *args: Any, **kwargs: Any) -> None:
        """The scheduled callable: a coroutine function, as APScheduler's asyncio executor
        needs to await it on the loop (an object with an async ``__call__`` would be sent to a
        thread and never awaited)."""
        try:
            await self._job(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the edge of a job: logged (once per episode), never raised
            self.episode.failed(exc)
            return
        self.episode.recovered()


async def rescue_stale_leases(dispatcher: Dispatcher) -> None:
    await dispatcher.rescue()


async def start_scheduled_messages(context: HeraldContext, dispatcher: Dispatcher) -> None:
    async with context.sessions.begin() as session:
        started = await start_due_scheduled(session, context.clock())
        await announce_due(session, started)  # the other processes' dispatchers look too
    if started:
        log.info("scheduled messages now due: %s", started)
        dispatcher.wake()


async def purge_retention(context: HeraldContext) -> None:
    async with context.sessions.begin() as session:
        purged = await purge_old_data(
            session,
            context.clock(),
            keep_days=context.settings.persistence_retention_days,
            webhook_event_days=context.settings.webhook_event_retention_days,
        )
    if purged.conversations or purged.idempotency_keys or purged.updates or purged.webhook_events:
        log.info(
            "retention: removed %d stale conversations, %d old idempotency keys, %d handled "
            "Telegram updates and %d settled webhook events",
            purged.conversations,
            purged.idempotency_keys,
            purged.updates,
            purged.webhook_events,
        )


async def recall_late(context: HeraldContext, dispatcher: Dispatcher) -> None:
    """Deliveries in flight when their broadcast was recalled are deleted once delivered."""
    async with context.sessions.begin() as session:
        queued = await recall_late_deliveries(session, context.clock())
    if queued:
        log.info("recall: %d deliveries that were in flight are being deleted too", queued)
        dispatcher.wake()


async def poll_sms_reports(context: HeraldContext, gateway: SkebbyGateway) -> None:
    await sms_report_job(
        context.sessions,
        gateway,
        context.clock,
        max_age=timedelta(hours=context.settings.skebby_report_max_age_hours),
        batch_limit=SMS_REPORT_BATCH,
    )


async def poll_received(context: HeraldContext, gateway: SkebbyGateway) -> None:
    settings = context.settings
    report = await poll_received_sms(
        context.sessions,
        context.recipient_kinds,
        gateway,
        context.clock,
        stop_keywords=settings.stop_keywords,
        region=settings.default_phone_region,
    )
    if report.stored or report.stopped:
        log.info("received SMS: %d stored, %d opted out of SMS", report.stored, len(report.stopped))


async def synchronise_blacklist(context: HeraldContext, gateway: SkebbyGateway) -> None:
    report = await sync_blacklist(
        context.sessions,
        context.recipient_kinds,
        gateway,
        context.clock,
        region=context.settings.default_phone_region,
    )
    if report.added or report.removed or report.pulled:
        log.info(
            "SMS blacklist: %d numbers added on Skebby, %d removed, %d opt-outs taken from it",
            len(report.added),
            len(report.removed),
            len(report.pulled),
        )


def schedule_delivery_jobs(
    scheduler: AsyncIOScheduler,
    context: HeraldContext,
    dispatcher: Dispatcher,
    skebby: SkebbyGateway | None = None,
) -> dict[str, GuardedJob]:
    """Add the outbox's periodic jobs (and Skebby's delivery reports when configured). The
    ``LEADER_JOBS`` start paused: the scheduler leader resumes them."""
    lease = context.settings.dispatch_lease_seconds
    jobs: list[tuple[str, Callable[..., Awaitable[object]], float, list[Any]]] = [
        ("rescue-leases", rescue_stale_leases, max(1.0, lease / 2), [dispatcher]),
        ("scheduled-messages", start_scheduled_messages, 5.0, [context, dispatcher]),
        ("retention", purge_retention, 6 * 3600.0, [context]),
        ("recall-late", recall_late, 15.0, [context, dispatcher]),
    ]
    if skebby is not None:
        settings = context.settings
        jobs += [
            ("sms-reports", poll_sms_reports, 60.0, [context, skebby]),
            (
                "sms-received",
                poll_received,
                settings.skebby_received_poll_seconds,
                [context, skebby],
            ),
            (
                "sms-blacklist",
                synchronise_blacklist,
                settings.skebby_blacklist_sync_seconds,
                [context, skebby],
            ),
        ]
    guarded: dict[str, GuardedJob] = {}
    for name, function, seconds, args in jobs:
        job = guarded[name] = GuardedJob(name, function, seconds, context.metrics)
        paused = {"next_run_time": None} if name in LEADER_JOBS else {}
        scheduler.add_job(
            job.run,
            "interval",
            seconds=seconds,
            args=args,
            id=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=30,
            **paused,
        )
    return guarded
