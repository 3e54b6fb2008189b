"""Sorted digest tables: the one lookup structure behind in-memory sets and compiled indexes.

A table is a sorted array of fixed-width binary digests (numpy ``S{w}``, plain ``memcmp`` order),
a parallel array of category ids (absent when every row has the same id), and a bucket table:
``buckets[b]`` is the first row whose top ``bits`` bits are >= ``b``. A lookup therefore binary-
searches ~16 rows, and a batch of lookups is a handful of vectorised steps. The arrays
come from RAM for small sets or straight from an mmap'd ``.tdb`` file for large ones.

A digest may appear on several rows when sources gave it different categories (conflicts are
kept, never silently resolved); rows are unique per (digest, category).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BUCKET_BITS = 8
MAX_BUCKET_BITS = 24
ROWS_PER_BUCKET = 16  # ~5 search steps; the table costs ~1/4 byte per row


def bucket_bits(rows: int) -> int:
    """Bucket-table size for about ``rows`` rows (an estimate is fine: it only tunes speed)."""
    bits = max(rows // ROWS_PER_BUCKET, 1).bit_length() - 1
    return min(max(bits, MIN_BUCKET_BITS), MAX_BUCKET_BITS)


def top_bits(keys: np.ndarray, bits: int) -> np.ndarray:
    """The bucket number of each key: its first ``bits`` bits (keys are at least 4 bytes)."""
    width = keys.dtype.itemsize
    first = np.ascontiguousarray(keys.view(np.uint8).reshape(-1, width)[:, :4])
    return (first.view(">u4").reshape(-1).astype(np.uint32)) >> np.uint32(32 - bits)


def build_buckets(keys: np.ndarray, bits: int) -> np.ndarray:
    counts = np.bincount(top_bits(keys, bits), minlength=1 << bits)
    return offsets_from_counts(counts, len(keys))


def offsets_from_counts(counts: np.ndarray, rows: int) -> np.ndarray:
    dtype = np.uint32 if rows < 2**32 else np.uint64
    offsets = np.zeros(len(counts) + 1, dtype=dtype)
    np.cumsum(counts, out=offsets[1:])
    return offsets


@dataclass
class DigestTable:
    """One algorithm's digests of one hash set (see module docstring)."""

    keys: np.ndarray  # S{w}, sorted
    cats: np.ndarray | None  # uint8/uint16 category ids, or None: every row has ``constant``
    constant: int
    buckets: np.ndarray  # uint32/uint64, 2**bits + 1 offsets
    bits: int
    unique: int  # distinct digests (rows minus the extra rows of conflicting digests)

    def __post_init__(self) -> None:
        self._raw = memoryview(self.keys.view(np.uint8)) if len(self.keys) else memoryview(b"")

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_raw", None)  # a view, rebuilt on unpickling
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def width(self) -> int:
        return self.keys.dtype.itemsize

    def __len__(self) -> int:
        return len(self.keys)

    def category_id(self, row: int) -> int:
        return self.constant if self.cats is None else int(self.cats[row])

    def find(self, digest: bytes) -> list[int]:
        """Category ids of ``digest`` (one per conflicting category), [] when absent."""
        width = self.width
        if len(digest) != width or not len(self.keys):
            return []
        bucket = int.from_bytes(digest[:4], "big") >> (32 - self.bits)
        lo, hi = int(self.buckets[bucket]), int(self.buckets[bucket + 1])
        if lo == hi:
            return []
        row = lo + int(np.searchsorted(self.keys[lo:hi], digest))
        found = []
        raw = self._raw
        while row < hi and raw[row * width : (row + 1) * width] == digest:
            found.append(self.category_id(row))
            row += 1
        return found

    def find_many(self, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``find``: for ``S{w}`` queries, (first row, number of rows) per query.

        A lower-bound binary search inside each query's bucket, as a fixed number of
        branch-free steps over whole arrays (buckets hold ~16 rows, so ~5-6 steps).
        """
        n = len(self.keys)
        if not n or not len(digests):
            zeros = np.zeros(len(digests), dtype=np.int64)
            return zeros, zeros.copy()
        buckets = top_bits(digests, self.bits)
        lo = self.buckets[buckets].astype(np.int64)
        hi = self.buckets[buckets + 1].astype(np.int64)
        last = n - 1
        for _ in range(int((hi - lo).max()).bit_length()):
            mid = (lo + hi) >> 1
            less = self.keys[np.minimum(mid, last)] < digests
            active = lo < hi
            lo = np.where(active & less, mid + 1, lo)
            hi = np.where(active & ~less, mid, hi)
        start = lo
        count = np.zeros(len(digests), dtype=np.int64)
        probe = np.flatnonzero(start < n)
        step = 0
        while len(probe):  # rows equal to the query: 1, or more for a conflict
            rows = start[probe] + step
            inside = rows < n
            probe, rows = probe[inside], rows[inside]
            equal = self.keys[rows] == digests[probe]
            probe = probe[equal]
            count[probe] += 1
            step += 1
        return start, count


@dataclass
class SortedBlock:
    """Sorted, de-duplicated rows of one algorithm, plus what de-duplication found."""

    keys: np.ndarray
    cats: np.ndarray  # uint16
    unique: int
    conflicts: int  # digests carrying two or more categories
    conflict_rows: np.ndarray  # row numbers of the first row of each conflicting digest


def sort_unique(keys: np.ndarray, cats: np.ndarray) -> SortedBlock:
    """Sort rows by (digest, category id) in ``memcmp`` order and apply the merge rules.

    Exact duplicates collapse; a digest with a category drops its uncategorised rows (id 0);
    a digest with several categories keeps one row per category and counts as one conflict.
    """
    keys, cats = _sort(keys, cats)
    same = keys[1:] == keys[:-1] if len(keys) > 1 else np.zeros(0, dtype=bool)
    if same.any():
        keep = np.ones(len(keys), dtype=bool)
        keep[1:] = ~(same & (cats[1:] == cats[:-1]))  # exact duplicates
        keys, cats = keys[keep], cats[keep]
        same = keys[1:] == keys[:-1]
        keep = np.ones(len(keys), dtype=bool)
        keep[:-1] = ~(same & (cats[:-1] == 0))  # id 0 sorts first: dropped when a category follows
        if not keep.all():
            keys, cats = keys[keep], cats[keep]
            same = keys[1:] == keys[:-1]
        first = np.flatnonzero(same & ~np.concatenate(([False], same[:-1])))
        return SortedBlock(keys, cats, len(keys) - int(same.sum()), len(first), first)
    return SortedBlock(keys, cats, len(keys), 0, np.zeros(0, dtype=np.int64))


def _word(keys: np.ndarray, start: int, size: int) -> np.ndarray:
    """Bytes ``start:start+size`` of every key as a native unsigned integer (big-endian read)."""
    u8 = keys.view(np.uint8).reshape(-1, keys.dtype.itemsize)
    dtype = np.uint64 if size == 8 else np.uint32
    return np.ascontiguousarray(u8[:, start : start + size]).view(dtype).reshape(-1).byteswap()


def _sort(keys: np.ndarray, cats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort on the first 8 bytes with the row number packed into the low bits (numpy's SIMD
    sort, no argsort), then fix the rare rows whose truncated prefix ties, by every byte."""
    n = len(keys)
    if n < 2:
        return keys, cats
    width = keys.dtype.itemsize
    bits = np.uint64(n.bit_length())
    head = _word(keys, 0, 8)
    packed = np.sort((head >> bits << bits) | np.arange(n, dtype=np.uint64))
    order = (packed & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.intp)
    prefix = packed >> bits
    tied = prefix[1:] == prefix[:-1]
    if tied.any():
        involved = np.zeros(n, dtype=bool)
        involved[1:] |= tied
        involved[:-1] |= tied
        rows = order[involved]
        sub = keys[rows]
        words = [_word(sub, start, 8) for start in range(0, width - width % 8, 8)]
        words += [_word(sub, start, 4) for start in range(width - width % 8, width, 4)]
        order[involved] = rows[np.lexsort([cats[rows], *reversed(words)])]
    return keys[order], cats[order]
