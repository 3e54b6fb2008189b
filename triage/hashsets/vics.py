"""Project VIC VICS JSON (1.x ``odata.metadata`` and 2.0 ``@odata.context``), ``#Media`` and ``#Cases``,
and NIST's "NSRL CAID" JSON (VICS 1.2 ``#Media`` of known non-CSAM media).

Sets run to millions of media, so the file is streamed with ijson: a ``#Media`` set is read one
media object at a time (and handed to the builder in vectorised batches), anything else is
walked event by event so even a huge case stays small.
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

from triage.matching.categories import KNOWN_GOOD
from triage.errors import HashSetError
from triage.hashsets._base import head_text
from triage.hashsets._builder import HashSetBuilder, parse_size, shorten
from triage.hashsets._jsonguard import JsonGuard
from triage.hashsets._vicsfast import (
    MediaReader,
    add_plain,
    as_dict,
    plain_columns,
    runs,
    value_start,
)

_CONTEXT = re.compile(r'"(?:odata\.metadata|@odata\.context)"\s*:\s*"[^"]*#(?:Media|Cases)\b', re.I)
_VALUE_OF_OBJECTS = re.compile(r'"value"\s*:\s*\[\s*\{')
_CONTEXT_KEYS = ("odata.metadata", "@odata.context")
_CAID_CONTEXT = re.compile(r'"odata\.metadata"\s*:\s*"[^"]*/DataModels/1\.2\.xml#Media"', re.I)
_VERSION = re.compile(r"/DataModels/(\d+(?:\.\d+)*)\.xml", re.I)
_REGION = re.compile(r"/DataModels/2\.0\.xml/([^/$#]+)/", re.I)
_BATCH = 20_000  # media objects per vectorised batch
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


def check_media(media: dict[str, object], use_category: bool = True, need_digest: bool = True
                ) -> tuple[list[tuple[str, str | None]], str | None, int | None] | str:
    """The rules for one media object: ``(hashes, category, size)``, or why it is refused.
    The exact reader and the PDQ reader (``perceptual.sets``) both apply them, so a media
    never gets one category through its MD5 and another through its PDQ hash. The PDQ reader
    passes ``need_digest=False``: a media carrying only a PDQ hash is one for it."""
    hashes: list[tuple[str, str | None]] = []
    for field, algorithm in (("MD5", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        value = media.get(field)
        if value is not None and not isinstance(value, str):
            return f"{field} is not a string: {_show(value)}"
        hashes.append((algorithm, value))
    if need_digest and not any(value and value.strip() for _, value in hashes[:2]):
        return "media has neither MD5 nor SHA1"
    try:
        category = _category(media.get("Category")) if use_category else None
    except ValueError:
        return f"Category {_show(media.get('Category'))} is not an integer"
    try:
        size = parse_size(media.get("MediaSize"))
    except ValueError:
        return f"MediaSize {_show(media.get('MediaSize'))} is not a number"
    return hashes, category, size


def uses_category(head: bytes) -> bool:
    """Whether a VICS document's ``Category`` is an alert category: not in NIST CAID."""
    text = head_text(head)
    return not (text is not None and _CAID_CONTEXT.search(text))


def _add_media(builder: HashSetBuilder, where: str, media: dict[str, object], use_category: bool = True,
               pdq: bool = True) -> None:
    """One media object: its exact digests, and (``pdq``, when the builder collects them) its
    PDQ ``AlternativeHashes`` in the same pass. ``pdq=False`` where the caller already handed
    them over (a batch's fallback to this path)."""
    if pdq and builder.pdq is not None and media.get("AlternativeHashes") is not None:
        builder.pdq.media(where, media, use_category)
    checked = check_media(media, use_category)
    if isinstance(checked, str):
        builder.malformed(where, checked)
        return
    hashes, category, size = checked
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


def _check_shape(events: Iterator[tuple[str, str, Any]], path: str) -> tuple[bool, str | None]:
    """Read up to the start of ``value``: (a ``#Media`` context came first, that context).

    Also rejects documents that cannot be VICS (top level not an object, no ``value`` array), so
    the parsers below only deal with the inside of ``value``.
    """
    media, context = False, None
    for prefix, event, value in events:
        if prefix in _CONTEXT_KEYS and event == "string":
            media, context = "#media" in value.lower(), value
        elif prefix == "value":
            if event != "start_array":
                raise HashSetError(f'hash set {path}: not VICS JSON: "value" is not an array')
            return media, context
        elif prefix == "" and (event in _SCALARS or event == "start_array"):
            raise HashSetError(f"hash set {path}: not VICS JSON: the top level is not an object")
    raise HashSetError(f'hash set {path}: not VICS JSON: there is no "value" array')


_CATEGORY_TEXT = {n: str(n) for n in range(256)}


