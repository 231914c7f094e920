"""Lossless JSON for bot persistence: integer and tuple keys come back exactly as they went in.

Plain JSON turns ``{1: "a"}`` into ``{"1": "a"}`` and tuples into lists, which breaks
python-telegram-bot's data after a reload. Dicts whose keys are all strings, and every other JSON
value, stay plain (readable in the database); anything else is tagged.
"""

from __future__ import annotations

from typing import Any

_DICT_TAG = "__herald_dict__"
_TUPLE_TAG = "__herald_tuple__"


class NotJsonSerializableError(TypeError):
    """A value cannot be stored; ``path`` names where it sits, e.g. ``['cart'][2]``."""

    def __init__(self, path: str, value: object) -> None:
        super().__init__(
            f"{path or 'value'} holds a {type(value).__name__}, which cannot be stored"
        )
        self.path = path


def encode(value: Any, path: str = "") -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return {_TUPLE_TAG: [encode(item, f"{path}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not ({_DICT_TAG, _TUPLE_TAG} & value.keys()):
            return {k: encode(v, f"{path}[{k!r}]") for k, v in value.items()}
        return {
            _DICT_TAG: [
                [encode(k, f"{path} key {k!r}"), encode(v, f"{path}[{k!r}]")]
                for k, v in value.items()
            ]
        }
    raise NotJsonSerializableError(path, value)


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, dict):
        if _TUPLE_TAG in value and len(value) == 1:
            return tuple(decode(item) for item in value[_TUPLE_TAG])
        if _DICT_TAG in value and len(value) == 1:
            return {_hashable(decode(k)): decode(v) for k, v in value[_DICT_TAG]}
        return {k: decode(v) for k, v in value.items()}
    return value
