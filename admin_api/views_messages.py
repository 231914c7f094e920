"""Broadcasts: compose (presend or send, JSON or multipart), list, read, deliveries, cancel."""

from __future__ import annotations

import re

from aiohttp import BodyPartReader, web

from admin_api.errors import ApiError
from admin_api.routing import (
    JSON,
    MULTIPART_ERRORS,
    MultipartForm,
    RequestBody,
    Response,
    api_actor,
    autocommit,
    context,
    current_user,
    id_param,
    json_body,
    page_of,
    parse_json,
    parse_query,
    path_id,
    render,
    render_page,
    require_content_type,
    require_own_filter,
)
from admin_api.routing import Operation as Op
from admin_api.schemas_messages import (
    AttachmentOut,
    CancelOut,
    ComposeBody,
    ComposePayload,
    ComposeQuery,
    ContentBody,
    DeliveryOut,
    DeliveryPage,
    DeliveryQuery,
    MessageOut,
    MessagePage,
    MessageQuery,
    PlanOut,
    SendOut,
    TestSendBody,
    TestSendOut,
)
from channels.attachments import IncomingAttachment
from channels.composition import ComposeRequest
from channels.templates import apply_template
from persistence.common_queries import NotFoundError
from persistence.message_queries import (
    MessageFilter,
    MessageView,
    cancellable_message,
    get_message,
    list_deliveries,
    list_messages,
    read_message,
)
from persistence.template_queries import get_template

MULTIPART = "multipart/form-data"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_CHUNK = 64 * 1024
MESSAGE_ID = {"message_id": id_param("The message id.", big=True)}
# A rule spans the parts and is stated in words (JSON Schema conditionals over binary parts
# trip schemathesis): the text may be blank only with attachments, and never with sms (an SMS
# carries the text alone; presend lists what it drops).
COMPOSE_FORM = MultipartForm(
    {
        "payload": ComposePayload,
        "attachments": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "maxItems": 10,
            "description": "Files (parts with a filename), each at most MAX_ATTACHMENT_BYTES; "
            "SMS get the text only.",
        },
    },
    required=("payload",),
)


def message_out(view: MessageView) -> MessageOut:
    m = view.message
    return MessageOut(
        id=m.id,
        broadcast_id=m.broadcast_id,
        channel=m.channel,
        direction=m.direction,
        status=m.status,
        typology_id=m.typology_id,
        subject=m.subject,
        body=m.body,
        body_html=m.body_html,
        sender_id=m.sender_id,
        sender_name=m.sender_name,
        send_at=m.send_at,
        created_at=m.created_at,
        finished_at=m.finished_at,
        cost_per_unit=str(m.cost_per_unit),
        invoiced=m.invoiced,
        total=m.total,
        template_id=m.template_id,
        template_version=m.template_version,
        is_test=m.is_test,
        counters=view.counters,
        extra=m.extra or {},
        attachments=[
            AttachmentOut(
                id=a.id,
                file_name=a.file_name,
                content_type=a.content_type,
                size=a.size,
                sha256=a.sha256,
            )
            for a in view.attachments
        ],
    )


# --- compose ---------------------------------------------------------------------------------


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            422,
            "validation_error",
            "Idempotency-Key: 1 to 255 visible ASCII characters",
            [{"loc": ["header", "Idempotency-Key"], "message": "invalid"}],
        )
    return key


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"{what} is larger than {limit} bytes",
                {"limit": limit, "part": what},
            )
    return bytes(data)


async def _multipart(request: web.Request) -> tuple[ComposeBody, list[IncomingAttachment]]:
    ctx = context(request)
    try:
        reader = await request.multipart()
    except MULTIPART_ERRORS:
        raise ApiError(400, "malformed_multipart", "the multipart body is malformed") from None
    payload: ComposeBody | None = None
    attachments: list[IncomingAttachment] = []
    received = 0
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "malformed_multipart", "nested multipart is not supported")
            if part.name == "payload":
                raw = await _read_part(part, ctx.max_request_bytes, "payload")
                payload = parse_json(raw, ComposePayload, "payload")
            elif part.name == "attachments":
                if not part.filename:
                    raise ApiError(
                        422,
                        "validation_error",
                        "attachments: each attachment is a file (a part with a filename)",
                        [{"loc": ["body", "attachments"], "message": "not a file"}],
                    )
                name = part.filename
                data = await _read_part(part, ctx.max_attachment_bytes, f"attachment {name!r}")
                received += len(data)
                if received > ctx.max_request_bytes:
                    raise ApiError(413, "payload_too_large", "the attachments are too large")
                content_type = part.headers.get("Content-Type")
                attachments.append(IncomingAttachment(name, data, content_type))
            else:
                raise ApiError(
                    422,
                    "validation_error",
                    f"unknown form field {part.name!r}; send 'payload' and 'attachments'",
                    [{"loc": ["body", str(part.name)], "message": "unknown field"}],
                )
    except MULTIPART_ERRORS:
        raise ApiError(400, "malformed_multipart", "the multipart body is malformed") from None
    if payload is None:
        raise ApiError(
            422,
            "validation_error",
            "payload: the JSON part named 'payload' is missing",
            [{"loc": ["body", "payload"], "message": "field required"}],
        )
    return payload, attachments