class _Batch:
    """Plain media objects, collected column-wise and added with ``add_columns``.

    Anything unusual (a case, a non-string hash, an odd category or size) is not batched: the
    caller sends it through ``_add_media`` so messages and rules stay those of the slow path.
    """

    def __init__(self, builder: HashSetBuilder, use_category: bool) -> None:
        self.builder = builder
        self.use_category = use_category
        self._clear()

    def _clear(self) -> None:
        self.md5: list[Any] = []
        self.sha1: list[Any] = []
        self.sha256: list[Any] = []
        self.categories: list[str | None] = []
        self.sizes: list[int | None] = []
        self.items: list[tuple[int, dict[str, Any]]] = []

    def push(self, where: _Cursor, item: dict[str, Any]) -> bool:
        """Queue ``item``; False when it needs the per-record path instead."""
        get = item.get
        category = get("Category") if self.use_category else None
        if category is not None:
            if category.__class__ is str and category.isascii() and category.isdigit():
                category = int(category)
            if category.__class__ is not int or (category := _CATEGORY_TEXT.get(category)) is None:
                return False
        size = get("MediaSize")
        if size is not None:
            if size.__class__ is str and size.isascii() and size.isdigit() and len(size) < 19:
                size = int(size)  # NIST writes sizes as strings
            if size.__class__ is not int or size < 0 or size >= 2**63:
                return False
        if isinstance(get("Media"), list):
            return False
        self.md5.append(get("MD5"))
        self.sha1.append(get("SHA1"))
        self.sha256.append(get("SHA256"))
        self.categories.append(category)
        self.sizes.append(size)
        self.items.append((where.index, item))
        if len(self.items) >= _BATCH:
            self.flush()
        return True

    def flush(self) -> None:
        if not self.items:
            return
        items, use_category = self.items, self.use_category
        hashes = {"md5": self.md5, "sha1": self.sha1}
        if any(v is not None for v in self.sha256):
            hashes["sha256"] = self.sha256
        builder = self.builder
        builder.add_columns(
            hashes, self.categories, self.sizes,
            lambda i: _add_media(builder, f"value[{items[i][0]}]", items[i][1], use_category,
                                 pdq=False),
            required=("md5", "sha1"),
        )
        self._clear()


def _add_items(builder: HashSetBuilder, items: Iterator[Any], cursor: _Cursor, use_category: bool) -> None:
    """``#Media`` fast path: ijson's C backend builds each (small) media object, ~10x faster."""
    batch = _Batch(builder, use_category)
    sink = builder.pdq
    for item in items:
        cursor.index += 1
        cursor.nested = -1
        if sink is not None and isinstance(item, dict) and item.get("AlternativeHashes") is not None:
            sink.media(str(cursor), item, use_category)  # the PDQ column, same pass
        if isinstance(item, dict) and batch.push(cursor, item):
            continue
        batch.flush()  # keep file order, so a strict load reports the first bad record
        if not isinstance(item, dict):
            builder.malformed(str(cursor), "expected a Media or Case object")
        elif isinstance(item.get("Media"), list):  # a Case after all
            for media in item["Media"]:
                cursor.nested += 1
                if isinstance(media, dict):
                    _add_media(builder, str(cursor), media, use_category)
                else:
                    builder.malformed(str(cursor), "expected a Media object")
        else:
            _add_media(builder, str(cursor), item, use_category, pdq=False)
    batch.flush()


def _utf8(path: Path) -> bool:
    with open(path, "rb") as raw:
        return not raw.read(2).startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def _read_fast(builder: HashSetBuilder, start: int, cursor: _Cursor, use_category: bool) -> None:
    """``#Media`` via ``_vicsfast``: plain runs column-wise, everything else item by item."""

    def slow(where: str, media: Any) -> None:
        _add_media(builder, where, media, use_category, pdq=False)  # emitted before add_plain

    def emit(items: list[Any], first: int) -> None:
        """The PDQ ``AlternativeHashes`` of plain items, handed over in the same pass."""
        if builder.pdq is None:
            return
        for i, m in enumerate(items):
            if getattr(m, "AlternativeHashes", None) is not None:
                builder.pdq.media(f"value[{first + i}]", as_dict(m), use_category)

    def add(items: list[Any], first: int, piece: bytes) -> None:
        columns = plain_columns(items, use_category, _CATEGORY_TEXT, piece)
        if columns is not None:
            emit(items, first)
            add_plain(builder, items, first, use_category, _CATEGORY_TEXT, slow, columns)
            return
        for begin, end, plain in runs(items, use_category, _CATEGORY_TEXT):
            if plain:
                emit(items[begin:end], first + begin)
                add_plain(builder, items[begin:end], first + begin, use_category, _CATEGORY_TEXT, slow)
            else:
                cursor.index = first + begin - 1
                _add_items(builder, (as_dict(m) for m in items[begin:end]), cursor, use_category)

    MediaReader(builder.path, start, add, alternatives=builder.pdq is not None).run()


