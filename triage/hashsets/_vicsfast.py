"""VICS ``#Media`` fast path: decode runs of media objects at C speed instead of one by one.

ijson costs ~5 us per media object, too slow for 10M-object sets. Here the ``value`` array is
read in chunks and each chunk's complete items are decoded with one call: msgspec into a Struct
holding only the five fields we use (~1.3 us per object; unknown fields are skipped, not
built), or the stdlib ``json`` if msgspec is missing.

Finding where a chunk's last complete item ends: media objects of one export all start with
the same key, so the last ``},{"<first key>":`` is almost always an item boundary. The guess
needs no trust: ``"[" + chunk + "]"`` only decodes if every bracket and string in the chunk is
closed, i.e. if the cut is a real boundary. When it does not decode, the exact (slower)
``Scanner`` finds the boundary; if the decode still fails the JSON really is invalid.
Anything unusual about an item (odd types, a case, bad hex) goes through ``vics._add_media``,
the reference path, so rules and messages are the same as with ijson.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from operator import attrgetter
from typing import Any

import numpy as np

from triage.errors import HashSetError
from triage.hashsets._builder import HashSetBuilder
from triage.hashsets._jsonguard import Scanner

try:  # optional accelerator; the stdlib decoder gives the same results, ~2x slower
    import msgspec
except ImportError:  # pragma: no cover - exercised by the fallback test
    msgspec = None

CHUNK = 8 * 1024 * 1024
MAX_ITEM = 64 * 1024 * 1024
_FIRST_KEY = re.compile(rb'\s*\{\s*"((?:[^"\\]|\\.){1,64})"\s*:')
_BLANK = re.compile(rb"[ \t\r\n]*")
_VALUE_KEY = re.compile(rb'"value"\s*:\s*$')
_TAIL = re.compile(rb"\s*\}\s*")

if msgspec is not None:

    class _Media(msgspec.Struct, gc=False):
        MD5: Any = None
        SHA1: Any = None
        SHA256: Any = None
        Category: Any = None
        MediaSize: Any = None
        Media: Any = None

    class _MediaPdq(_Media, gc=False):
        """Also keeps ``AlternativeHashes`` (PDQ...), only when the builder collects PDQ:
        building those small lists costs time a set loaded without --pdq should not pay."""

        AlternativeHashes: Any = None

    _DECODER = msgspec.json.Decoder(list[_Media])
    _DECODER_PDQ = msgspec.json.Decoder(list[_MediaPdq])
    _STRUCTS = frozenset({_Media, _MediaPdq})
    _DECODE_ERRORS: tuple[type[BaseException], ...] = (msgspec.DecodeError,)
else:  # pragma: no cover
    _DECODER = None
    _DECODER_PDQ = None
    _STRUCTS = frozenset()
    _DECODE_ERRORS = ()


def value_start(path: str, head_limit: int = 16 * 1024 * 1024) -> int | None:
    """Byte offset of the ``[`` opening the top-level ``value`` array, if it is near the start."""
    scanner = Scanner(path)
    seen = b""
    with open(path, "rb") as stream:
        while len(seen) < head_limit and (data := stream.read(64 * 1024 if not seen else 1024 * 1024)):
            base = len(seen)
            seen += data
            where, values, depth = scanner.scan(data)
            for position, byte, level in zip(where.tolist(), values.tolist(), depth.tolist()):
                at = base + position
                if byte == 91 and level == 2 and _VALUE_KEY.search(seen, max(0, at - 256), at):
                    return at
    return None


class MediaReader:
    """Reads ``value[]`` from ``start`` and hands decoded items to ``add`` in file order."""

    def __init__(self, path: str, start: int, add: Callable[[list[Any], int, bytes], None],
                 alternatives: bool = False) -> None:
        self.decoder = _DECODER_PDQ if alternatives else _DECODER  # keep AlternativeHashes?
        self.path = path
        self.start = start
        self.add = add  # (items, index of the first, their JSON text) -> None
        self.index = 0
        self.after_item = False  # the next item must be preceded by a comma
        self.expect_item = False  # a comma was read: an item must follow (no trailing comma)
        self.boundary: re.Pattern[bytes] | None = None

    def run(self) -> None:
        with open(self.path, "rb") as stream:
            stream.seek(self.start + 1)
            buf = b""
            while data := stream.read(CHUNK):
                buf = self._separator(buf + data)
                cut = self._cut(buf)
                used = self._consume(buf[:cut]) if cut else 0
                if used:
                    buf = self._separator(buf[used:])
                elif len(buf) > MAX_ITEM:
                    raise HashSetError(
                        f"hash set {self.path}: a media object near value[{self.index}] is larger than {MAX_ITEM} bytes"
                    )
            self._last(buf)

    def _separator(self, buf: bytes) -> bytes:
        """Drop what separates items: blanks, and after an item exactly one comma."""
        buf = buf[_BLANK.match(buf).end() :]
        if self.after_item and buf[:1] == b",":
            self.after_item, self.expect_item = False, True
            buf = buf[_BLANK.match(buf, 1).end() :]
        elif self.after_item and buf[:1] not in (b"", b"]"):
            self._invalid(buf[:64])
        return buf

    def _cut(self, buf: bytes) -> int | None:
        """End of the last complete item in ``buf`` (which starts at an item), or None."""
        if self.boundary is None:
            first = _FIRST_KEY.match(buf)
            if first is None:
                return self._exact_cut(buf)
            key = re.escape(first.group(1))
            self.boundary = re.compile(rb'\}\s*,\s*\{\s*"' + key + rb'"\s*:')
        for window in (1 << 20, len(buf)):  # the last boundary, looked for near the end first
            found = [m.start() for m in self.boundary.finditer(buf, max(0, len(buf) - window))]
            if found:
                return found[-1] + 1
        return None

    def _exact_cut(self, buf: bytes) -> int | None:
        where, values, depth = Scanner(self.path, max_string=MAX_ITEM).scan(buf)
        ends = np.flatnonzero((values == 125) & (depth == 0))
        return None if not len(ends) else int(where[ends[-1]]) + 1

    def _consume(self, piece: bytes) -> int:
        """Decode and add the items of ``piece``; returns the bytes used (0: no complete item)."""
        if not piece.isascii():  # msgspec does not check UTF-8 inside fields it skips
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HashSetError(
                    f"hash set {self.path}: JSON is not valid UTF-8 near value[{self.index}] (byte {exc.start} of a chunk)"
                ) from None
        try:
            items = _decode(piece, self.decoder)
        except (ValueError, *_DECODE_ERRORS):
            exact = self._exact_cut(piece)  # the guessed boundary was inside an item
            if exact is None:
                return 0
            if exact == len(piece):
                self._invalid(piece)
            return self._consume(piece[:exact])
        self.add(items, self.index, piece)
        self.index += len(items)
        self.after_item = bool(items)
        self.expect_item = self.expect_item and not items
        return len(piece)

    def _last(self, buf: bytes) -> None:
        """The final chunk: items up to the ``]`` closing ``value``, then the object's end."""
        cut = self._cut(buf)  # most of the chunk as usual; the exact scan only sees the rest
        if cut and (used := self._consume(buf[:cut])):
            buf = self._separator(buf[used:])
        where, values, depth = Scanner(self.path, max_string=MAX_ITEM).scan(buf)
        close = np.flatnonzero((values == 93) & (depth == -1))
        if not len(close):
            self._invalid(buf, truncated=True)
        end = int(where[close[0]])
        if buf[:end].strip(b" \t\r\n"):
            if self.after_item or self._consume(buf[:end]) != end:
                self._invalid(buf[:end])
        elif self.expect_item:
            self._invalid(b",")  # a trailing comma: [..., ]
        tail = buf[end + 1 :]
        if _TAIL.fullmatch(tail):
            return
        try:  # more members after "value": {"value":[...], "@odata.nextLink": "..."}
            rest = json.loads(b"{" + tail.lstrip()[1:]) if tail.lstrip().startswith(b",") else None
        except ValueError:
            rest = None
        if not isinstance(rest, dict):
            raise HashSetError(f"hash set {self.path}: invalid or truncated JSON after the value array")

    def _invalid(self, piece: bytes, truncated: bool = False) -> None:
        try:
            json.loads(b"[" + piece + b"]")
        except RecursionError:
            raise HashSetError(f"hash set {self.path}: JSON nested too deeply after value[{self.index}]") from None
        except ValueError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HashSetError(f"hash set {self.path}: invalid or truncated JSON after value[{self.index}]: {reason}") from None
        raise HashSetError(f"hash set {self.path}: {'truncated' if truncated else 'invalid'} JSON after value[{self.index}]")