async def create_message(request: web.Request) -> web.Response:
    """Broadcast a message, or plan it with presend (dry run)."""
    ctx = context(request)
    user = current_user(request)
    query = parse_query(request, ComposeQuery)
    kind = require_content_type(request, JSON, MULTIPART)
    attachments: list[IncomingAttachment] = []
    if kind == MULTIPART:
        body, attachments = await _multipart(request)
    else:
        body = parse_json(await request.read(), ComposeBody)
    compose = ComposeRequest(
        channels=list(body.channels),
        body=body.body,
        subject=body.subject,
        body_html=body.body_html,
        typology_id=body.typology_id,
        recipients={k: list(v) for k, v in body.recipients.items()},
        typology_selection={k: list(v) for k, v in body.typologies.items()},
        include_related=body.include_related,
        attachments=attachments,
        send_at=body.send_at,
        send_now_if_past=body.send_now_if_past,
        idempotency_key=_idempotency_key(request),
        extra=body.extra,
        format=body.format,
        buttons=[[b.model_dump() for b in row] for row in body.buttons],
    )
    await _from_template(request, body, compose)
    if query.presend or body.presend:
        plan = await ctx.composer.presend(user, compose)
        return render(PlanOut.model_validate(plan.to_json()))
    sent = await ctx.composer.send(user, compose, api_actor(request))
    answer = SendOut.model_validate(sent, from_attributes=True)
    location = f"/api/v1/messages/{answer.messages[0].id}" if answer.messages else None
    return render(answer, 202, {"Location": location} if location else None)


async def _from_template(request: web.Request, body: ContentBody, compose: ComposeRequest) -> None:
    """Fill ``compose`` from the template the body names (the fields it gives win)."""
    if body.template_id is None:
        if body.template_version is not None:
            raise ApiError(
                422,
                "validation_error",
                "template_version: give template_id too",
                [{"loc": ["body", "template_version"], "message": "needs template_id"}],
            )
        return
    ctx = context(request)
    async with ctx.sessions() as session:
        try:
            view = await get_template(
                session, current_user(request), body.template_id, body.template_version
            )
        except NotFoundError as exc:
            field = "template_version" if body.template_version else "template_id"
            raise ApiError(
                422,
                "validation_error",
                f"{field}: {exc} does not exist or is not yours",
                [{"loc": ["body", field], "message": "not found"}],
            ) from None
    apply_template(
        compose,
        view.content,
        template_id=view.template.id,
        version=view.version.version,
        typology_id=view.template.typology_id,
        explicit=set(body.model_fields_set),
    )


async def send_test_view(request: web.Request) -> web.Response:
    """Send the draft only to yourself: your email and your linked Telegram chat."""
    ctx = context(request)
    user = current_user(request)
    body = await json_body(request, TestSendBody)
    compose = ComposeRequest(
        channels=list(body.channels),
        body=body.body,
        subject=body.subject,
        body_html=body.body_html,
        typology_id=body.typology_id,
        extra=body.extra,
        format=body.format,
        buttons=[[b.model_dump() for b in row] for row in body.buttons],
    )
    await _from_template(request, body, compose)
    recipient = (body.recipient.kind, body.recipient.id) if body.recipient else None
    sent = await ctx.composer.send_test(user, compose, recipient, api_actor(request))
    return render(TestSendOut.model_validate(sent.to_json()), 202)


# --- reading ---------------------------------------------------------------------------------


async def list_messages_view(request: web.Request) -> web.Response:
    """Messages the caller may see, newest first, filtered."""
    ctx = context(request)
    query = parse_query(request, MessageQuery)
    require_own_filter(request, "sender_id", query.sender_id)
    filters = MessageFilter(
        broadcast_id=query.broadcast_id,
        channel=query.channel,
        status=query.status.value if query.status else None,
        typology_id=query.typology_id,
        direction=query.direction.value if query.direction else None,
        created_from=query.created_from,
        created_to=query.created_to,
        sender_id=query.sender_id,
    )
    async with ctx.sessions() as session:
        page = await list_messages(
            session, ctx.recipient_kinds, current_user(request), filters, page_of(query)
        )
    return render_page(MessagePage, page, message_out)