class _Walker:
    """Event-level parser for ``#Cases`` (one case may hold millions of media) or unknown shape.

    Keeps only the few scalar fields we need per media object; nested collections are skipped,
    never built. A ``Media`` array marks a ``value[]`` object as a case.
    """

    def __init__(self, builder: HashSetBuilder, cursor: _Cursor, use_category: bool) -> None:
        self.builder = builder
        self.cursor = cursor
        self.use_category = use_category
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
                _add_media(self.builder, str(self.cursor), item or {}, self.use_category)
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
            elif self.media is not None and field.startswith(_ALTERNATIVE) and self.builder.pdq:
                _alternative(self.media, field, event, value)
        elif rest.startswith(_ALTERNATIVE) and self.item is not None and self.builder.pdq:
            _alternative(self.item, rest, event, value)
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
            _add_media(self.builder, str(self.cursor), media or {}, self.use_category)
        elif event in _SCALARS or event == "start_array":
            self.cursor.nested += 1
            self.builder.malformed(str(self.cursor), "expected a Media object")


_ALTERNATIVE = "AlternativeHashes"


def _alternative(fields: dict[str, Any], path: str, event: str, value: Any) -> None:
    """Keep a media's ``AlternativeHashes`` (HashName/HashValue pairs) for the PDQ column: a
    few small objects, built only when a builder collects PDQ."""
    rest = path[len(_ALTERNATIVE):]
    if rest == "" and event == "start_array":
        fields[_ALTERNATIVE] = []
    elif rest == ".item" and event == "start_map":
        alts = fields.get(_ALTERNATIVE)
        if isinstance(alts, list):
            alts.append({})
    elif rest in (".item.HashName", ".item.HashValue") and event in _SCALARS:
        alts = fields.get(_ALTERNATIVE)
        if isinstance(alts, list) and alts and isinstance(alts[-1], dict):
            alts[-1][rest[6:]] = value


def _store(fields: dict[str, object], field: str, event: str, value: Any) -> None:
    if event in _SCALARS:
        fields[field] = value
    elif event in ("start_map", "start_array"):
        fields[field] = _NOT_SCALAR


class VicsParser:
    """Project VIC / CAID VICS JSON, streamed with ijson (never loaded whole)."""

    id = "vics"
    description = "Project VIC / CAID VICS JSON 1.x and 2.0 (odata.metadata / @odata.context, #Media or #Cases)"
    use_category = True

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        if text is None or not text.lstrip().startswith("{") or _CAID_CONTEXT.search(text):
            return False
        return bool(_CONTEXT.search(text)) or (
            bool(_VALUE_OF_OBJECTS.search(text)) and '"MD5"' in text
        )

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        cursor = _Cursor()
        try:
            with open(path, "rb") as raw:
                guarded = JsonGuard(_json_source(raw), builder.path)
                media_first, context = _check_shape(ijson.parse(guarded), builder.path)
            builder.info.update(_describe(context))
            if media_first and _utf8(path) and (start := value_start(builder.path)) is not None:
                _read_fast(builder, start, cursor, self.use_category)
                return
            with open(path, "rb") as raw:
                source = JsonGuard(_json_source(raw), builder.path)
                if media_first:
                    items = ijson.items(source, _MEDIA, use_float=False)
                    _add_items(builder, items, cursor, self.use_category)
                else:
                    _Walker(builder, cursor, self.use_category).run(ijson.parse(source, use_float=False))
        except ijson.JSONError as exc:
            raise HashSetError(
                f"hash set {path}: invalid or truncated JSON after {cursor}: {_first_line(exc)}"
            ) from exc
        except UnicodeError as exc:
            raise HashSetError(f"hash set {path}: JSON is not valid UTF-8 near {cursor}") from exc
        except RecursionError as exc:
            raise HashSetError(f"hash set {path}: JSON nested too deeply near {cursor}") from exc


class NsrlCaidParser(VicsParser):
    """NIST "NSRL CAID" non-RDS JSON: VICS 1.2 ``#Media`` of known, non-CSAM media.

    Its ``Category`` (8 in NIST's sample) is not an alert category: like IPED, ignore it and
    treat the whole set as known-good reference data by default.
    """

    id = "nsrl-caid"
    description = "NIST NSRL CAID non-RDS JSON (VICS 1.2 #Media; known non-CSAM media)"
    use_category = False
    default_kind = KNOWN_GOOD

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        return text is not None and text.lstrip().startswith("{") and bool(_CAID_CONTEXT.search(text))


def _describe(context: str | None) -> dict[str, str]:
    """Provenance from the context URL: data-model version, region profile, shape."""
    if not context:
        return {}
    info = {"vics_context": context}
    if match := _VERSION.search(context):
        info["vics_version"] = match.group(1)
    if match := _REGION.search(context):
        info["vics_profile"] = match.group(1)
    if "#" in context:
        info["vics_shape"] = context.rsplit("#", 1)[1]
    return info


def _first_line(exc: Exception) -> str:
    message = exc.args[0] if exc.args else str(exc)
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message).strip().split("\n", 1)[0]