def _decode(piece: bytes, decoder: Any = None) -> list[Any]:
    """Items of a chunk: Structs when every item fits the schema, else plain JSON objects."""
    text = b"[" + piece + b"]"
    if _DECODER is not None:
        try:
            return (decoder or _DECODER).decode(text)
        except msgspec.ValidationError:
            pass  # an item of another shape: decode generically, the slow path sorts it out
    return json.loads(text, parse_float=Decimal)


def runs(items: list[Any], use_category: bool, category_text: dict[int, str]) -> Iterator[tuple[int, int, bool]]:
    """Split ``items`` into runs (start, stop, plain); plain runs can be added column-wise."""
    start = 0
    flags = [_plain(m, use_category, category_text) for m in items]
    for i in range(1, len(items) + 1):
        if i == len(items) or flags[i] != flags[start]:
            yield start, i, flags[start]
            start = i


_INT_OR_NONE = {int, type(None)}
_FIELDS = tuple(attrgetter(f) for f in ("MD5", "SHA1", "SHA256", "Category", "MediaSize", "Media"))


def plain_columns(items: list[Any], use_category: bool, category_text: dict[int, str],
                  piece: bytes = b'"Media""SHA256"') -> list[Any] | None:
    """The six fields as lists when every item is a plain media Struct (the common case,
    checked with C-level passes), else None. Fields whose key never occurs in the chunk's
    bytes (``piece``) are not read: a substring search is cheaper than a pass over items."""
    if _DECODER is None or not items or not set(map(type, items)) <= _STRUCTS:
        return None
    nones = [None] * len(items)
    columns = [list(map(get, items)) if (name is None or name in piece) else nones
               for get, name in zip(_FIELDS, (None, None, b'"SHA256"', None, None, b'"Media"'))]
    _, _, _, cats, sizes, media = columns
    if media is not nones and media.count(None) != len(media):
        return None
    if use_category and (not set(map(type, cats)) <= _INT_OR_NONE or not set(cats) - {None} <= category_text.keys()):
        return None
    if not set(map(type, sizes)) <= _INT_OR_NONE:
        return None
    return columns


