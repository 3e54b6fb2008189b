"""Bounded-memory accumulation of (algorithm, digest, category) rows: an external bucket sort.

Rows arrive in any order. They are buffered up to a memory budget; a full buffer loses its
repeats when a sample shows many (``_dedupe``: duplicates never grow the runs), is split by the
digest's first byte into 256 partitions and appended to one run file per algorithm. Digests are
uniformly distributed, so at the end each partition is about 1/256 of the data: it is read back
from every run, sorted and de-duplicated in memory, and emitted in order. That is a single
linear pass over the disk with no k-way merge. A skewed partition (hostile or synthetic input)
that is still too big is partitioned again on the next byte, so memory stays bounded whatever
the input. Sets that never fill the buffer are sorted in memory and never touch the disk.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from array import array
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triage.errors import HashSetError
from triage.hashsets.table import SortedBlock, sort_unique

DEFAULT_BUDGET = 64 * 1024 * 1024  # bytes of buffered rows before a spill (two may exist at once)
MAX_CATEGORIES = 65535
MAX_SIZES = 16_000_000  # past this many distinct sizes a size filter would filter nothing
_SLOW_FLUSH = 65536  # rows added one by one are moved into numpy arrays in batches of this
_GATHER = 1 << 20


def memory_budget() -> int:
    """``TRIAGE_HASHSET_MEMORY`` (MiB) overrides the default buffer size."""
    value = os.environ.get("TRIAGE_HASHSET_MEMORY", "")
    return int(value) * 1024 * 1024 if value.isdigit() and int(value) > 0 else DEFAULT_BUDGET


class SizeSet:
    """Distinct declared file sizes, for a later "could this size be in the set?" filter.

    The filter is only sound when every record declared a size, so a record without one (or
    too many distinct sizes) turns it off.
    """

    def __init__(self) -> None:
        self.values = np.zeros(0, dtype=np.uint64)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self.missing = 0
        self.overflow = False

    def add(self, sizes: np.ndarray) -> None:
        if self.overflow or not len(sizes):
            return
        self._pending.append(sizes.astype(np.uint64))
        self._pending_rows += len(sizes)
        if self._pending_rows > max(2 * len(self.values), 1 << 22):
            self._compact()

    def _compact(self) -> None:
        self.values = _unique(np.concatenate([self.values, *self._pending]))
        self._pending, self._pending_rows = [], 0
        if len(self.values) > MAX_SIZES:
            self.overflow, self.values = True, np.zeros(0, dtype=np.uint64)

    def result(self) -> np.ndarray | None:
        """Sorted distinct sizes, or None when the filter cannot be used."""
        if self._pending:
            self._compact()
        if self.missing or self.overflow or not len(self.values):
            return None
        return self.values


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: faster than numpy's hash-based unique here)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


_SAMPLE = 4096
_DEDUPE_SLICE = 1 << 18


def _dedupe(keys: np.ndarray, cats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows about to be spilled, with repeats dropped when a sample shows many.

    Why: a set of 30M identical lines must not cost 30M rows of runs (and, before, 16 levels of
    re-partitioning on the next byte). A sample of 4096 rows decides (random digests: no
    repeat, nothing more is done); when 1 in 8 repeats, ``sort_unique`` runs on slices of 256K
    rows, so the extra memory is one slice's. The merge rules are the final ones, applied early.
    """
    n = len(keys)
    if n < 2:
        return keys, cats
    sample = keys[:: max(1, n // _SAMPLE)]
    if len(np.unique(sample)) > len(sample) - len(sample) // 8:
        return keys, cats
    out_keys, out_cats = [], []
    for start in range(0, n, _DEDUPE_SLICE):
        block = sort_unique(keys[start : start + _DEDUPE_SLICE], cats[start : start + _DEDUPE_SLICE])
        out_keys.append(block.keys)
        out_cats.append(block.cats)
    keys, cats = np.concatenate(out_keys), np.concatenate(out_cats)
    if len(out_keys) > 1 and len(keys) <= _DEDUPE_SLICE:  # once more over the slices' union
        block = sort_unique(keys, cats)
        keys, cats = block.keys, block.cats
    return keys, cats


class _Runs:
    """Partitioned run files of one algorithm: every spill appends 256 partitions."""

    def __init__(self, folder: Path, width: int, depth: int = 0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.width = width
        self.depth = depth  # which key byte partitions the rows
        self.keys_path = folder / "keys"
        self.cats_path = folder / "cats"
        self.spills: list[tuple[int, np.ndarray]] = []  # (first row of the spill, partition offsets)
        self.rows = 0

    def spill(self, keys: np.ndarray, cats: np.ndarray) -> None:
        part = keys.view(np.uint8).reshape(-1, self.width)[:, self.depth]
        order = np.argsort(part, kind="stable")
        counts = np.bincount(part, minlength=256)
        offsets = np.zeros(257, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        with open(self.keys_path, "ab") as fk, open(self.cats_path, "ab") as fc:
            for start in range(0, len(order), _GATHER):  # gathered in slices: no second full copy
                rows = order[start : start + _GATHER]
                keys[rows].tofile(fk)
                cats[rows].tofile(fc)
        self.spills.append((self.rows, offsets))
        self.rows += len(keys)

    def pieces(self, partition: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The rows of one partition, one spill at a time (each at most one buffer's worth)."""
        dtype = np.dtype(f"S{self.width}")
        with open(self.keys_path, "rb") as fk, open(self.cats_path, "rb") as fc:
            for first, offsets in self.spills:
                start, count = first + int(offsets[partition]), int(offsets[partition + 1] - offsets[partition])
                if count:
                    fk.seek(start * self.width)
                    keys = np.fromfile(fk, dtype=dtype, count=count)
                    fc.seek(start * 2)
                    cats = np.fromfile(fc, dtype=np.uint16, count=count)
                    yield keys, cats

    def partition_rows(self, partition: int) -> int:
        return sum(int(o[partition + 1] - o[partition]) for _, o in self.spills)


@dataclass
class Finished:
    """What the store holds once input ends: sorted blocks per algorithm, sizes, categories."""

    store: EntryStore

    @property
    def algorithms(self) -> list[str]:
        return self.store.algorithms

    def rows_added(self, algorithm: str) -> int:
        return self.store.rows_added[algorithm]

    def category_ids(self, algorithm: str) -> set[int]:
        return self.store.ids_used[algorithm]

    def blocks(self, algorithm: str) -> Iterator[SortedBlock]:
        """Sorted, de-duplicated blocks in ascending digest order; groups never span blocks.

        The next block is sorted on the spill thread while the caller writes this one.
        """
        source = self.store._blocks(algorithm)
        pool = self.store._executor()
        ahead = pool.submit(next, source, None)
        while (block := ahead.result()) is not None:
            ahead = pool.submit(next, source, None)
            yield block


class EntryStore:
    """Accumulates rows for one hash set or index (see the module docstring)."""

    def __init__(self, *, budget: int | None = None, tmpdir: str | os.PathLike[str] | None = None) -> None:
        self.budget = budget or memory_budget()
        self._tmp_parent = tmpdir
        self._tmp: Path | None = None
        self.categories: list[str | None] = [None]
        self._category_ids: dict[str | None, int] = {None: 0}
        self._buffers: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._slow: dict[str, tuple[bytearray, array]] = {}
        self._buffered = 0
        self._runs: dict[str, _Runs] = {}
        self.rows_added: dict[str, int] = {}
        self.ids_used: dict[str, set[int]] = {}
        self.sizes = SizeSet()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[Any] | None = None

    # -- input ------------------------------------------------------------------------------

    def category_id(self, code: str | None) -> int:
        found = self._category_ids.get(code)
        if found is not None:
            return found
        if len(self.categories) > MAX_CATEGORIES:
            raise HashSetError(f"more than {MAX_CATEGORIES} distinct categories: is the category column right?")
        self._category_ids[code] = len(self.categories)
        self.categories.append(code)
        return len(self.categories) - 1

    def category_ids(self, codes: list[str | None]) -> np.ndarray:
        """Ids for a column of category codes (new codes are registered)."""
        distinct = dict.fromkeys(codes)  # first-appearance order: ids do not depend on hashing
        for code in distinct:
            if code not in self._category_ids:
                self.category_id(code)
        if len(distinct) == 1:
            return np.full(len(codes), self._category_ids[codes[0]], dtype=np.uint16)
        return np.fromiter(map(self._category_ids.__getitem__, codes), dtype=np.uint16, count=len(codes))

    def add(self, algorithm: str, keys: np.ndarray, cats: np.ndarray | int) -> None:
        """Add rows: ``S{w}`` keys and their category ids (an array, or one id for all)."""
        if not len(keys):
            return
        if isinstance(cats, (int, np.integer)):
            self.ids_used.setdefault(algorithm, set()).add(int(cats))
            cats = np.full(len(keys), cats, dtype=np.uint16)
        else:
            cats = cats.astype(np.uint16, copy=False)
            used = np.flatnonzero(np.bincount(cats)).tolist()
            self.ids_used.setdefault(algorithm, set()).update(used)
        self._buffers.setdefault(algorithm, []).append((keys, cats))
        self.rows_added[algorithm] = self.rows_added.get(algorithm, 0) + len(keys)
        self._buffered += len(keys) * (keys.dtype.itemsize + 2)
        if self._buffered >= self.budget:
            self._spill()

    def add_one(self, algorithm: str, digest: bytes, category_id: int) -> None:
        """Add one row (the per-record parsing path); batched into numpy internally."""
        slot = self._slow.get(algorithm)
        if slot is None:
            slot = self._slow[algorithm] = (bytearray(), array("H"))
        slot[0].extend(digest)
        slot[1].append(category_id)
        if len(slot[1]) >= _SLOW_FLUSH:
            self._flush_slow(algorithm)

    def _flush_slow(self, algorithm: str) -> None:
        data, ids = self._slow.pop(algorithm)
        if ids:
            width = len(data) // len(ids)
            keys = np.frombuffer(bytes(data), dtype=f"S{width}")
            self.add(algorithm, keys, np.frombuffer(ids.tobytes(), dtype=np.uint16))

    # -- spilling ---------------------------------------------------------------------------

    @property
    def algorithms(self) -> list[str]:
        return sorted(alg for alg, rows in self.rows_added.items() if rows)

    @property
    def spilled(self) -> bool:
        return bool(self._runs)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of rows held in memory (after ``finish``: all of them, when nothing spilled)."""
        return sum(k.nbytes + c.nbytes for chunks in self._buffers.values() for k, c in chunks)

    def tmp_folder(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="triage-hashset-", dir=self._tmp_parent))
        return self._tmp

    def _spill(self) -> None:
        """Hand the full buffer to the spill thread; parsing goes on filling a new one.

        numpy's sort, gather and file writes release the GIL, so on two cores the spill costs
        the parser little. At most one spill runs at a time, which bounds memory to about two
        buffers.
        """
        self._wait()
        work = []
        for algorithm, chunks in self._buffers.items():
            if not chunks:
                continue
            keys = np.concatenate([k for k, _ in chunks])
            cats = np.concatenate([c for _, c in chunks])
            chunks.clear()
            runs = self._runs.get(algorithm)
            if runs is None:
                runs = self._runs[algorithm] = _Runs(self.tmp_folder() / algorithm, keys.dtype.itemsize)
            work.append((runs, keys, cats))
        self._buffered = 0
        self._pending = self._executor().submit(lambda: [r.spill(*_dedupe(k, c)) for r, k, c in work])

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-spill")
        return self._pool

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            try:
                pending.result()
            except OSError as exc:
                raise HashSetError(f"cannot write temporary run files in {self.tmp_folder()}: {exc.strerror or exc}") from None

    def finish(self) -> Finished:
        for algorithm in list(self._slow):
            self._flush_slow(algorithm)
        if self._runs:
            self._spill()
        self._wait()
        return Finished(self)

    def _blocks(self, algorithm: str) -> Iterator[SortedBlock]:
        runs = self._runs.get(algorithm)
        if runs is None:
            chunks = self._buffers.get(algorithm, [])
            if chunks:
                keys = np.concatenate([k for k, _ in chunks])
                cats = np.concatenate([c for _, c in chunks])
                yield sort_unique(*_dedupe(keys, cats))
            return
        yield from self._partitioned(runs)

    def _partitioned(self, runs: _Runs) -> Iterator[SortedBlock]:
        row_bytes = runs.width + 2
        for partition in range(256):
            rows = runs.partition_rows(partition)
            if not rows:
                continue
            if rows * row_bytes <= self.budget:
                pieces = list(runs.pieces(partition))
                yield sort_unique(*_dedupe(np.concatenate([k for k, _ in pieces]),
                                           np.concatenate([c for _, c in pieces])))
            elif runs.depth + 1 < runs.width:
                sub = _Runs(runs.folder / f"p{partition}", runs.width, runs.depth + 1)
                for keys, cats in runs.pieces(partition):
                    sub.spill(*_dedupe(keys, cats))
                del keys, cats  # not held by this frame while the next level runs
                yield from self._partitioned(sub)
                shutil.rmtree(sub.folder, ignore_errors=True)
            else:  # every key in this partition is the same digest: only its categories vary
                ids = _unique(np.concatenate([_unique(c) for _, c in runs.pieces(partition)]))
                key = next(runs.pieces(partition))[0][:1]
                yield sort_unique(np.repeat(key, len(ids)), ids.astype(np.uint16))

    def close(self) -> None:
        """Remove the run files (the caller is done with ``finish()``'s blocks)."""
        if self._pending is not None:
            self._pending.exception()  # let a running spill end before its files go
            self._pending = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._buffers.clear()
        self._runs.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
