"""multipart/form-data (RFC 7578) read strictly from a body already in memory.

python-multipart's parser does the parsing; this module keeps each part's raw bytes and refuses
what starlette's form parser lets through: a body that is garbled or cut short (no closing
boundary), and part names and file names that are not UTF-8 (starlette reads those, and text
parts, as latin-1 when they are not UTF-8: mojibake that would be stored). The bytes of a part
are handed over as they are; the caller decodes text parts (strictly, as UTF-8).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# The parser logs a warning line of its own for every garbled body; the 400 is the record.
logging.getLogger("python_multipart.multipart").setLevel(logging.ERROR)


class MalformedMultipart(ValueError):
    """The body is not a multipart/form-data body this service reads (a 400)."""


@dataclass(frozen=True)
class Part:
    """One part: its form name, its file name (None for a plain field), its declared
    Content-Type and its bytes."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


class FileNameNotUtf8(ValueError):
    """A file part's name is not UTF-8 (the caller refuses it on its field)."""

    def __init__(self, part_name: str) -> None:
        super().__init__(f"the file name of part {part_name!r} is not UTF-8")
        self.part_name = part_name


@dataclass
class _Reader:
    """Collects the parts as the parser's callbacks report them."""

    max_parts: int
    parts: list[Part] = field(default_factory=list)
    ended: bool = False
    _headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    _name: bytes = b""
    _value: bytes = b""
    _data: list[bytes] = field(default_factory=list)

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_part_data": self._part_data, "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise MalformedMultipart(f"more than {self.max_parts} parts")
        self._headers, self._data = [], []

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers.append((self._name.strip().lower(), self._value.strip()))
        self._name, self._value = b"", b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data.append(data[start:end])

    def _part_end(self) -> None:
        headers = dict(self._headers)
        _, options = parse_options_header(headers.get(b"content-disposition"))
        if b"name" not in options:
            raise MalformedMultipart('a part without a Content-Disposition "name"')
        name = _utf8(options[b"name"])
        if name is None:
            raise MalformedMultipart("a part name that is not UTF-8")
        filename = None
        if b"filename" in options:
            filename = _utf8(options[b"filename"])
            if filename is None:
                raise FileNameNotUtf8(name)
        declared = headers.get(b"content-type")
        content_type = declared.decode("latin-1") if declared is not None else None
        self.parts.append(Part(name, filename, content_type, b"".join(self._data)))

    def _end(self) -> None:
        self.ended = True


def parse_form(content_type: str, body: bytes, *, max_parts: int) -> list[Part]:
    """The parts of `body`, in order. Raises MalformedMultipart, or FileNameNotUtf8."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedMultipart("the Content-Type has no boundary")
    reader = _Reader(max_parts)
    try:
        parser = MultipartParser(boundary, reader.callbacks())
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise MalformedMultipart(f"not a multipart/form-data body: {exc}") from exc
    if not reader.ended:
        raise MalformedMultipart("the body ends before the closing boundary")
    return reader.parts


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
