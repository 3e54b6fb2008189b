"""Project VIC VICS JSON (1.x ``odata.metadata`` and 2.0 ``@odata.context``), ``#Media`` and ``#Cases``.

Sets run to millions of media, so the file is streamed with ijson: a ``#Media`` set is read one
media object at a time, anything else is walked event by event so even a huge case stays small.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, BinaryIO

import ijson

from triage.errors import HashSetError
from triage.hashsets._base import head_text
from triage.hashsets._builder import HashSetBuilder, parse_size, shorten

_CONTEXT = re.compile(r'"(?:odata\.metadata|@odata\.context)"\s*:\s*"[^"]*#(?:Media|Cases)\b', re.I)
_VALUE_OF_OBJECTS = re.compile(r'"value"\s*:\s*\[\s*\{')
_CONTEXT_KEYS = ("odata.metadata", "@odata.context")
_FIELDS = frozenset({"MD5", "SHA1", "SHA256", "Category", "MediaSize"})
_SCALARS = frozenset({"string", "number", "boolean", "null"})
_NOT_SCALAR = object()  # a field whose value was an object or array

_MEDIA = "value.item"
_MEDIA_PREFIX = "value.item."
_NESTED = "Media.item"  # relative to _MEDIA_PREFIX: the #Cases shape
_NESTED_PREFIX = "Media.item."


class _Utf8Reader:
    """Feed a decoded (UTF-16) text stream to ijson as UTF-8 bytes."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text

    def read(self, size: int = -1) -> bytes:
        return self._text.read(size).encode("utf-8", "surrogatepass")


def _json_source(raw: BinaryIO) -> Any:
    start = raw.peek(4)[:4]
    if start.startswith(codecs.BOM_UTF8):
        raw.read(len(codecs.BOM_UTF8))
        return raw
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _Utf8Reader(io.TextIOWrapper(raw, encoding="utf-16", errors="replace"))
    return raw


def _category(value: object) -> str | None:
    """VICS categories are integers (sometimes as strings): normalise to ``str(int(...))``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        return str(int(value))  # ValueError for non-integers
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(value)
    try:
        number = int(value)
    except (ArithmeticError, ValueError):
        raise ValueError(value) from None
    if number != value:
        raise ValueError(value)
    return str(number)


def _add_media(builder: HashSetBuilder, where: str, media: dict[str, object]) -> None:
    hashes: list[tuple[str, str | None]] = []
    for field, algorithm in (("MD5", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        value = media.get(field)
        if value is not None and not isinstance(value, str):
            builder.malformed(where, f"{field} is not a string: {_show(value)}")
            return
        hashes.append((algorithm, value))
    if not any(value and value.strip() for _, value in hashes[:2]):
        builder.malformed(where, "media has neither MD5 nor SHA1")
        return
    try:
        category = _category(media.get("Category"))
    except ValueError:
        builder.malformed(where, f"Category {_show(media.get('Category'))} is not an integer")
        return
    try:
        size = parse_size(media.get("MediaSize"))
    except ValueError:
        builder.malformed(where, f"MediaSize {_show(media.get('MediaSize'))} is not a number")
        return
    builder.add(where, hashes, category, size)


def _show(value: object) -> str:
    return "<object or array>" if value is _NOT_SCALAR else shorten(value)


class _Cursor:
    """Where the parser is, for messages: ``value[3]`` or ``value[3].Media[7]``."""

    def __init__(self) -> None:
        self.index = -1  # position in value[]
        self.nested = -1  # position in value[index].Media[], -1 outside a case's media

    def __str__(self) -> str:
        if self.index < 0:
            return "the start of the file"
        if self.nested < 0:
            return f"value[{self.index}]"
        return f"value[{self.index}].Media[{self.nested}]"


def _check_shape(events: Iterator[tuple[str, str, Any]], path: str) -> bool:
    """Read up to the start of ``value``; True when a ``#Media`` context came before it.

    Also rejects documents that cannot be VICS (top level not an object, no ``value`` array), so
    the parsers below only deal with the inside of ``value``.
    """
    media = False
    for prefix, event, value in events:
        if prefix in _CONTEXT_KEYS and event == "string":
            media = "#media" in value.lower()
        elif prefix == "value":
            if event != "start_array":
                raise HashSetError(f'hash set {path}: not VICS JSON: "value" is not an array')
            return media
        elif prefix == "" and (event in _SCALARS or event == "start_array"):
            raise HashSetError(f"hash set {path}: not VICS JSON: the top level is not an object")
    raise HashSetError(f'hash set {path}: not VICS JSON: there is no "value" array')


def _add_items(builder: HashSetBuilder, items: Iterator[Any], cursor: _Cursor) -> None:
    """``#Media`` fast path: ijson's C backend builds each (small) media object, ~10x faster."""
    for item in items:
        cursor.index += 1
        cursor.nested = -1
        if not isinstance(item, dict):
            builder.malformed(str(cursor), "expected a Media or Case object")
        elif isinstance(item.get("Media"), list):  # a Case after all
            for media in item["Media"]:
                cursor.nested += 1
                if isinstance(media, dict):
                    _add_media(builder, str(cursor), media)
                else:
                    builder.malformed(str(cursor), "expected a Media object")
        else:
            _add_media(builder, str(cursor), item)


