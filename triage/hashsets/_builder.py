"""Shared record handling for every hash-set parser.

Parsers only split their format into records; this module owns the rules that must be identical
across formats: hex validation, dropping empty-input / all-zero digests, de-duplication, category
conflict resolution and the strict-vs-lenient treatment of malformed records.
"""

from __future__ import annotations

import string
from decimal import Decimal
from collections.abc import Iterable

from triage.categories import most_severe
from triage.errors import HashSetError
from triage.hashsets.model import ALGORITHM_HEX_LENGTHS, EMPTY_DIGESTS, HashSet

ALGORITHM_LABELS = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}
ALGORITHM_BY_HEX_LENGTH = {n: alg for alg, n in ALGORITHM_HEX_LENGTHS.items()}
_EMPTY = {alg: bytes.fromhex(hx) for alg, hx in EMPTY_DIGESTS.items()}
_HEXDIGITS = frozenset(string.hexdigits)

Where = int | str  # a line number, or a JSON location such as "value[12]"


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
        if not (value.isascii() and value.isdigit()):
            raise ValueError(value)
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(value)
    try:
        size = int(value)  # JSON numbers arrive as int or Decimal
    except (ArithmeticError, ValueError):
        raise ValueError(value) from None
    if size != value or size < 0:
        raise ValueError(value)
    return size


class HashSetBuilder:
    """Accumulates validated digests into the ``HashSet.table`` layout and keeps the counters."""

    def __init__(self, path: str, *, lenient: bool) -> None:
        self.path = path
        self.lenient = lenient
        self.table: dict[str, dict[bytes, str | None]] = {alg: {} for alg in ALGORITHM_HEX_LENGTHS}
        self.skipped = 0
        self.dropped_empty = 0
        self.conflicts = 0
        self._categories: dict[str, str] = {}  # interned labels: millions of entries share a few

    def fail(self, where: Where, reason: str) -> HashSetError:
        """The error for a problem no lenient mode can skip (e.g. a bad header)."""
        return HashSetError(f"{self.path}:{where}: {reason}")

    def malformed(self, where: Where, reason: str) -> None:
        """Reject one record: raise in strict mode, count it under ``lenient``."""
        if not self.lenient:
            raise self.fail(where, reason)
        self.skipped += 1

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
        if size == 0:
            self.dropped_empty += len(digests)
            return
        if category is not None:
            category = self._categories.setdefault(category, category)
        for algorithm, digest in digests:
            if digest == _EMPTY[algorithm] or not any(digest):
                self.dropped_empty += 1
                continue
            self._merge(self.table[algorithm], digest, category)

    def _merge(self, table: dict[bytes, str | None], digest: bytes, category: str | None) -> None:
        if digest not in table:
            table[digest] = category
            return
        old = table[digest]
        if category is None or old == category:
            return
        if old is None:
            table[digest] = category
            return
        self.conflicts += 1
        table[digest] = most_severe((old, category))

    def build(self, *, name: str, kind: str, format: str, sha256: str) -> HashSet:
        return HashSet(
            name=name,
            path=self.path,
            kind=kind,
            format=format,
            sha256=sha256,
            table={alg: t for alg, t in self.table.items() if t},
            skipped=self.skipped,
            dropped_empty=self.dropped_empty,
            conflicts=self.conflicts,
        )


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
