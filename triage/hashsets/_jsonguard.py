"""A vectorised JSON structure scanner: string state and bracket depth for every chunk of bytes.

Two uses. ``JsonGuard`` sits in front of ijson and refuses pathological JSON before the parser
sees it: ijson keeps a dotted "prefix" per nesting level, so a nesting bomb (``[[[[...``) costs
memory quadratic in its depth (gigabytes for a 400 KB file), and one huge string token is built
whole and slowly. The VICS fast path uses the same scanner to find exact item boundaries so it
can hand whole runs of items to a fast decoder. VICS needs a depth of about 8 and strings of a
few KB; the limits are far above that.

Per chunk: classify bytes with a lookup table, keep only quotes and brackets (~10% of a VICS
file), drop escaped quotes, then string state is the parity of quotes seen and depth is a
cumulative sum over brackets outside strings. State carries across chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from triage.errors import HashSetError

MAX_DEPTH = 256
MAX_STRING = 1024 * 1024

_QUOTE, _BACKSLASH = 34, 92
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[_QUOTE] = 1
_CLASS[[91, 123]] = 2  # [ {
_CLASS[[93, 125]] = 3  # ] }


class Scanner:
    """Feed consecutive chunks; each call returns the structural brackets of that chunk."""

    def __init__(self, path: str, max_string: int = MAX_STRING) -> None:
        self.path = path
        self.max_string = max_string
        self.offset = 0  # absolute offset of the next chunk
        self.depth = 0
        self.in_string = False
        self.string_start = 0  # absolute offset of the open string's quote
        self.backslashes = 0  # run of backslashes ending the previous chunk

    def scan(self, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions, byte values, depth after) of the brackets outside strings in ``data``."""
        a = np.frombuffer(data, dtype=np.uint8)
        pos = np.flatnonzero(_CLASS[a])
        kind = _CLASS[a[pos]]
        quote = kind == 1
        if quote.any():
            self._unescape(a, pos, quote)
        parity = (np.cumsum(quote) - quote) & 1  # quotes strictly before each position
        outside = (parity == 1) == self.in_string
        structural = ~quote & outside
        where = pos[structural]
        steps = np.where(kind[structural] == 2, 1, -1)
        depth = self.depth + np.cumsum(steps)
        if len(depth):
            if int(depth.max()) > MAX_DEPTH:
                at = self.offset + int(where[int(np.argmax(depth > MAX_DEPTH))])
                raise HashSetError(f"hash set {self.path}: JSON nested deeper than {MAX_DEPTH} levels at byte {at}")
            self.depth = int(depth[-1])
        self._strings(pos[quote], len(a))
        self._trailing_backslashes(a)
        self.offset += len(a)
        return where, a[where], depth

    def _unescape(self, a: np.ndarray, pos: np.ndarray, quote: np.ndarray) -> None:
        """Clear ``quote`` for quotes escaped by an odd run of backslashes (rare: a loop is fine)."""
        at = pos[quote]
        suspects = np.flatnonzero(a[np.maximum(at - 1, 0)] == _BACKSLASH)
        if len(at) and at[0] == 0 and self.backslashes:
            suspects = np.union1d(suspects, [0])
        rows = np.flatnonzero(quote)
        for i in suspects.tolist():
            q = int(at[i])
            j = q - 1
            while j >= 0 and a[j] == _BACKSLASH:
                j -= 1
            run = q - 1 - j + (self.backslashes if j < 0 else 0)
            if run % 2:
                quote[rows[i]] = False

    def _strings(self, quotes: np.ndarray, length: int) -> None:
        """Track the open string across chunks; refuse one longer than ``MAX_STRING``."""
        bounds = quotes.astype(np.int64) + self.offset
        if self.in_string:
            bounds = np.concatenate(([self.string_start], bounds))
        pairs = len(bounds) // 2
        if pairs:
            lengths = bounds[1 : 2 * pairs : 2] - bounds[0 : 2 * pairs : 2]
            if int(lengths.max()) > self.max_string:
                self._too_long(int(bounds[0 : 2 * pairs : 2][int(np.argmax(lengths > self.max_string))]))
        self.in_string = len(bounds) % 2 == 1
        if self.in_string:
            self.string_start = int(bounds[-1])
            if self.offset + length - self.string_start > self.max_string:
                self._too_long(self.string_start)

    def _trailing_backslashes(self, a: np.ndarray) -> None:
        if not len(a) or a[-1] != _BACKSLASH:
            self.backslashes = 0
            return
        other = np.flatnonzero(a != _BACKSLASH)
        self.backslashes = len(a) - 1 - int(other[-1]) if len(other) else self.backslashes + len(a)

    def _too_long(self, start: int) -> None:
        raise HashSetError(f"hash set {self.path}: JSON string longer than {self.max_string} bytes at byte {start}")


class JsonGuard:
    """A binary ``read``-able for ijson that scans (and may refuse) everything it passes on."""

    def __init__(self, raw: Any, path: str) -> None:
        self.raw = raw
        self.scanner = Scanner(path)

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if data:
            self.scanner.scan(data)
        return data
