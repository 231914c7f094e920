"""The composer (the seed's send_mixin): validate, resolve, classify, presend, enqueue.

Presend is a dry run that writes nothing. Send writes the message and all its deliveries in one
transaction (``persistence.enqueue``; on PostgreSQL a COPY that streams while the recipients are
being classified) and returns at once; the dispatcher delivers. Only recipients the acting user
may see are ever resolved; any other id is reported, never sent to. No SQL here: the composer
plans, the persistence layer writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from itertools import repeat
from operator import itemgetter
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from channels import rich_text
from channels.addresses import CHANNEL_FIELDS, Candidate, Classification, Classifier, classify
from channels.attachments import (
    AttachmentTooLargeError,
    describe_attachment,
    remove_attachments,
    write_attachment,
)
from channels.clock import Clock
from channels.composition import (
    BUTTONS_EXTRA_KEY,
    CHANNELS,
    FORMAT_EXTRA_KEY,
    OWN_KIND,
    REPLY_EXTRA_KEY,
    ChannelPlan,
    ComposerConfig,
    ComposeRequest,
    CompositionError,
    IdempotencyConflictError,
    Plan,
    QueuedMessage,
    RecipientsNotVisibleError,
    SendResult,
    SkippedChannel,
    TestSendResult,
)
from channels.sms_text import analyse_sms
from channels.telegram_text import render_messages
from channels.test_send import NO_ADDRESS, render_for_recipient, test_subject
from persistence import audit, enqueue
from persistence.audit import Actor, AuditAction
from persistence.database import SessionFactory
from persistence.enqueue import AttachmentRecord, NewDelivery, NewMessage
from persistence.models import DeliveryStatus, MessageStatus, User
from persistence.preferences import load_refusals
from persistence.recipient_kinds import RecipientKind, RecipientKindRegistry, RecipientRef
from persistence.recipient_loading import load_recipient_columns
from persistence.user_addresses import own_addresses

# What counts as blank, spelled out: Python, JSON Schema (ECMA) and pydantic's regex engine each
# mean something slightly different by "whitespace", and the admin API documents this rule.
BLANK_CHARACTERS = (
    "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_HAS_TEXT = re.compile(f"[^{BLANK_CHARACTERS}]")


def has_text(value: str) -> bool:
    """Not blank: at least one character that is not white space."""
    return _HAS_TEXT.search(value) is not None


# A resolved recipient: the values of a Candidate as a plain tuple. The garbage collector stops
# tracking plain tuples of plain values, not NamedTuples, so 100,000 of these held during a send
# cost no repeated full collections; each becomes a Candidate only while it is classified.
CandidateRow = tuple[Any, ...]
# Candidates classified at a time while a send streams its deliveries: small enough that the
# database starts on the first rows at once, large enough to keep per-slice overhead negligible.
STREAM_SLICE = 5000


class Composer:
    def __init__(
        self,
        sessions: SessionFactory,
        recipient_kinds: RecipientKindRegistry,
        config: ComposerConfig,
        clock: Clock,
        *,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._kinds = recipient_kinds
        self.config = config
        self._clock = clock
        self._on_enqueued = on_enqueued

    # --- public ------------------------------------------------------------------------------

    async def presend(self, user: User, request: ComposeRequest) -> Plan:
        """The dry run: what a send would do, per channel. Writes nothing."""
        self._validate(request)
        self._check_send_at(request)
        async with self._sessions() as session:
            return await self._plan(session, user, request)

    async def send(
        self, user: User, request: ComposeRequest, actor: Actor | None = None
    ) -> SendResult:
        """Enqueue the broadcast; the answer (also replayed for a repeated Idempotency-Key).

        The audit log names ``actor`` (by default ``user``, from nowhere in particular); a
        replay writes nothing, so it records nothing either.
        """
        self._validate(request)
        self._check_send_at(request)
        actor = actor or Actor.of_user(user)
        # Only a request with an Idempotency-Key is ever compared, and hashing 100,000 ids is not
        # free: without a key the fingerprint stays empty and unused.
        fingerprint = request.fingerprint() if request.idempotency_key else ""
        if request.idempotency_key:
            replay = await self._replay(user, request.idempotency_key, fingerprint)
            if replay is not None:
                return replay
        try:
            answer = await self._enqueue_in_transaction(user, request, fingerprint, actor)
        except IntegrityError:
            if not request.idempotency_key:
                raise
            # Another request with the same key won the race: answer what it answered.
            replay = await self._replay(user, request.idempotency_key, fingerprint)
            if replay is None:
                raise
            return replay
        self._on_enqueued()
        return answer

    async def send_test(
        self,
        user: User,
        request: ComposeRequest,
        recipient: RecipientRef | None = None,
        actor: Actor | None = None,
    ) -> TestSendResult:
        """ "Send me a test": the draft, as ``recipient`` would get it, to ``user``'s own
        addresses only, now, marked as a test; channels they have no address for are skipped."""
        self._validate_channels(request)
        self._validate_text(request)
        actor = actor or Actor.of_user(user)
        region = self.config.default_region
        messages: list[QueuedMessage] = []
        skipped: list[SkippedChannel] = []
        async with self._sessions.begin() as session:
            if recipient is not None:
                await self._check_visible(session, user, recipient)
            own = await own_addresses(session, user.id)
            # The caller as the one candidate of the test (kind "user": no recipient's row).
            me = Candidate(OWN_KIND, user.id, user.username, None, own.email, own.telegram_chat_id)
            now = self._clock()
            broadcast_id = str(uuid.uuid4())
            for channel in request.channels:
                view = request.for_channel(channel)
                subject, body = render_for_recipient(view.subject, view.body, recipient, channel)
                content = dataclasses.replace(
                    view, subject=test_subject(subject), body=body, attachments=[]
                )
                mine = [me] if channel in ("email", "telegram") else []
                classification = classify(channel, mine, default_region=region)
                plan = self._plan_channel(channel, content, classification)
                if plan.problems:
                    raise CompositionError("body", f"{channel}: {'; '.join(plan.problems)}")
                if not classification.valid:
                    skipped.append(SkippedChannel(channel, NO_ADDRESS[channel]))
                    continue
                message_id = await enqueue.insert_message(
                    session,
                    NewMessage(
                        broadcast_id=broadcast_id,
                        channel=channel,
                        subject=content.subject,
                        body=content.body,
                        body_html=content.body_html,
                        typology_id=request.typology_id,
                        extra=stored_extra(content),
                        cost_per_unit=Decimal(0),
                        sender_id=user.id,
                        sender_name=user.username,
                        send_at=None,
                        status=MessageStatus.QUEUED,
                        total=1,
                        created_at=now,
                        template_id=request.template_id,
                        template_version=request.template_version,
                        is_test=True,
                    ),
                )
                classifier = Classifier(channel, default_region=region)
                counts = await self._insert_deliveries(
                    session, message_id, classifier, [tuple(me)], now, now
                )
                await enqueue.announce(session, channel)
                messages.append(QueuedMessage(message_id, channel, counts, plan.units, "0"))
            if messages:
                await audit.record(
                    session,
                    actor,
                    AuditAction.TEST_SENT,
                    "message",
                    [m.id for m in messages],
                    {"broadcast_id": broadcast_id, "channels": [m.channel for m in messages]},
                )
        if messages:
            self._on_enqueued()
        return TestSendResult(broadcast_id if messages else None, messages, skipped)

    async def _check_visible(
        self, session: AsyncSession, user: User, recipient: RecipientRef
    ) -> None:
        kind_name, rid = recipient
        if kind_name not in self._kinds:
            raise CompositionError(
                "recipient.kind",
                f"unknown recipient kind {kind_name!r}; known: {', '.join(self._kinds.names())}",
            )
        loaded = await self._load(
            session, self._kinds.get(kind_name), user, CHANNEL_FIELDS["email"], ids=[rid]
        )
        if not loaded:
            raise RecipientsNotVisibleError([recipient])

    # --- validation and planning ---------------------------------------------------------------

    def _check_send_at(self, request: ComposeRequest) -> None:
        """A schedule must be in the future: a past one is refused (a typo would otherwise send
        at once), unless the caller asked to send now in that case."""
        when = request.send_at
        if when is None:
            return
        if when.tzinfo is None:
            raise CompositionError("send_at", "give a time zone (e.g. 2030-05-01T09:30:00Z)")
        now = self._clock()
        if when <= now:
            if not request.send_now_if_past:
                raise CompositionError(
                    "send_at",
                    f"{when.astimezone(UTC).isoformat()} is in the past (now "
                    f"{now.astimezone(UTC).replace(microsecond=0).isoformat()}); leave it out "
                    "to send at once, or set send_now_if_past",
                )
            request.send_at = None

    def _validate(self, request: ComposeRequest) -> None:
        self._validate_channels(request)
        self._validate_recipients(request)
        self._validate_text(request)

    def _validate_text(self, request: ComposeRequest) -> None:
        """The content as each channel sends it (a template may give a channel its own)."""
        for channel in request.channels:
            view = request.for_channel(channel)
            if not has_text(view.body) and not view.attachments:
                raise CompositionError("body", "the message is empty")
            if len(view.body) > self.config.max_body_chars:
                raise CompositionError(
                    "body", f"longer than {self.config.max_body_chars} characters"
                )
            if channel == "email" and not has_text(view.subject):
                raise CompositionError("subject", "an email needs a subject")
            self._validate_content(view)

    def _validate_channels(self, request: ComposeRequest) -> None:
        if not request.channels:
            raise CompositionError("channels", "choose at least one channel")
        for i, channel in enumerate(request.channels):
            if channel not in CHANNELS:
                raise CompositionError(
                    f"channels[{i}]",
                    f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}",
                )
        if len(set(request.channels)) != len(request.channels):
            raise CompositionError("channels", "a channel is listed twice")
        if self.config.typology_required and request.typology_id is None:
            raise CompositionError("typology_id", "a message typology is required")

    def _validate_recipients(self, request: ComposeRequest) -> None:
        if not request.recipients and not request.typology_selection:
            raise CompositionError("recipients", "name recipients or a typology selection")
        for kind in [*request.recipients, *request.typology_selection]:
            if kind not in self._kinds:
                raise CompositionError(
                    f"recipients.{kind}",
                    f"unknown recipient kind {kind!r}; known: {', '.join(self._kinds.names())}",
                )
        if len(request.attachments) > self.config.max_attachments:
            raise CompositionError(
                "attachments", f"at most {self.config.max_attachments} attachments"
            )
        for i, attachment in enumerate(request.attachments):
            if len(attachment.data) > self.config.max_attachment_bytes:
                raise CompositionError(
                    f"attachments[{i}]",
                    str(
                        AttachmentTooLargeError(
                            attachment.file_name,
                            len(attachment.data),
                            self.config.max_attachment_bytes,
                        )
                    ),
                )
        if request.extra.get(REPLY_EXTRA_KEY):
            named = sum(len(set(ids)) for ids in request.recipients.values())
            if (
                request.channels != ["telegram"]
                or named != 1
                or request.typology_selection
                or request.include_related
            ):
                raise CompositionError(
                    f"extra.{REPLY_EXTRA_KEY}",
                    "a reply goes on telegram alone to exactly one named recipient, "
                    "without related recipients",
                )

    def _validate_content(self, request: ComposeRequest) -> None:
        """The format, the markup of the body and the buttons (channels.rich_text)."""
        if request.format not in rich_text.FORMATS:
            raise CompositionError(
                "format",
                f"unknown format {request.format!r}; use one of {', '.join(rich_text.FORMATS)}",
            )
        for key in (FORMAT_EXTRA_KEY, BUTTONS_EXTRA_KEY):
            if key in request.extra:
                raise CompositionError(f"extra.{key}", f"set {key} as a field of its own")
        try:
            rich_text.check_body(request.body, rich_text.Format(request.format))
        except rich_text.MarkupError as exc:
            raise CompositionError(
                "body", f"invalid {request.format}: {exc}", exc.details
            ) from None
        try:
            rich_text.check_buttons(request.buttons)
        except rich_text.ButtonError as exc:
            raise CompositionError(exc.field, exc.reason) from None

    async def _plan(self, session: AsyncSession, user: User, request: ComposeRequest) -> Plan:
        candidates, not_visible = await self._candidates(session, user, request)
        refused = await self._refusals(session, request)
        region = self.config.default_region
        plans = [
            self._plan_channel(
                channel,
                request.for_channel(channel),
                classify(
                    channel,
                    map(Candidate._make, candidates),
                    default_region=region,
                    refused=refused.get(channel),
                ),
            )
            for channel in request.channels
        ]
        return Plan(plans, len(candidates), not_visible)

    async def _candidates(
        self, session: AsyncSession, user: User, request: ComposeRequest
    ) -> tuple[list[CandidateRow], list[RecipientRef]]:
        if request.typology_id is not None and not await enqueue.message_typology_exists(
            session, request.typology_id
        ):
            raise CompositionError(
                "typology_id", f"no message typology with id {request.typology_id}"
            )
        return await self._resolve(session, user, request)

    async def _refusals(
        self, session: AsyncSession, request: ComposeRequest
    ) -> dict[str, dict[RecipientRef, str]]:
        """Per channel, who refuses it for this message's typology (one query, however many
        recipients: it reads the choices people made, not the recipients)."""
        return await load_refusals(
            session, self._kinds.names(), request.channels, request.typology_id
        )

    def _plan_channel(
        self, channel: str, request: ComposeRequest, classification: Classification
    ) -> ChannelPlan:
        plan = ChannelPlan(channel, classification, 1, self.config.costs.get(channel, Decimal(0)))
        fmt = rich_text.Format(request.format)
        buttons = rich_text.check_buttons(request.buttons)
        if channel == "sms":
            text = rich_text.plain_text(request.body, fmt, buttons)
            analysis = analyse_sms(text, max_fragments=self.config.sms_max_fragments)
            plan.sms = analysis
            plan.units_per_recipient = analysis.fragments
            plan.drops = sms_drops(request)
            if not has_text(text):
                plan.problems.append("the SMS would be empty: SMS carries only the text")
            elif not analysis.fits:
                plan.problems.append(
                    f"the text needs {analysis.fragments} SMS fragments ({analysis.encoding}); "
                    f"the limit is {self.config.sms_max_fragments}"
                )
        elif channel == "telegram":
            if fmt is rich_text.Format.TEXT:
                texts = render_messages(
                    request.subject, request.body, self.config.telegram_parse_mode
                )
            else:
                texts = rich_text.telegram_messages(request.subject, request.body, fmt)
            plan.telegram_parts = len(texts)
            plan.units_per_recipient = len(texts) + len(request.attachments)
        return plan

    async def _resolve(
        self, session: AsyncSession, user: User, request: ComposeRequest
    ) -> tuple[list[CandidateRow], list[RecipientRef]]:
        fields = sorted({name for channel in request.channels for name in CHANNEL_FIELDS[channel]})
        found: dict[RecipientRef, CandidateRow] = {}
        frontier: dict[str, list[int]] = {}
        not_visible: list[RecipientRef] = []
        for kind_name, ids in request.recipients.items():
            kind = self._kinds.get(kind_name)
            wanted = list(dict.fromkeys(ids))
            loaded = await self._load(session, kind, user, fields, ids=wanted)
            _add_found(found, frontier, loaded)
            if len(loaded) < len(wanted):  # else every id was found: no need to look for gaps
                present = set(map(itemgetter(1), loaded))
                not_visible += [(kind_name, i) for i in wanted if i not in present]
        for kind_name, typology_ids in request.typology_selection.items():
            kind = self._kinds.get(kind_name)
            loaded = await self._load(session, kind, user, fields, typology_ids=typology_ids)
            _add_found(found, frontier, loaded)
        if request.include_related:
            await self._expand_related(session, user, fields, found, frontier)
        return list(found.values()), not_visible

    async def _expand_related(
        self,
        session: AsyncSession,
        user: User,
        fields: Sequence[str],
        found: dict[RecipientRef, CandidateRow],
        frontier: dict[str, list[int]],
    ) -> None:
        while frontier:  # each ref is visited once, so related cycles end
            new: dict[str, list[int]] = {}
            for kind_name, ids in frontier.items():
                kind = self._kinds.get(kind_name)
                if kind.related is None:
                    continue
                for ref in await kind.related(session, ids):
                    if ref not in found and ref[0] in self._kinds:
                        new.setdefault(ref[0], []).append(ref[1])
            frontier = {}
            for kind_name, ids in new.items():
                kind = self._kinds.get(kind_name)
                loaded = await self._load(session, kind, user, fields, ids=list(dict.fromkeys(ids)))
                _add_found(found, frontier, loaded)

    async def _load(
        self,
        session: AsyncSession,
        kind: RecipientKind,
        user: User,
        fields: Sequence[str],
        *,
        ids: Sequence[int] | None = None,
        typology_ids: Sequence[int] | None = None,
    ) -> list[CandidateRow]:
        """The visible recipients of ``kind`` among ``ids`` (distinct; kept in their order) or in
        ``typology_ids`` (by id), with the candidate ``fields`` the channels need."""
        columns = await load_recipient_columns(
            session, kind, user, fields, ids=ids, typology_ids=typology_ids
        )
        # Built at C speed (zip) from whole columns: no per-row Python code.
        defaults = Candidate._field_defaults
        loaded = dict(zip(fields, columns[1:], strict=True))
        values: list[Iterable[Any]] = [
            loaded[name] if name in loaded else repeat(defaults[name])
            for name in Candidate._fields[2:]
        ]
        return list(zip(repeat(kind.name), columns[0], *values))

    # --- enqueue -------------------------------------------------------------------------------

    async def _replay(self, user: User, key: str, fingerprint: str) -> SendResult | None:
        async with self._sessions() as session:
            stored = await enqueue.stored_answer(session, user.id, key)
        if stored is None:
            return None
        if stored.request_hash != fingerprint:
            raise IdempotencyConflictError(
                f"Idempotency-Key {key!r} was already used for a different request"
            )
        return SendResult.from_json(stored.response, replayed=True)

    async def _enqueue_in_transaction(
        self, user: User, request: ComposeRequest, fingerprint: str, actor: Actor
    ) -> SendResult:
        saved: list[AttachmentRecord] = []
        try:
            async with self._sessions.begin() as session:
                result = await self._enqueue(session, user, request, fingerprint, saved)
                await audit.record(
                    session,
                    actor,
                    AuditAction.BROADCAST_SENT,
                    "message",
                    result.message_ids,
                    {
                        "broadcast_id": result.broadcast_id,
                        "channels": [m.channel for m in result.messages],
                        "status": result.status,
                        "deliveries": sum(sum(m.counts.values()) for m in result.messages),
                    },
                )
                return result
        except BaseException:
            # Rolled back (or cancelled): the files written for it would be orphans on disk.
            remove_attachments(self.config.attachments_root, saved)
            raise

    async def _enqueue(
        self,
        session: AsyncSession,
        user: User,
        request: ComposeRequest,
        fingerprint: str,
        saved: list[AttachmentRecord],
    ) -> SendResult:
        """Write the broadcast in ``session``; ``saved`` collects the attachment files written."""
        candidates, not_visible = await self._candidates(session, user, request)
        if not_visible:
            raise RecipientsNotVisibleError(not_visible)
        region = self.config.default_region
        refused = await self._refusals(session, request)
        classifiers = [
            Classifier(channel, default_region=region, refused=refused.get(channel))
            for channel in request.channels
        ]
        # Each channel is classified while its deliveries stream into the database (below); its
        # problems depend on the text alone, so they still stop the send before any write.
        plans = [
            self._plan_channel(c.channel, request.for_channel(c.channel), c.result)
            for c in classifiers
        ]
        for channel_plan in plans:
            if channel_plan.problems:
                raise CompositionError(
                    "body", f"{channel_plan.channel}: {'; '.join(channel_plan.problems)}"
                )
        now = self._clock()
        scheduled = request.send_at is not None and request.send_at > now
        start_at = request.send_at if scheduled and request.send_at else now
        root, limit = self.config.attachments_root, self.config.max_attachment_bytes
        for attachment in request.attachments:
            described = describe_attachment(attachment, limit=limit, now=now)
            saved.append(described)  # before the write: a cancelled write is cleaned up too
            await asyncio.to_thread(write_attachment, root, described, attachment.data)
        broadcast_id = str(uuid.uuid4())
        status = MessageStatus.SCHEDULED if scheduled else MessageStatus.QUEUED
        messages = []
        for classifier, channel_plan in zip(classifiers, plans, strict=True):
            content = request.for_channel(channel_plan.channel)
            message_id = await enqueue.insert_message(
                session,
                NewMessage(
                    broadcast_id=broadcast_id,
                    channel=channel_plan.channel,
                    subject=content.subject,
                    body=content.body,
                    body_html=content.body_html,
                    typology_id=request.typology_id,
                    extra=stored_extra(content),
                    cost_per_unit=channel_plan.cost_per_unit,
                    sender_id=user.id,
                    sender_name=user.username,
                    send_at=request.send_at if scheduled else None,
                    status=status,
                    total=len(candidates),
                    created_at=now,
                    template_id=request.template_id,
                    template_version=request.template_version,
                ),
            )
            # Every candidate ends up valid, invalid or duplicate: one delivery row each.
            counts = await self._insert_deliveries(
                session, message_id, classifier, candidates, start_at, now
            )
            await enqueue.insert_attachments(session, message_id, saved)
            if not channel_plan.classification.valid:
                await enqueue.mark_done(session, message_id, now)
            elif not scheduled:
                await enqueue.announce(session, channel_plan.channel)
            messages.append(
                QueuedMessage(
                    id=message_id,
                    channel=channel_plan.channel,
                    counts=counts,
                    units=channel_plan.units,
                    estimated_cost=str(channel_plan.estimated_cost),
                )
            )
        result = SendResult(
            broadcast_id=broadcast_id,
            status=status.value,
            send_at=start_at.astimezone(UTC).isoformat() if scheduled else None,
            messages=messages,
        )
        if request.idempotency_key:
            await enqueue.store_answer(
                session, user.id, request.idempotency_key, fingerprint, result.to_json()
            )
        return result

    async def _insert_deliveries(
        self,
        session: AsyncSession,
        message_id: int,
        classifier: Classifier,
        candidates: list[CandidateRow],
        start_at: datetime,
        now: datetime,
    ) -> dict[str, int]:
        c = classifier.result
        channel = classifier.channel
        pending = DeliveryStatus.PENDING.value

        def records() -> Iterator[NewDelivery]:
            # Classified a slice at a time as the rows are consumed: on PostgreSQL the COPY sends
            # each buffer as it fills, so the server inserts while the next slice is classified.
            for start in range(0, len(candidates), STREAM_SLICE):
                done = len(c.valid)
                classifier.feed(map(Candidate._make, candidates[start : start + STREAM_SLICE]))
                for kind, rid, address in c.valid[done:]:
                    yield NewDelivery(
                        message_id, channel, kind, rid, address, pending, "", start_at, now
                    )
            for status, problems in (
                (DeliveryStatus.INVALID, c.invalid),
                (DeliveryStatus.DUPLICATE, c.duplicates),
            ):
                for p in problems:
                    yield NewDelivery(
                        message_id,
                        channel,
                        p.kind,
                        p.id,
                        p.address or "",
                        status.value,
                        p.reason,
                        None,
                        now,
                    )

        if candidates:
            await enqueue.insert_deliveries(session, records())
        counts = {
            DeliveryStatus.PENDING.value: len(c.valid),
            DeliveryStatus.INVALID.value: len(c.invalid),
            DeliveryStatus.DUPLICATE.value: len(c.duplicates),
        }
        await enqueue.set_initial_counters(session, message_id, counts)
        return counts


def sms_drops(request: ComposeRequest) -> list[str]:
    """What an SMS leaves out of the broadcast's content, said the way presend shows it."""
    drops = []
    if request.attachments:
        drops.append("attachments are not sent by SMS")
    if request.format != rich_text.Format.TEXT:
        drops.append("formatting is not sent by SMS (links are written out as their addresses)")
    if request.buttons:
        drops.append("buttons are not sent by SMS (their addresses are added to the text)")
    return drops


def stored_extra(request: ComposeRequest) -> dict[str, Any]:
    """The message's ``extra``: the request's, with the format and buttons when they are used."""
    extra = dict(request.extra)
    if request.format != rich_text.Format.TEXT:
        extra[FORMAT_EXTRA_KEY] = request.format
    if request.buttons:
        extra[BUTTONS_EXTRA_KEY] = rich_text.buttons_json(rich_text.check_buttons(request.buttons))
    return extra


def _add_found(
    found: dict[RecipientRef, CandidateRow],
    frontier: dict[str, list[int]],
    loaded: list[CandidateRow],
) -> None:
    """Add one kind's ``loaded`` candidates to ``found``; those not found before join the
    ``frontier`` whose related recipients are still to be looked up."""
    if not loaded:
        return
    refs: list[RecipientRef] = list(map(itemgetter(0, 1), loaded))
    if found.keys().isdisjoint(refs):  # the usual case, checked without a Python-level loop
        fresh = list(map(itemgetter(1), loaded))
    else:
        fresh = [ref[1] for ref in refs if ref not in found]
    found.update(zip(refs, loaded, strict=True))
    frontier.setdefault(loaded[0][0], []).extend(fresh)
