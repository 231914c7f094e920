"""Storing broadcast attachments: sanitized names, a size limit, content type and SHA-256."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath

from persistence.enqueue import AttachmentRecord

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_NAME_LENGTH = 120


class AttachmentTooLargeError(ValueError):
    def __init__(self, name: str, size: int, limit: int) -> None:
        super().__init__(f"attachment {name!r} is {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class IncomingAttachment:
    file_name: str
    data: bytes
    content_type: str | None = None


def sanitize_file_name(raw: str) -> str:
    """A name safe on every filesystem and in every header: no paths, controls or odd characters."""
    name = PureWindowsPath(PurePosixPath(raw).name).name  # drop directories of either style
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name:
        return "attachment"
    stem, dot, suffix = name.rpartition(".")
    if dot and len(suffix) <= 10:
        return f"{stem[: MAX_NAME_LENGTH - len(suffix) - 1]}.{suffix}" if stem else f"file.{suffix}"
    return name[:MAX_NAME_LENGTH]


def check_size(attachment: IncomingAttachment, limit: int) -> None:
    if len(attachment.data) > limit:
        raise AttachmentTooLargeError(attachment.file_name, len(attachment.data), limit)


def content_type_for(attachment: IncomingAttachment, safe_name: str) -> str:
    given = (attachment.content_type or "").split(";")[0].strip().lower()
    if given and given != "application/octet-stream" and "/" in given:
        return given
    guessed, _ = mimetypes.guess_type(safe_name)
    return guessed or "application/octet-stream"


def describe_attachment(
    attachment: IncomingAttachment, *, limit: int, now: datetime
) -> AttachmentRecord:
    """Check the size and decide the safe name, content type, checksum and place on disk."""
    check_size(attachment, limit)
    safe_name = sanitize_file_name(attachment.file_name)
    relative = Path(f"{now:%Y/%m}") / f"{uuid.uuid4().hex}-{safe_name}"
    return AttachmentRecord(
        file_name=safe_name,
        content_type=content_type_for(attachment, safe_name),
        size=len(attachment.data),
        sha256=hashlib.sha256(attachment.data).hexdigest(),
        storage_path=relative.as_posix(),
    )


def write_attachment(root: Path, saved: AttachmentRecord, data: bytes) -> None:
    target = root / saved.storage_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def remove_attachments(root: Path, saved: Iterable[AttachmentRecord]) -> None:
    """Delete the files of attachments whose send did not commit: no row will ever name them."""
    for attachment in saved:
        (root / attachment.storage_path).unlink(missing_ok=True)
