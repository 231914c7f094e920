"""The OpenAPI 3.1 document, written from the route table and the pydantic models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from admin_api.routing import JSON, MultipartForm, Operation
from admin_api.schemas import (
    JSON_OBJECT_MARKER,
    JSON_VALUE_SCHEMAS,
    RECIPIENT_KIND_MARKER,
    ErrorOut,
)

REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Malformed JSON or multipart body.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's user may not do this.",
    404: "Not found (or not visible to the caller).",
    409: "Conflicts with the current state.",
    413: "The body or an attachment is over the size limit.",
    415: "Wrong Content-Type.",
    422: "Invalid fields; details list each field path.",
    500: "Unexpected error; quote the request id.",
    502: "The upstream provider failed.",
    503: (
        "The database is unreachable (code `database_unavailable`, with `Retry-After`), or a "
        "component the operation needs is not configured."
    ),
}


RETRY_AFTER = {
    "description": "Seconds to wait before trying again (while the database is unreachable).",
    "schema": {"type": "integer", "minimum": 1},
}


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        name = model.__name__
        self.schemas.setdefault(name, schema)
        return {"$ref": REF.format(model=name)}

    def inline(self, model: type[BaseModel]) -> dict[str, Any]:
        """A model's schema with its nested definitions hoisted into the components."""
        schema = model.model_json_schema(ref_template=REF, mode="validation")
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        return schema


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is simply left out; it is never ``null``."""
    options = prop.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            prop.pop("anyOf")
            prop = {**kept[0], **prop}
    if prop.get("default", 0) is None:
        prop.pop("default")
    return prop


def _query_parameters(components: _Components, model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = components.inline(model)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(dict(prop))
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _operation(components: _Components, op: Operation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for name, schema in op.path_params.items():
        schema = dict(schema)
        description = schema.pop("description", "")
        parameters.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": schema,
                "description": description,
            }
        )
    if op.query is not None:
        parameters += _query_parameters(components, op.query)
    for name, schema in op.headers.items():
        schema = dict(schema)
        description = schema.pop("description", "")
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": schema,
                "description": description,
            }
        )
    responses: dict[str, Any] = {}
    for status, response in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": response.description}
        if response.model is not None:
            entry["content"] = {
                response.content_type: {"schema": components.ref(response.model, "serialization")}
            }
        elif response.schema is not None:
            entry["content"] = {response.content_type: {"schema": dict(response.schema)}}
        responses[str(status)] = entry
    error_ref = components.ref(ErrorOut, "serialization")
    for status in op.error_statuses():
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error."),
            "content": {JSON: {"schema": error_ref}},
        }
        if status == 503:
            responses[str(status)]["headers"] = {"Retry-After": RETRY_AFTER}
    document: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if op.description:
        document["description"] = op.description
    if op.body is not None:
        content: dict[str, Any] = {}
        for media_type, body in op.body.content.items():
            if isinstance(body, MultipartForm):
                content[media_type] = _form(components, body)
            elif isinstance(body, type) and issubclass(body, BaseModel):
                content[media_type] = {"schema": components.ref(body, "validation")}
            else:
                content[media_type] = {"schema": dict(body)}
        document["requestBody"] = {"required": True, "content": content}
    document["security"] = [] if op.public else [{"bearerAuth": []}]
    return document


def _form(components: _Components, form: MultipartForm) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    encoding: dict[str, Any] = {}
    for name, part in form.parts.items():
        if isinstance(part, type) and issubclass(part, BaseModel):
            properties[name] = components.ref(part, "validation")
            encoding[name] = {"contentType": JSON}
        else:
            properties[name] = dict(part)
            if name in form.text_parts:
                encoding[name] = {"contentType": form.text_parts[name]}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        **form.rules,
    }
    if form.required:
        schema["required"] = list(form.required)
    entry: dict[str, Any] = {"schema": schema}
    if encoding:
        entry["encoding"] = encoding
    return entry


_MARKER_KEYS = {*RECIPIENT_KIND_MARKER, *JSON_OBJECT_MARKER}


def _resolve_markers(node: Any, kinds: Sequence[str]) -> Any:
    """What pydantic cannot write: the registered recipient kinds, the recursive JSON schema."""
    if isinstance(node, dict):
        kept = {k: _resolve_markers(v, kinds) for k, v in node.items() if k not in _MARKER_KEYS}
        if node.items() >= RECIPIENT_KIND_MARKER.items():
            return {**kept, "type": "string", "enum": list(kinds)}
        if node.items() >= JSON_OBJECT_MARKER.items():  # pydantic adds a title beside it
            return {**kept, "$ref": REF.format(model="JsonObject")}
        return kept
    if isinstance(node, list):
        return [_resolve_markers(item, kinds) for item in node]
    return node


def build_document(
    operations: Sequence[Operation],
    *,
    recipient_kinds: Sequence[str] = ("customer", "external_subject"),
    version: str = "1.0.0",
) -> dict[str, Any]:
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(components, op)
    components.schemas = {
        **_resolve_markers(components.schemas, recipient_kinds),
        **JSON_VALUE_SCHEMAS,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald admin API",
            "version": version,
            "description": (
                "Broadcasts over Telegram, email, SMS and the in-app inbox; recipients; inbox "
                "and replies; invoices; the audit log; operations. Authenticate with "
                "`Authorization: Bearer <key>` (`herald create-api-key`). Every error is "
                '`{"error": {"code", "message", "details"}}`, also 414/431/400 for requests '
                "too malformed to route. Requests are strict: no coercion (`0` is not `false`), "
                "unknown fields and query parameters are refused; date-times are RFC 3339 with "
                "an offset, years 1970 to 8999. While the database is unreachable the answer is "
                "503 `database_unavailable` with `Retry-After`. Timestamps are ISO 8601 UTC."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
