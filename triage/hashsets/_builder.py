"""Shared record handling for every hash-set parser.

Parsers only split their format into records; this module owns the rules that must be identical
across formats: hex validation, dropping empty-input / all-zero digests, declared sizes and the
strict-vs-lenient treatment of malformed records. Rows go to an ``EntryStore`` (shared by all
sources of one index), which de-duplicates and keeps category conflicts.

Two ways in, one set of rules: ``add`` takes one record (the reference path, used for every
record a fast path cannot vouch for) and ``add_columns`` takes thousands at once with numpy.
"""

from __future__ import annotations

import string
from array import array
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from triage.errors import HashSetError
from triage.hashsets._hexfast import decode_rows, is_zero
from triage.hashsets.model import ALGORITHM_HEX_LENGTHS, EMPTY_DIGESTS
from triage.hashsets.store import EntryStore

ALGORITHM_LABELS = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}
ALGORITHM_BY_HEX_LENGTH = {n: alg for alg, n in ALGORITHM_HEX_LENGTHS.items()}
EMPTY_KEYS = {alg: bytes.fromhex(hx) for alg, hx in EMPTY_DIGESTS.items()}
_HEXDIGITS = frozenset(string.hexdigits)
_SIZE_FLUSH = 65536

Where = int | str  # a line number, or a location such as "value[12]"


def shorten(value: object, limit: int = 80) -> str:
    """Quote an offending field for a one-line error message (repr escapes control characters)."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def parse_size(value: object) -> int | None:
    """A declared file size: None when absent; ValueError unless a non-negative integer."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise ValueError(value)
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(value)
    try:
        size = int(value)  # JSON numbers arrive as int or Decimal
    except (ArithmeticError, ValueError):
        raise ValueError(value) from None
    if size != value or size < 0 or size >= 2**63:
        raise ValueError(value)
    return size


