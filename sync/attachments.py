"""Receipt attachments: which file types are accepted, and what the bytes really are (pure).

[unverified] Alegra documents no type or size limit for bill attachments; `ALLOWED_TYPES` here
and `settings.max_attachment_bytes` are our own bound and the one place to change it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

ALLOWED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf")
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/x-pdf": "application/pdf",
}
# A declared type that says nothing: the bytes decide.
GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream")
PDF_HEADER_WINDOW = 1024  # readers accept `%PDF-` anywhere in the first KiB
_ASCII_SPACES = str.maketrans("", "", " \t\r\n")


@dataclass(frozen=True)
class AttachmentInfo:
    """What the payload records about a stored attachment (the bytes live in their own table)."""

    filename: str
    content_type: str
    size: int
    sha256: str


def media_type(header_value: str | None) -> str:
    """`Image/JPG; name=x` → `image/jpeg`: lower case, parameters dropped, aliases folded."""
    main = (header_value or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(main, main)


def sniff(data: bytes) -> str | None:
    """The allowed type the bytes' magic number shows, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if b"%PDF-" in data[:PDF_HEADER_WINDOW]:
        return "application/pdf"
    return None


def decode_base64(text: str) -> bytes:
    """Standard base64; ASCII line breaks, tabs and spaces are ignored. Raises ValueError when
    malformed (any other character, Unicode spaces and separators included)."""
    compact = text.translate(_ASCII_SPACES)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


def decoded_size_bound(text: str) -> int:
    """An upper bound of the decoded size, to refuse an oversized upload before decoding it."""
    return (len(text) * 3) // 4


def describe(filename: str, content_type: str, data: bytes) -> AttachmentInfo:
    return AttachmentInfo(filename, content_type, len(data), hashlib.sha256(data).hexdigest())
