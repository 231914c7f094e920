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
from channels.personalise import (
    PLACEHOLDERS,
    SIZE_KEY,
    MissingDataError,
    Personalisation,
    Renderer,
    TemplateError,
    context_of,
    dump_params,
    is_personalised,
)
from channels.sms_text import analyse_sms
from channels.smtp_channel import text_to_html
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
            context: dict[str, Any] = {}
            if recipient is not None:
                context = await self._recipient_context(session, user, recipient)
            own = await own_addresses(session, user.id)
            # The caller as the one candidate of the test (kind "user": no recipient's row).
            me = Candidate(OWN_KIND, user.id, user.username, None, own.email, own.telegram_chat_id)
            now = self._clock()
            broadcast_id = str(uuid.uuid4())
            for channel in request.channels:
                view = request.for_channel(channel)
                subject, body = render_for_recipient(
                    view.subject, view.body, context, channel, view.format
                )
                content = dataclasses.replace(
                    view, subject=test_subject(subject), body=body, attachments=[]
                )
                mine = [me] if channel in ("email", "telegram") else []
                classification = classify(channel, mine, default_region=region)
                plan = self._plan_channel(
                    channel, content, classification, PersonalData(None, self.config, Renderer())
                )
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

    async def _recipient_context(
        self, session: AsyncSession, user: User, recipient: RecipientRef
    ) -> dict[str, Any]:
        """The placeholders' values of a recipient ``user`` may see (else it is refused)."""
        kind_name, rid = recipient
        if kind_name not in self._kinds:
            raise CompositionError(
                "recipient.kind",
                f"unknown recipient kind {kind_name!r}; known: {', '.join(self._kinds.names())}",
            )
        fields = sorted(set(PLACEHOLDERS.values()))
        columns = await load_recipient_columns(
            session, self._kinds.get(kind_name), user, fields, ids=[rid]
        )
        if not columns[0]:
            raise RecipientsNotVisibleError([recipient])
        return context_of(
            {name: column[0] for name, column in zip(fields, columns[1:], strict=True)}
        )

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
        personalisation(request)

    async def _plan(self, session: AsyncSession, user: User, request: ComposeRequest) -> Plan:
        personal = personalisation(request)
        candidates, not_visible = await self._candidates(session, user, request, personal)
        refused = await self._refusals(session, request)
        data = self._personal_data(personal, request, candidates, store=False)
        region = self.config.default_region
        plans = []
        for channel in request.channels:
            plan = self._plan_channel(
                channel,
                request.for_channel(channel),
                classify(
                    channel,
                    map(Candidate._make, candidates),
                    default_region=region,
                    refused=data.refusals(channel, refused.get(channel)),
                ),
                data,
            )
            if data.personal is not None:
                plan.previews = data.previews(channel, plan.classification.valid, request)
            plans.append(plan)
        return Plan(plans, len(candidates), not_visible)

    def _personal_data(
        self,
        personal: Personalisation | None,
        request: ComposeRequest,
        candidates: list[CandidateRow],
        *,
        store: bool,
    ) -> PersonalData:
        """Every recipient's placeholder values, and per channel what its rendered text costs
        (or why it cannot be sent): all recipients, not a sample."""
        data = PersonalData(personal, self.config, Renderer())
        if personal is not None:
            data.fill(request, candidates, store=store)
        return data

    async def _candidates(
        self,
        session: AsyncSession,
        user: User,
        request: ComposeRequest,
        personal: Personalisation | None = None,
    ) -> tuple[list[CandidateRow], list[RecipientRef]]:
        if request.typology_id is not None and not await enqueue.message_typology_exists(
            session, request.typology_id
        ):
            raise CompositionError(
                "typology_id", f"no message typology with id {request.typology_id}"
            )
        return await self._resolve(session, user, request, personal.columns if personal else [])

    async def _refusals(
        self, session: AsyncSession, request: ComposeRequest
    ) -> dict[str, dict[RecipientRef, str]]:
        """Per channel, who refuses it for this message's typology (one query, however many
        recipients: it reads the choices people made, not the recipients)."""
        return await load_refusals(
            session, self._kinds.names(), request.channels, request.typology_id
        )

    def _plan_channel(
        self,
        channel: str,
        request: ComposeRequest,
        classification: Classification,
        data: PersonalData,
    ) -> ChannelPlan:
        plan = ChannelPlan(channel, classification, 1, self.config.costs.get(channel, Decimal(0)))
        fmt = rich_text.Format(request.format)
        buttons = rich_text.check_buttons(request.buttons)
        plan.personalised = data.personal is not None
        if data.personal is not None and channel in ("sms", "telegram"):
            # Counted on each recipient's rendered text (PersonalData.fill)
            plan.units_by_recipient = data.units.get(channel, {})
            if channel == "sms":
                plan.drops = sms_drops(request)
                plan.encodings = data.sms_encoding_counts
            else:
                plan.units_per_recipient = 1 + len(request.attachments)
            return plan
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
        self,
        session: AsyncSession,
        user: User,
        request: ComposeRequest,
        personal_fields: Sequence[str] = (),
    ) -> tuple[list[CandidateRow], list[RecipientRef]]:
        fields = sorted(
            {name for channel in request.channels for name in CHANNEL_FIELDS[channel]}
            | set(personal_fields)
        )
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
        personal = personalisation(request)
        candidates, not_visible = await self._candidates(session, user, request, personal)
        if not_visible:
            raise RecipientsNotVisibleError(not_visible)
        region = self.config.default_region
        refused = await self._refusals(session, request)
        data = self._personal_data(personal, request, candidates, store=True)
        classifiers = [
            Classifier(
                channel, default_region=region, refused=data.refusals(channel, refused.get(channel))
            )
            for channel in request.channels
        ]
        # Each channel is classified while its deliveries stream into the database (below); its
        # problems depend on the text alone, so they still stop the send before any write.
        plans = [
            self._plan_channel(c.channel, request.for_channel(c.channel), c.result, data)
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
                session, message_id, classifier, candidates, start_at, now, data.params
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
        params: dict[RecipientRef, str] | None = None,
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
                if params is None:
                    for kind, rid, address in c.valid[done:]:
                        yield NewDelivery(
                            message_id, channel, kind, rid, address, pending, "", start_at, now
                        )
                    continue
                for kind, rid, address in c.valid[done:]:
                    yield NewDelivery(
                        message_id,
                        channel,
                        kind,
                        rid,
                        address,
                        pending,
                        "",
                        start_at,
                        now,
                        params=params[(kind, rid)],
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


def personalisation(request: ComposeRequest) -> Personalisation | None:
    """The request's compiled placeholders (None: nothing to personalise); a placeholder that
    cannot be used is a CompositionError naming the field."""
    try:
        return Personalisation.of(request.subject, request.body, request.body_html)
    except TemplateError as exc:
        raise CompositionError(exc.field, exc.reason) from None


# The rendered length under which a Telegram text surely fits one message: every character
# escaped to five (&amp;) and counted twice (a surrogate pair) stays within 4,096.
_TELEGRAM_ONE_PART = rich_text.TELEGRAM_TEXT_LIMIT // 10
PREVIEWS = 3
# The longest text one recipient of Skebby's POST paramsms may get, per encoding.
PARAMSMS_LIMITS = {"gsm": 1000, "ucs2": 450}


class PersonalData:
    """A personalised broadcast's per-recipient facts: the parameters to store, who lacks a
    value, and per channel each recipient's units and refusals."""

    def __init__(
        self, personal: Personalisation | None, config: ComposerConfig, renderer: Renderer
    ) -> None:
        self.personal = personal
        self.config = config
        self.renderer = renderer
        self.params: dict[RecipientRef, str] | None = None
        self.contexts: dict[RecipientRef, dict[str, Any]] = {}
        self.missing: dict[RecipientRef, str] = {}
        self.units: dict[str, dict[RecipientRef, int]] = {}
        self.refused: dict[str, dict[RecipientRef, str]] = {}
        self._sms_encoding: dict[RecipientRef, str] = {}

    def refusals(
        self, channel: str, refused: dict[RecipientRef, str] | None
    ) -> dict[RecipientRef, str] | None:
        """Who cannot get ``channel``: their preferences, then missing or unsendable data."""
        if self.personal is None:
            return refused
        merged = dict(self.missing)
        merged.update(self.refused.get(channel, {}))
        if refused:
            merged.update(refused)
        return merged

    def fill(
        self, request: ComposeRequest, candidates: Sequence[CandidateRow], *, store: bool
    ) -> None:
        """``store``: also the JSON of each recipient's values, for the delivery rows."""
        assert self.personal is not None
        index_of = {name: i for i, name in enumerate(Candidate._fields)}
        extract = self.personal.extractor(index_of)
        params: dict[RecipientRef, str] = {}
        contexts = self.contexts
        missing = self.missing
        for row in candidates:
            ref = (row[0], row[1])
            values, reason = extract(row)
            if values is None:
                missing[ref] = reason
                continue
            contexts[ref] = values
            if store:
                params[ref] = dump_params(values)
        self.params = params
        fmt = rich_text.Format(request.format)
        buttons = rich_text.check_buttons(request.buttons)
        if "sms" in request.channels:
            self._fill_sms(request, fmt, buttons)
        if "telegram" in request.channels:
            self._fill_telegram(request, fmt)
        for channel in request.channels:
            if channel in ("email", "storage"):
                self._fill_render_check(request, fmt, buttons, channel)

    def _refuse(self, channel: str, ref: RecipientRef, reason: str) -> None:
        self.refused.setdefault(channel, {})[ref] = reason

    def _fill_sms(
        self, request: ComposeRequest, fmt: rich_text.Format, buttons: rich_text.Buttons
    ) -> None:
        units = self.units.setdefault("sms", {})
        limit = self.config.sms_max_fragments
        renderer = self.renderer
        seen: dict[str, tuple[str, int, str]] = {}  # a rendered text's verdict, once per text
        for ref, context in self.contexts.items():
            try:
                text = renderer.sms(request.body, fmt, buttons, context)
            except (MissingDataError, rich_text.MarkupError) as exc:
                self._refuse("sms", ref, str(exc))
                continue
            verdict = seen.get(text)
            if verdict is None:
                analysis = analyse_sms(text, max_fragments=limit)
                reason = ""
                if not has_text(text):
                    reason = "the personalised SMS would be empty"
                elif not analysis.fits:
                    reason = (
                        f"the personalised SMS needs {analysis.fragments} fragments "
                        f"({analysis.encoding}); the limit is {limit}"
                    )
                elif len(text) > PARAMSMS_LIMITS[analysis.encoding]:
                    reason = (
                        f"the personalised SMS has {len(text)} characters; Skebby's parametric "
                        f"SMS take at most {PARAMSMS_LIMITS[analysis.encoding]} "
                        f"({analysis.encoding})"
                    )
                verdict = seen[text] = (analysis.encoding, analysis.fragments, reason)
            encoding, fragments, reason = verdict
            if reason:
                self._refuse("sms", ref, reason)
                continue
            units[ref] = fragments
            self._sms_encoding[ref] = encoding

    def _fill_telegram(self, request: ComposeRequest, fmt: rich_text.Format) -> None:
        units = self.units.setdefault("telegram", {})
        renderer = self.renderer
        attachments = len(request.attachments)
        mode = self.config.telegram_parse_mode
        subject, body = request.subject, request.body
        # Compiled once; most texts are short enough to be one message without splitting them.
        templates = [
            renderer.template(text, field=name)
            for text, name in ((subject, "subject"), (body, "body"))
            if is_personalised(text)
        ]
        static = sum(len(text) for text in (subject, body) if not is_personalised(text))
        bounds = [t.length_bound() for t in templates]
        quick = None  # the rendered length from the values' total length, when it can tell
        if all(b is not None for b in bounds):
            static += sum(b[0] for b in bounds if b is not None)
            quick = max((b[1] for b in bounds if b is not None), default=0) * len(bounds)
        for ref, context in self.contexts.items():
            try:
                values = context.get(SIZE_KEY)
                if quick is not None and values is not None:
                    size = static + quick * values
                else:
                    size = static + sum(len(t.render(context)) for t in templates)
                if size <= _TELEGRAM_ONE_PART:
                    continue  # one message: the plan's default units
                # long: split as the channel will, after rendering
                parts = len(renderer.telegram(subject, body, fmt, context, mode)[0])
            except (MissingDataError, rich_text.MarkupError) as exc:
                self._refuse("telegram", ref, str(exc))
                continue
            units[ref] = parts + attachments

    def _fill_render_check(
        self,
        request: ComposeRequest,
        fmt: rich_text.Format,
        buttons: rich_text.Buttons,
        channel: str,
    ) -> None:
        """Email and inbox: a recipient whose content cannot be rendered is refused."""
        if all(t._pieces is not None for t in self._templates()):
            return  # plain placeholders: rendering cannot fail once the values are there
        for ref, context in self.contexts.items():
            try:
                self.renderer.subject(request.subject, context)
                self.renderer.raw(request.body, context, "body")
                if request.body_html is not None:
                    self.renderer.html(request.body_html, context, "body_html")
            except (MissingDataError, rich_text.MarkupError) as exc:
                self._refuse(channel, ref, str(exc))

    def _templates(self) -> list[Any]:
        assert self.personal is not None
        p = self.personal
        return [t for t in (p.subject, p.body, p.body_html) if t is not None]

    def previews(
        self, channel: str, valid: Sequence[Any], request: ComposeRequest
    ) -> list[dict[str, Any]]:
        """The first few messages as their recipients get them on ``channel``."""
        out: list[dict[str, Any]] = []
        fmt = rich_text.Format(request.format)
        buttons = rich_text.check_buttons(request.buttons)
        for target in valid[:PREVIEWS]:
            ref = (target.kind, target.id)
            context = self.contexts.get(ref)
            if context is None:
                continue
            preview: dict[str, Any] = {"kind": target.kind, "id": target.id}
            r = self.renderer
            try:
                if channel == "telegram":
                    texts, mode = r.telegram(
                        request.subject, request.body, fmt, context, self.config.telegram_parse_mode
                    )
                    preview.update(texts=texts, parse_mode=mode)
                elif channel == "sms":
                    text = r.sms(request.body, fmt, buttons, context)
                    analysis = analyse_sms(text, max_fragments=self.config.sms_max_fragments)
                    preview.update(
                        text=text, encoding=analysis.encoding, fragments=analysis.fragments
                    )
                elif channel == "email":
                    subject, text, page = r.email(
                        request.subject,
                        request.body,
                        request.body_html,
                        fmt,
                        buttons,
                        context,
                        text_to_html,
                    )
                    preview.update(subject=subject, text=text, html=page)
                else:
                    preview.update(
                        subject=r.subject(request.subject, context),
                        text=r.raw(request.body, context, "body"),
                    )
            except (MissingDataError, rich_text.MarkupError) as exc:
                preview["problem"] = str(exc)
            out.append(preview)
        return out

    @property
    def sms_encoding_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for encoding in self._sms_encoding.values():
            counts[encoding] = counts.get(encoding, 0) + 1
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