class HashSetBuilder:
    """Validates one source's records into an ``EntryStore`` and keeps that source's counters."""

    def __init__(self, path: str, *, lenient: bool, store: EntryStore | None = None) -> None:
        self.path = path
        self.lenient = lenient
        self.store = store if store is not None else EntryStore()
        self.records = 0  # records accepted (including ones whose digests were all dropped)
        self.skipped = 0
        self.dropped_empty = 0
        self.info: dict[str, Any] = {}  # format-specific provenance (VICS profile, DB properties)
        # where a parser hands the PDQ hashes it meets (a ``perceptual.sets.PdqCollector``),
        # so a source with a PDQ column is parsed once for both kinds; None: not wanted
        self.pdq: Any = None
        self._sizes = array("q")

    def fail(self, where: Where, reason: str) -> HashSetError:
        """The error for a problem no lenient mode can skip (e.g. a bad header)."""
        return HashSetError(f"{self.path}:{where}: {reason}")

    def malformed(self, where: Where, reason: str) -> None:
        """Reject one record: raise in strict mode, count it under ``lenient``."""
        if not self.lenient:
            raise self.fail(where, reason)
        self.skipped += 1

    # -- one record -------------------------------------------------------------------------

    def add(
        self,
        where: Where,
        hashes: Iterable[tuple[str | None, str | None]],
        category: str | None = None,
        size: int | None = None,
        *,
        missing: str = "no hash value",
    ) -> None:
        """Add one record.

        ``hashes`` holds ``(algorithm, hex)`` pairs; algorithm None means "infer from the length",
        an empty or None hex means the value is absent. The record is all-or-nothing: one bad hash
        rejects it, so a lenient load never keeps half a record.
        """
        digests: list[tuple[str, bytes]] = []
        for algorithm, text in hashes:
            if text is None or not (text := text.strip()):
                continue
            checked = _digest(algorithm, text)
            if isinstance(checked, str):
                self.malformed(where, checked)
                return
            digests.append(checked)
        if not digests:
            self.malformed(where, missing)
            return
        self.records += 1
        if size == 0:
            self.dropped_empty += len(digests)
            return
        category_id = self.store.category_id(category)
        kept = False
        for algorithm, digest in digests:
            if digest == EMPTY_KEYS[algorithm] or not any(digest):
                self.dropped_empty += 1
                continue
            self.store.add_one(algorithm, digest, category_id)
            kept = True
        if kept:
            self._size(size)

    def _size(self, size: int | None) -> None:
        if size is None:
            self.store.sizes.missing += 1
            return
        self._sizes.append(size)
        if len(self._sizes) >= _SIZE_FLUSH:
            self.flush()

    def flush(self) -> None:
        """Hand buffered sizes to the store; the loader calls this once the parser is done."""
        if self._sizes:
            self.store.sizes.add(np.frombuffer(self._sizes.tobytes(), dtype=np.int64))
            self._sizes = array("q")

    # -- many records -----------------------------------------------------------------------

    def add_columns(
        self,
        hashes: dict[str, Sequence[Any]],
        categories: Sequence[str | None] | np.ndarray | None,
        sizes: Sequence[int | None] | None,
        slow: Callable[[int], None],
        *,
        required: Iterable[str] | None = None,
    ) -> None:
        """Add rows given column-wise; the same rules as ``add``, vectorised.

        Row ``i`` has ``hashes[alg][i]`` (hex string, or None/"" for absent), ``categories[i]``
        and ``sizes[i]`` (int, None, or negative for "invalid"); ``categories`` may also be an
        array of non-negative integer codes (stored as their decimal text). Every row that is not plainly valid
        (bad hex, odd type, padding, no hash among ``required``) is handed to ``slow(i)``, the
        parser's per-record path, which produces the exact error or accepts it.
        """
        rows = len(next(iter(hashes.values())))
        if not rows:
            return
        ok = np.ones(rows, dtype=bool)
        present: dict[str, np.ndarray] = {}
        keys: dict[str, np.ndarray] = {}
        for algorithm, column in hashes.items():
            hex_length = ALGORITHM_HEX_LENGTHS[algorithm]
            lengths, text = _column_text(column, rows)
            has = lengths == hex_length
            data = np.frombuffer(text, dtype=np.uint8)
            if has.all():  # the usual column: the joined text already is an (n, L) matrix
                decoded, valid = decode_rows(data[: rows * hex_length].reshape(rows, hex_length))
                ok &= valid
                present[algorithm], keys[algorithm] = has, decoded
                continue
            ok &= has | (lengths == 0)
            index = np.flatnonzero(has)
            starts = np.cumsum(lengths.clip(0)) - lengths.clip(0)
            decoded, valid = decode_rows(sliding_window_view(data, hex_length)[starts[index]])
            ok[index[~valid]] = False
            present[algorithm], keys[algorithm] = has, np.zeros(rows, dtype=decoded.dtype)
            keys[algorithm][index] = decoded
        needed = [present[a] for a in (required or hashes) if a in present]
        ok &= np.logical_or.reduce(needed) if needed else False
        size_array, declared = _sizes(sizes, rows)
        ok &= ~declared | (size_array >= 0)  # a negative size asks for the slow path
        self._add_rows(ok, present, keys, categories, size_array, declared)
        for row in np.flatnonzero(~ok).tolist():
            slow(row)

    def _add_rows(
        self,
        ok: np.ndarray,
        present: dict[str, np.ndarray],
        keys: dict[str, np.ndarray],
        categories: Sequence[str | None] | None,
        size_array: np.ndarray,
        declared: np.ndarray,
    ) -> None:
        self.records += int(ok.sum())
        zero = ok & declared & (size_array == 0)
        if zero.any():
            self.dropped_empty += sum(int((zero & has).sum()) for has in present.values())
            ok = ok & ~zero
        if categories is None:
            ids: np.ndarray | int = 0
        elif isinstance(categories, np.ndarray):  # integer codes (VICS): map each distinct one
            codes = np.unique(categories)
            lookup = np.zeros(int(codes.max()) + 1, dtype=np.uint16)
            lookup[codes] = self.store.category_ids([str(c) for c in codes.tolist()])
            ids = lookup[categories]
        else:
            ids = self.store.category_ids(categories)
        kept = np.zeros(len(ok), dtype=bool)
        for algorithm, has in present.items():
            take = ok & has
            column = keys[algorithm][take]
            trivial = (column == EMPTY_KEYS[algorithm]) | is_zero(column)
            self.dropped_empty += int(trivial.sum())
            rows = np.flatnonzero(take)[~trivial]
            kept[rows] = True
            self.store.add(algorithm, column[~trivial], ids if isinstance(ids, int) else ids[rows])
        self.store.sizes.missing += int((kept & ~declared).sum())
        self.store.sizes.add(size_array[kept & declared])

    def add_keys(self, algorithm: str, keys: np.ndarray) -> None:
        """Add already-validated binary digests with no category and no size (md5sum fast path)."""
        self.records += len(keys)
        trivial = (keys == EMPTY_KEYS[algorithm]) | is_zero(keys)
        if trivial.any():
            self.dropped_empty += int(trivial.sum())
            keys = keys[~trivial]
        self.store.sizes.missing += len(keys)
        self.store.add(algorithm, keys, 0)