def _plain(m: Any, use_category: bool, category_text: dict[int, str]) -> bool:
    if _DECODER is None or not isinstance(m, _Media) or m.Media is not None:
        return False
    c = m.Category
    if use_category and c is not None and (c.__class__ is not int or c not in category_text):
        return False
    s = m.MediaSize
    if s is not None and (s.__class__ is not int or s < 0 or s >= 2**63):
        return s.__class__ is str and s.isascii() and s.isdigit() and len(s) < 19
    return True


def as_dict(m: Any) -> Any:
    """A Struct back as the dict the reference path expects (other objects pass through)."""
    if _DECODER is not None and isinstance(m, _Media):
        return {f: getattr(m, f) for f in m.__struct_fields__ if getattr(m, f) is not None}
    return m


def add_plain(builder: HashSetBuilder, items: list[Any], first: int, use_category: bool,
              category_text: dict[int, str], slow: Callable[[str, Any], None],
              columns: list[list[Any]] | None = None) -> None:
    """Column-wise add of plain Struct items (``first`` = index of items[0] in value[])."""
    md5, sha1, sha256, cats, sizes, _ = columns or [list(map(get, items)) for get in _FIELDS]
    hashes = {"md5": md5, "sha1": sha1}
    if sha256.count(None) != len(sha256):
        hashes["sha256"] = sha256
    categories: Any = None
    if use_category:
        if cats.count(None) == 0:  # small ints: one numpy conversion and a lookup array
            categories = np.array(cats, dtype=np.int64)
        else:
            categories = list(map(category_text.get, cats))
    if not set(map(type, sizes)) <= _INT_OR_NONE:  # NIST writes sizes as strings
        sizes = [int(v) if v.__class__ is str else v for v in sizes]
    builder.add_columns(hashes, categories, sizes,
                        lambda i: slow(f"value[{first + i}]", as_dict(items[i])),
                        required=("md5", "sha1"))