class _Walker:
    """Event-level parser for ``#Cases`` (one case may hold millions of media) or unknown shape.

    Keeps only the few scalar fields we need per media object; nested collections are skipped,
    never built. A ``Media`` array marks a ``value[]`` object as a case.
    """

    def __init__(self, builder: HashSetBuilder, cursor: _Cursor) -> None:
        self.builder = builder
        self.cursor = cursor
        self.cases = False  # from a #Cases context
        self.item: dict[str, object] | None = None  # fields of the current value[] object
        self.item_is_case = False
        self.media: dict[str, object] | None = None  # fields of the current case's Media object

    def run(self, events: Iterator[tuple[str, str, Any]]) -> None:
        for prefix, event, value in events:
            if prefix.startswith(_MEDIA_PREFIX):
                self._inside_item(prefix[len(_MEDIA_PREFIX) :], event, value)
            elif prefix == _MEDIA:
                self._item(event)
            elif prefix in _CONTEXT_KEYS and event == "string":
                self.cases = "#cases" in value.lower()

    def _item(self, event: str) -> None:
        if event == "start_map":
            self.cursor.index += 1
            self.cursor.nested = -1
            self.item = {}
            self.item_is_case = self.cases
        elif event == "end_map":
            item, self.item = self.item, None
            if not self.item_is_case:
                _add_media(self.builder, str(self.cursor), item or {})
        elif event in _SCALARS or event == "start_array":
            self.cursor.index += 1
            self.cursor.nested = -1
            self.item, self.item_is_case = None, False
            self.builder.malformed(str(self.cursor), "expected a Media or Case object")

    def _inside_item(self, rest: str, event: str, value: Any) -> None:
        if rest.startswith(_NESTED_PREFIX):
            field = rest[len(_NESTED_PREFIX) :]
            if self.media is not None and field in _FIELDS:
                _store(self.media, field, event, value)
        elif rest == _NESTED:
            if self.item_is_case:
                self._nested(event)
        elif rest == "Media":
            if event == "start_array":
                self.item_is_case = True
        elif rest in _FIELDS and self.item is not None:
            _store(self.item, rest, event, value)

    def _nested(self, event: str) -> None:
        if event == "start_map":
            self.cursor.nested += 1
            self.media = {}
        elif event == "end_map":
            media, self.media = self.media, None
            _add_media(self.builder, str(self.cursor), media or {})
        elif event in _SCALARS or event == "start_array":
            self.cursor.nested += 1
            self.builder.malformed(str(self.cursor), "expected a Media object")


def _store(fields: dict[str, object], field: str, event: str, value: Any) -> None:
    if event in _SCALARS:
        fields[field] = value
    elif event in ("start_map", "start_array"):
        fields[field] = _NOT_SCALAR


class VicsParser:
    """Project VIC / CAID VICS JSON, streamed with ijson (never loaded whole)."""

    id = "vics"
    description = "Project VIC VICS JSON (odata.metadata / @odata.context, #Media or #Cases)"

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        if text is None or not text.lstrip().startswith("{"):
            return False
        return bool(_CONTEXT.search(text)) or (
            bool(_VALUE_OF_OBJECTS.search(text)) and '"MD5"' in text
        )

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        cursor = _Cursor()
        try:
            with open(path, "rb") as raw:
                media_first = _check_shape(ijson.parse(_json_source(raw)), builder.path)
            with open(path, "rb") as raw:
                source = _json_source(raw)
                if media_first:
                    _add_items(builder, ijson.items(source, _MEDIA, use_float=False), cursor)
                else:
                    _Walker(builder, cursor).run(ijson.parse(source, use_float=False))
        except ijson.JSONError as exc:
            raise HashSetError(
                f"hash set {path}: invalid or truncated JSON after {cursor}: {_first_line(exc)}"
            ) from exc
        except UnicodeError as exc:
            raise HashSetError(f"hash set {path}: JSON is not valid UTF-8 near {cursor}") from exc


def _first_line(exc: Exception) -> str:
    message = exc.args[0] if exc.args else str(exc)
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message).strip().split("\n", 1)[0]