async def get_message_view(request: web.Request) -> web.Response:
    """One message with its live delivery counters."""
    ctx = context(request)
    message_id = path_id(request, "message_id", big=True)
    async with autocommit(request) as connection:
        view = await read_message(
            connection, ctx.recipient_kinds, current_user(request), message_id
        )
    return render(message_out(view))


async def list_message_recipients(request: web.Request) -> web.Response:
    """The message's deliveries: address, status, attempts, last error, provider id."""
    ctx = context(request)
    message_id = path_id(request, "message_id", big=True)
    query = parse_query(request, DeliveryQuery)
    async with ctx.sessions() as session:
        page = await list_deliveries(
            session,
            ctx.recipient_kinds,
            current_user(request),
            message_id,
            status=query.status.value if query.status else None,
            page=page_of(query),
        )
    return render_page(
        DeliveryPage,
        page,
        lambda d: DeliveryOut.model_validate(d, from_attributes=True),
        message_id=message_id,
    )


async def cancel_message(request: web.Request) -> web.Response:
    """Stop a broadcast now: deliveries not yet handed to a provider are cancelled."""
    ctx = context(request)
    user = current_user(request)
    message_id = path_id(request, "message_id", big=True)
    async with ctx.sessions() as session:
        await cancellable_message(session, ctx.recipient_kinds, user, message_id)
    cancelled = await ctx.cancel(message_id, api_actor(request))
    async with ctx.sessions() as session:
        view = await get_message(
            session, ctx.recipient_kinds, user, message_id, with_attachments=False
        )
    return render(
        CancelOut(
            message_id=message_id,
            cancelled=cancelled,
            status=view.message.status,
            counters=view.counters,
        )
    )


def operations() -> list[Op]:
    base = "/api/v1/messages"
    return [
        Op(
            "POST",
            base,
            create_message,
            "Broadcast a message (or plan it with presend)",
            "messages",
            {
                200: Response("The dry run's plan (presend).", PlanOut),
                202: Response("Queued: one message per channel.", SendOut),
            },
            query=ComposeQuery,
            body=RequestBody({JSON: ComposeBody, MULTIPART: COMPOSE_FORM}),
            errors=(403, 409),
            headers={
                "Idempotency-Key": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[\\x21-\\x7e]+$",
                    "description": "Repeat a send safely: the first answer is replayed.",
                }
            },
            description=(
                "With `presend` (query or body) nothing is written and the plan is returned. "
                "Recipients the caller may not see are refused with 403, never dropped. As "
                "multipart, `payload` is the JSON body; its text may be blank only when "
                "`attachments` carry the message, and the sms channel takes no attachments."
            ),
        ),
        Op(
            "GET",
            base,
            list_messages_view,
            "List messages",
            "messages",
            {200: Response("A page of messages.", MessagePage)},
            query=MessageQuery,
            errors=(403,),
        ),
        Op(
            "GET",
            base + "/{message_id}",
            get_message_view,
            "Read a message and its live counters",
            "messages",
            {200: Response("The message.", MessageOut)},
            path_params=MESSAGE_ID,
        ),
        Op(
            "GET",
            base + "/{message_id}/recipients",
            list_message_recipients,
            "List a message's deliveries",
            "messages",
            {200: Response("A page of deliveries.", DeliveryPage)},
            query=DeliveryQuery,
            path_params=MESSAGE_ID,
        ),
        Op(
            "POST",
            base + "/{message_id}/cancel",
            cancel_message,
            "Cancel a message's remaining deliveries",
            "messages",
            {200: Response("What was cancelled.", CancelOut)},
            path_params=MESSAGE_ID,
            errors=(409,),
        ),
        Op(
            "POST",
            base + "/test",
            send_test_view,
            "Send me a test: the draft to your own addresses only",
            "messages",
            {202: Response("Queued to your addresses; channels without one skipped.", TestSendOut)},
            body=RequestBody({JSON: TestSendBody}),
            errors=(403,),
            description=(
                "The same content as a send (or a template), rendered for `recipient` if "
                "given, goes to your own email (`herald users set-email`) and your linked "
                "Telegram chat (`/link CODE` to the bot) only. Its subject starts with "
                "[TEST]; it is not billed and not listed among the broadcasts."
            ),
        ),
    ]
