"""A byte-stream guard in front of ijson: refuse pathological JSON before the parser sees it.

ijson keeps a dotted "prefix" per nesting level, so a nesting bomb (``[[[[...``) costs memory
quadratic in its depth (gigabytes for a 400 KB file), and one huge string token is built whole
and slowly. VICS needs a depth of about 8 and strings of a few KB, so the guard stops at a depth
of ``MAX_DEPTH`` or a string of ``MAX_STRING`` bytes. It scans each chunk with numpy (string
state from unescaped quotes, depth from brackets outside strings), carrying state across
chunks, at a few hundred MB/s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from triage.errors import HashSetError

MAX_DEPTH = 256
MAX_STRING = 1024 * 1024

_QUOTE, _BACKSLASH = 34, 92
_OPEN = (91, 123)  # [ {
_CLOSE = (93, 125)  # ] }


class JsonGuard:
    """Wraps a binary ``read``-able; raises ``HashSetError`` naming the byte offset."""

    def __init__(self, raw: Any, path: str) -> None:
        self.raw = raw
        self.path = path
        self.offset = 0  # bytes scanned before the current chunk
        self.depth = 0
        self.in_string = False
        self.string_start = 0  # absolute offset where the open string began
        self.backslashes = 0  # run of backslashes ending the previous chunk

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if data:
            self._scan(data)
            self.offset += len(data)
        return data

    def _scan(self, data: bytes) -> None:
        a = np.frombuffer(data, dtype=np.uint8)
        quotes = np.flatnonzero(a == _QUOTE)
        if len(quotes):
            quotes = quotes[~self._escaped(a, quotes)]
        brackets = np.flatnonzero(np.isin(a, (*_OPEN, *_CLOSE)))
        # string state just before each bracket: the number of (unescaped) quotes before it
        inside = (np.searchsorted(quotes, brackets) % 2 == 1) ^ self.in_string
        structural = brackets[~inside]
        if len(structural):
            steps = np.where(np.isin(a[structural], _OPEN), 1, -1)
            levels = self.depth + np.cumsum(steps)
            if int(levels.max()) > MAX_DEPTH:
                at = self.offset + int(structural[int(np.argmax(levels > MAX_DEPTH))])
                raise HashSetError(f"hash set {self.path}: JSON nested deeper than {MAX_DEPTH} levels at byte {at}")
            self.depth = int(levels[-1])
        self._strings(quotes, len(a))
        run = len(a) - 1 - int(np.flatnonzero(a != _BACKSLASH)[-1]) if (a != _BACKSLASH).any() else len(a) + self.backslashes
        self.backslashes = run

    def _escaped(self, a: np.ndarray, quotes: np.ndarray) -> np.ndarray:
        """A quote is escaped when an odd run of backslashes precedes it (inside a string)."""
        before = quotes - 1
        candidates = np.flatnonzero((before >= 0) & (a[np.maximum(before, 0)] == _BACKSLASH) | (before < 0))
        escaped = np.zeros(len(quotes), dtype=bool)
        for i in candidates.tolist():  # rare: only quotes right after a backslash
            q = int(quotes[i])
            j = q - 1
            while j >= 0 and a[j] == _BACKSLASH:
                j -= 1
            run = q - 1 - j + (self.backslashes if j < 0 else 0)
            escaped[i] = run % 2 == 1
        return escaped

    def _strings(self, quotes: np.ndarray, length: int) -> None:
        """Track open strings and refuse one longer than ``MAX_STRING``."""
        opening = self.in_string
        start = self.string_start
        bounds = quotes + self.offset
        if opening and len(bounds):
            if bounds[0] - start > MAX_STRING:
                self._too_long(start)
            bounds = bounds[1:]
            opening = False
        pairs = len(bounds) // 2
        if pairs and int((bounds[1 : 2 * pairs : 2] - bounds[0 : 2 * pairs : 2]).max()) > MAX_STRING:
            lengths = bounds[1 : 2 * pairs : 2] - bounds[0 : 2 * pairs : 2]
            self._too_long(int(bounds[0 : 2 * pairs : 2][int(np.argmax(lengths > MAX_STRING))]))
        if len(bounds) % 2:
            opening, start = True, int(bounds[-1])
        elif not len(bounds) and not self.in_string:
            opening = False
        self.in_string = opening
        self.string_start = start
        if opening and self.offset + length - start > MAX_STRING:
            self._too_long(start)

    def _too_long(self, start: int) -> None:
        raise HashSetError(f"hash set {self.path}: JSON string longer than {MAX_STRING} bytes at byte {start}")