def _column_text(column: Sequence[Any], rows: int) -> tuple[np.ndarray, bytes]:
    """Per-row lengths (0 absent, -1 not a string) and the strings concatenated as ASCII."""
    try:
        text = "".join(column)  # every value a string: the common case, no per-item test
        lengths = np.fromiter(map(len, column), dtype=np.int64, count=rows)
    except TypeError:
        lengths = np.fromiter(
            (len(v) if v.__class__ is str else (0 if v is None else -1) for v in column),
            dtype=np.int64,
            count=rows,
        )
        text = "".join(v if v.__class__ is str else "" for v in column)
    # one byte per character: non-ASCII becomes '?', which then fails hex validation
    return lengths, text.encode("ascii", "replace") + b"\0" * 64


def _sizes(sizes: Sequence[int | None] | None, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(sizes as int64, declared mask); values that do not fit become -1 (slow path)."""
    if sizes is None:
        return np.full(rows, -1, dtype=np.int64), np.zeros(rows, dtype=bool)
    missing = sizes.count(None) if isinstance(sizes, (list, tuple)) else sum(s is None for s in sizes)
    if not missing and set(map(type, sizes)) == {int}:
        try:
            return np.array(sizes, dtype=np.int64), np.ones(rows, dtype=bool)
        except OverflowError:
            pass
    declared = np.fromiter((s is not None for s in sizes), dtype=bool, count=rows)
    values = np.fromiter(
        (s if s.__class__ is int and 0 <= s < 2**63 else -1 for s in sizes), dtype=np.int64, count=rows
    )
    return values, declared


def _digest(algorithm: str | None, text: str) -> tuple[str, bytes] | str:
    """Validate one hex digest: ``(algorithm, bytes)`` or the reason it is malformed."""
    label = ALGORITHM_LABELS.get(algorithm or "", "hash")
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = None
    # fromhex skips whitespace, so also require exactly two characters per byte.
    if digest is None or len(digest) * 2 != len(text):
        if not _HEXDIGITS.issuperset(text):
            return f"{label} {shorten(text)} is not hexadecimal"
        digest = b""  # odd length: report it as a length problem below
    if algorithm is None:
        algorithm = ALGORITHM_BY_HEX_LENGTH.get(len(text))
        if algorithm is None or not digest:
            return (
                f"hash {shorten(text)} has {len(text)} hex digits, "
                "expected 32 (MD5), 40 (SHA-1) or 64 (SHA-256)"
            )
    expected = ALGORITHM_HEX_LENGTHS[algorithm]
    if len(text) != expected:
        return f"{label} {shorten(text)} has {len(text)} hex digits, expected {expected}"
    return algorithm, digest
