"""Build a block set: cut reference files into blocks, keep the distinct ones, write a ``.tbs``.

Each reference file is cut at offsets 0, B, 2B, ... (file systems store file data
block-aligned, so these are the device blocks that hold it). A block is *distinct* -- kept --
unless it is

- ``constant``: one byte value repeated (all zeros, all 0xFF, ...);
- ``pattern``: a short pattern repeated: the block equals its first k bytes repeated, k <= 64;
- ``low-entropy``: fewer than ``LOW_ENTROPY_VALUES`` (16) distinct byte values in the block;
- ``partial``: the last, shorter-than-B piece of a file (a device block holding it also holds
  whatever follows: its digest would not match);
- ``shared``: the same block occurs in more than ``max_files`` distinct reference files;
- ``excluded``: the block occurs in an ``--exclude`` file (known innocent data).

Files with the same MD5 as an earlier reference file are the same material: their blocks are
not added twice (counted as ``duplicate_files``).

Bounded memory: every kept block becomes a row (16-byte digest + 4-byte global block number)
in ``triage.hashsets.store.EntryStore``, the external bucket sort ``.tdb`` imports use (128 MiB
buffers, see ``sort_budget``, spilled to partitioned run files next to the output), then the sorted stream is grouped
by digest, filtered and written. Memory is the buffers plus the file table (a few dozen bytes
per reference file), whatever the number of blocks.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from triage.blocks.digest import DIGEST_BYTES, check_digest, hash_blocks
from triage.blocks.tbs import (
    MAX_BLOCK,
    MAX_GLOBAL_BLOCKS,
    MIN_BLOCK,
    BlockSetError,
    FileTable,
    TbsWriter,
)
from triage.hashsets.store import EntryStore, memory_budget

DEFAULT_BLOCK_SIZE = 4096
DEFAULT_MAX_FILES = 8
_EMIT_ROWS = 1 << 20  # rows grouped and written at a time
MAX_PERIOD = 64
LOW_ENTROPY_VALUES = 16  # fewer distinct byte values than this: low-entropy
_PREFIX = 96  # bytes screened per block: a block failing a rule has <= 64 values in them
EXCLUDED_G = 0xFFFFFFFF
REASONS = ("constant", "pattern", "low-entropy", "partial", "shared", "excluded")
_KEEP, _CONSTANT, _PATTERN, _LOW = 0, 1, 2, 3
_REASON_NAME = {_CONSTANT: "constant", _PATTERN: "pattern", _LOW: "low-entropy"}


def sort_budget() -> int:
    """Sort buffer: ``TRIAGE_HASHSET_MEMORY`` (MiB) when set, else 128 MiB.

    Why larger than a hash-set import's 64 MiB: the external sort partitions rows by their
    first byte, and a partition larger than the buffer is partitioned again, which costs one
    small read per spill and partition. With 128 MiB buffers a partition holds up to
    ~1.5 * 10**9 rows' share (22 bytes each), so a billion-block set sorts in one pass.
    """
    return memory_budget() if os.environ.get("TRIAGE_HASHSET_MEMORY", "").isdigit() else 128 << 20


def check_block_size(block_size: int) -> None:
    if not MIN_BLOCK <= block_size <= MAX_BLOCK or block_size % 512:
        raise BlockSetError(f"--block-size {block_size}: must be a multiple of 512 between "
                            f"{MIN_BLOCK} and {MAX_BLOCK}")


# -- which blocks are distinct --------------------------------------------------------------


def classify(blocks: np.ndarray) -> np.ndarray:
    """Reason code per block of ``blocks`` ((n, B) uint8): 0 keep, else constant/pattern/low.

    A cheap screen first: a block failing any rule has at most 64 distinct byte values, so
    also in its first 96 bytes; high-entropy data (pictures, video, random) has ~80 there and
    skips the exact test (~2 us per block). Candidates get the exact test in Python.
    """
    n = blocks.shape[0]
    reasons = np.zeros(n, dtype=np.uint8)
    if not n:
        return reasons
    prefix = np.sort(blocks[:, :_PREFIX], axis=1)
    distinct = (prefix[:, 1:] != prefix[:, :-1]).sum(axis=1) + 1
    for row in np.flatnonzero(distinct <= MAX_PERIOD).tolist():
        reasons[row] = _classify_one(blocks[row])
    return reasons


def _classify_one(block: np.ndarray) -> int:
    data = block.tobytes()
    if data[1:] == data[:-1]:
        return _CONSTANT
    for k in range(2, MAX_PERIOD + 1):
        if data[k:] == data[:-k]:
            return _PATTERN
    if np.count_nonzero(np.bincount(block, minlength=256)) < LOW_ENTROPY_VALUES:
        return _LOW
    return _KEEP


# -- input files ----------------------------------------------------------------------------


def reference_files(paths: Iterable[Path], skip: Path | None = None) -> list[tuple[Path, str]]:
    """(file, name to record) for every regular file under ``paths``, in a stable order.

    The name is the path below the given folder, prefixed by the folder's own name. A PATH
    given on the command line is followed if it is a symbolic link; links inside folders are
    not (a reference folder is hashed as it is, not what it points to). The list is made
    before anything is written, and ``skip`` (the output) is left out, so a set written into
    a reference folder never reads itself or its temporary files.
    """
    found: list[tuple[Path, str]] = []
    skip = skip.resolve() if skip is not None else None
    for root in paths:
        root = Path(root)
        if root.is_file():
            if root.resolve() != skip:
                found.append((root, root.name))
            continue
        if not root.is_dir():
            raise BlockSetError(f"{root}: no such file or folder")
        base = root.resolve().name or str(root)
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                file = Path(folder) / name
                if file.is_file() and not file.is_symlink() and file.resolve() != skip:
                    found.append((file, f"{base}/{file.relative_to(root).as_posix()}"))
    return found


@dataclass
class _Hashed:
    digests: np.ndarray  # (n, 16) kept block digests
    index: np.ndarray  # their block numbers in the file
    blocks: int  # full blocks in the file
    size: int
    md5: bytes
    sha1: bytes
    dropped: Counter[str]


def _read_into(stream: Any, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


_CHUNK = 8 << 20


def read_buffers(block_size: int) -> list[bytearray]:
    """Two read buffers for ``hash_file`` (allocated once per build: fresh 8 MiB buffers per
    file cost more than hashing a small file)."""
    chunk = block_size * max(1, _CHUNK // block_size)
    return [bytearray(chunk), bytearray(chunk)]


def hash_file(file: Path, block_size: int, digest: str, pool: ThreadPoolExecutor | None = None,
              *, whole: bool = True, filter_weak: bool = True,
              buffers: list[bytearray] | None = None) -> _Hashed:
    """Block digests of one file (weak blocks filtered), with its MD5 and SHA-1 (``whole``).

    MD5 and SHA-1 run on ``pool`` threads beside the block hashing (hashlib frees the GIL).
    """
    buffers = buffers or read_buffers(block_size)
    md5 = hashlib.md5(usedforsecurity=False)
    sha1 = hashlib.sha1(usedforsecurity=False)
    digests: list[np.ndarray] = []
    indexes: list[np.ndarray] = []
    dropped: Counter[str] = Counter()
    size = blocks = 0
    pending: list[Any] = []
    with open(file, "rb", buffering=0) as stream:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        turn = 0
        while True:
            buf = buffers[turn]  # not in use: its hashing was waited for one turn ago
            turn ^= 1
            view = memoryview(buf)
            got = _read_into(stream, view)  # reads while the other buffer is being hashed
            for future in pending:  # MD5/SHA-1 updates must stay in order
                future.result()
            pending = []
            if not got:
                break
            if whole:
                data = view[:got]
                if pool is not None:
                    pending = [pool.submit(md5.update, data), pool.submit(sha1.update, data)]
                else:
                    md5.update(data)
                    sha1.update(data)
            full = got // block_size
            if full:
                found = hash_blocks(view[: full * block_size], block_size, digest)
                index = np.arange(blocks, blocks + full, dtype=np.int64)
                if filter_weak:
                    arr = np.frombuffer(buf, dtype=np.uint8, count=full * block_size)
                    reasons = classify(arr.reshape(full, block_size))
                    if reasons.any():
                        for code, n in zip(*np.unique(reasons[reasons > 0], return_counts=True)):
                            dropped[_REASON_NAME[int(code)]] += int(n)
                        keep = reasons == 0
                        found, index = found[keep], index[keep]
                digests.append(found)
                indexes.append(index)
            blocks += full
            size += got
            if got < len(view):
                if got % block_size:
                    dropped["partial"] += 1
                break
        for future in pending:
            future.result()
    return _Hashed(
        digests=np.concatenate(digests) if digests else np.zeros((0, DIGEST_BYTES), np.uint8),
        index=np.concatenate(indexes) if indexes else np.zeros(0, np.int64),
        blocks=blocks, size=size, md5=md5.digest() if whole else b"",
        sha1=sha1.digest() if whole else b"", dropped=dropped)


# -- the builder ----------------------------------------------------------------------------


CategoryOf = Callable[[bytes, bytes], "str | None"]


def categories_from(hashset_path: Path) -> CategoryOf:
    """A file's category from a hash set, by its MD5 then SHA-1 (the most severe if several)."""
    from triage.matching.categories import most_severe
    from triage.errors import TriageError
    from triage.hashsets import load_hashset

    try:
        hs = load_hashset(hashset_path)
    except TriageError:
        raise
    except OSError as exc:
        raise BlockSetError(f"--categories-from {hashset_path}: {exc.strerror or exc}") from None

    def category(md5: bytes, sha1: bytes) -> str | None:
        found: list[str | None] = []
        if md5:
            found = hs.lookup("md5", md5)
        if not found and sha1:
            found = hs.lookup("sha1", sha1)
        named = [c for c in found if c is not None]
        if named:
            return most_severe(named)
        return None

    return category


@dataclass
class Builder:
    """Accumulates reference files; ``write`` sorts, filters and writes the set."""

    block_size: int = DEFAULT_BLOCK_SIZE
    digest: str = "xxh3-128"
    max_files: int = DEFAULT_MAX_FILES
    tmpdir: Path | None = None
    budget: int | None = None
    dropped: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        check_block_size(self.block_size)
        try:
            check_digest(self.digest)
        except ValueError as exc:
            raise BlockSetError(str(exc)) from None
        if self.max_files < 1:
            raise BlockSetError("--max-files must be at least 1")
        self.store = EntryStore(budget=self.budget or sort_budget(), tmpdir=self.tmpdir)
        self.starts: list[int] = [0]
        self.md5: list[bytes] = []
        self.sha1: list[bytes] = []
        self.sizes: list[int] = []
        self.cat_ids: list[int] = []
        self.names: list[str] = []
        self.categories: list[str | None] = [None]
        self._cat_index: dict[str | None, int] = {None: 0}
        self._seen_md5: set[bytes] = set()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="triage-blockset")
        self._buffers = read_buffers(self.block_size)

    def _category_id(self, category: str | None) -> int:
        found = self._cat_index.get(category)
        if found is None:
            if len(self.categories) >= 65535:
                raise BlockSetError("more than 65535 distinct categories")
            found = self._cat_index[category] = len(self.categories)
            self.categories.append(category)
        return found

    def add_file(self, file: Path, name: str, category: str | None = None,
                 category_of: CategoryOf | None = None) -> None:
        """Cut one reference file into blocks and add its distinct ones."""
        try:
            hashed = hash_file(file, self.block_size, self.digest, self._pool,
                               buffers=self._buffers)
        except OSError as exc:
            raise BlockSetError(f"{file}: cannot read: {exc.strerror or exc}") from None
        if hashed.md5 in self._seen_md5:
            self.stats["duplicate_files"] += 1
            return
        self._seen_md5.add(hashed.md5)
        if category_of is not None:
            category = category_of(hashed.md5, hashed.sha1)
            if category is None:
                self.stats["uncategorised_files"] += 1
        self.add_hashed(name, hashed.size, hashed.blocks, hashed.digests, hashed.index,
                        hashed.md5, hashed.sha1, category, hashed.dropped)

    def add_hashed(self, name: str, size: int, blocks: int, digests: np.ndarray,
                   index: np.ndarray, md5: bytes, sha1: bytes, category: str | None,
                   dropped: Counter[str]) -> None:
        """Add one reference file already cut into ``blocks`` blocks (kept ones given)."""
        start = self.starts[-1]
        if start + blocks >= MAX_GLOBAL_BLOCKS:
            raise BlockSetError(f"more than {MAX_GLOBAL_BLOCKS} reference blocks in one set "
                                f"({MAX_GLOBAL_BLOCKS * self.block_size // 2**40} TiB at "
                                f"{self.block_size} B): split the reference folder")
        self.starts.append(start + blocks)
        self.md5.append(md5.ljust(16, b"\0")[:16])
        self.sha1.append(sha1.ljust(20, b"\0")[:20])
        self.sizes.append(size)
        self.cat_ids.append(self._category_id(category))
        self.names.append(name)
        self.dropped.update(dropped)
        self.stats["files"] += 1
        self.stats["bytes"] += size
        self.stats["blocks"] += blocks
        if blocks == 0:
            self.stats["empty_files"] += 1
        self._add_rows(digests, (index + start).astype(np.uint64))

    def add_exclude(self, file: Path) -> None:
        """Blocks of a known-innocent file: any set block equal to one of them is dropped."""
        try:
            hashed = hash_file(file, self.block_size, self.digest, whole=False,
                               filter_weak=False, buffers=self._buffers)
        except OSError as exc:
            raise BlockSetError(f"--exclude {file}: cannot read: {exc.strerror or exc}") from None
        self.stats["exclude_files"] += 1
        self.stats["exclude_blocks"] += len(hashed.digests)
        self._add_rows(hashed.digests, np.full(len(hashed.digests), EXCLUDED_G, dtype=np.uint64))

    def _add_rows(self, digests: np.ndarray, g: np.ndarray) -> None:
        if not len(digests):
            return
        rows = np.empty((len(digests), DIGEST_BYTES + 4), dtype=np.uint8)
        rows[:, :DIGEST_BYTES] = digests
        rows[:, DIGEST_BYTES:] = g.astype(">u4").view(np.uint8).reshape(-1, 4)
        self.store.add("blocks", rows.view(f"S{DIGEST_BYTES + 4}").reshape(-1), 0)

    def file_table(self) -> FileTable:
        n = len(self.sizes)
        return FileTable(
            starts=np.array(self.starts, dtype=np.uint64),
            md5=np.frombuffer(b"".join(self.md5), dtype=np.uint8).reshape(n, 16),
            sha1=np.frombuffer(b"".join(self.sha1), dtype=np.uint8).reshape(n, 20),
            size=np.array(self.sizes, dtype=np.uint64),
            category=np.array(self.cat_ids, dtype=np.uint16),
            names=self.names)

    def write(self, out: Path, meta: dict[str, Any],
              sorted_rows: Iterator[np.ndarray] | None = None) -> dict[str, Any]:
        """Sort (externally), drop shared/excluded blocks, write ``out``; returns the header.

        ``sorted_rows`` (piecewise import) replaces the store's output: (n, 20) uint8 rows of
        digest + big-endian g, ascending."""
        try:
            finished = self.store.finish()
            files = self.file_table()
            writer = TbsWriter(out, files=files, categories=self.categories,
                               estimate=self.store.rows_added.get("blocks", 0))
            if sorted_rows is None:
                blocks = finished.blocks("blocks") if finished.algorithms else iter(())
                sorted_rows = (b.keys.view(np.uint8).reshape(-1, DIGEST_BYTES + 4) for b in blocks)
            try:
                carry: np.ndarray | None = None
                for block in sorted_rows:
                    for start in range(0, len(block), _EMIT_ROWS):  # bounded temporaries
                        rows = block[start : start + _EMIT_ROWS]
                        if carry is not None:
                            rows = np.concatenate([carry, rows])
                        # the last digest's rows may continue in the next slice: carry them
                        last = rows[-1, :DIGEST_BYTES]
                        other = np.flatnonzero(~np.all(rows[:, :DIGEST_BYTES] == last, axis=1))
                        tail = int(other[-1]) + 1 if len(other) else 0
                        carry = rows[tail:].copy()
                        self._emit(rows[:tail], files, writer)
                if carry is not None:
                    self._emit(carry, files, writer)
                dropped = {reason: int(self.dropped.get(reason, 0)) for reason in REASONS}
                meta = dict(meta, block_size=self.block_size, digest=self.digest,
                            max_files=self.max_files, dropped=dropped)
                return writer.finish(meta)
            finally:
                writer.abort()
        finally:
            self.close()

    def _emit(self, rows: np.ndarray, files: FileTable, writer: TbsWriter) -> None:
        """Group sorted rows by digest; write the rows of groups that are distinct."""
        if not len(rows):
            return
        digests = np.ascontiguousarray(rows[:, :DIGEST_BYTES]).view(f"S{DIGEST_BYTES}").reshape(-1)
        g = np.ascontiguousarray(rows[:, DIGEST_BYTES:]).view(">u4").reshape(-1).astype(np.int64)
        n = len(rows)
        new = np.ones(n, dtype=bool)
        new[1:] = digests[1:] != digests[:-1]
        starts = np.flatnonzero(new)
        excl_row = g == EXCLUDED_G
        file_idx = np.where(excl_row, -1, files.file_of(np.minimum(g, EXCLUDED_G - 1)))
        new_file = new.copy()
        new_file[1:] |= file_idx[1:] != file_idx[:-1]
        new_file &= ~excl_row
        nfiles = np.add.reduceat(new_file.astype(np.int64), starts)
        excluded = np.maximum.reduceat(excl_row, starts)
        refs_in_group = np.add.reduceat((~excl_row).astype(np.int64), starts)
        self.dropped["excluded"] += int(refs_in_group[excluded].sum())
        shared = ~excluded & (nfiles > self.max_files)
        self.dropped["shared"] += int(refs_in_group[shared].sum())
        group_ok = ~excluded & ~shared
        lengths = np.diff(np.append(starts, n))
        keep = np.repeat(group_ok, lengths) & ~excl_row
        if keep.any():
            kept = rows[keep]
            keys = np.ascontiguousarray(kept[:, :12]).view("S12").reshape(-1)
            writer.add(keys, g[keep].astype(np.uint32))

    def close(self) -> None:
        self.store.close()
        self._pool.shutdown()


def source_meta(builder: Builder, kind: str, roots: list[str], inputs: list[str]) -> dict[str, Any]:
    s = builder.stats
    return {"kind": kind, "files": s["files"], "bytes": s["bytes"], "blocks": s["blocks"],
            "duplicate_files": s["duplicate_files"], "empty_files": s["empty_files"],
            "exclude_files": s["exclude_files"],
            "exclude_blocks": s["exclude_blocks"], "uncategorised_files": s["uncategorised_files"],
            "roots": roots, "inputs": inputs}


def build_blockset(paths: list[Path], out: Path, *, name: str | None = None,
                   category: str | None = None, categories_from_set: Path | None = None,
                   block_size: int = DEFAULT_BLOCK_SIZE, digest: str = "xxh3-128",
                   max_files: int = DEFAULT_MAX_FILES, exclude: list[Path] | None = None,
                   budget: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """``triage blockset build``: the whole pipeline; returns the written header."""
    if category is not None and categories_from_set is not None:
        raise BlockSetError("--category and --categories-from exclude each other")
    category_of = categories_from(categories_from_set) if categories_from_set else None
    builder = Builder(block_size=block_size, digest=digest, max_files=max_files,
                      tmpdir=Path(out).absolute().parent, budget=budget)
    try:
        files = reference_files(paths, skip=Path(out))
        excluded = reference_files(exclude or [], skip=Path(out))
        for file, label in files:
            builder.add_file(file, label, category, category_of)
            if progress is not None:
                progress(builder.stats["files"], builder.stats["bytes"])
        for file, _ in excluded:
            builder.add_exclude(file)
        if not builder.stats["files"]:
            raise BlockSetError("no reference files found under " + ", ".join(map(str, paths)))
        meta = {"name": name or Path(out).stem,
                "source": source_meta(builder, "files", [str(p) for p in paths], []),
                "low_entropy_values": LOW_ENTROPY_VALUES}
        return builder.write(Path(out), meta)
    finally:
        builder.close()


def subtract_blocksets(a_path: Path, b_path: Path, out: Path, *, name: str | None = None,
                       chunk: int = 1 << 20) -> dict[str, Any]:
    """``triage blockset subtract A B --out C``: A's blocks that are not in B (same block size
    and digest required). C keeps A's reference files, categories and drop counts, plus
    ``subtracted``."""
    from triage.blocks.tbs import BlockSet

    a, b = BlockSet.open(a_path), BlockSet.open(b_path)
    try:
        if (a.block_size, a.digest) != (b.block_size, b.digest):
            raise BlockSetError(f"cannot subtract {b_path} ({b.block_size} B, {b.digest}) from "
                                f"{a_path} ({a.block_size} B, {a.digest}): block size and digest "
                                "must be the same")
        if Path(out).resolve() in (Path(a_path).resolve(), Path(b_path).resolve()):
            raise BlockSetError(f"--out {out}: would overwrite an input")
        for path, bs in ((a_path, a), (b_path, b)):  # a damaged input must not come out re-sealed
            _, problem = bs.verify()
            if problem:
                raise BlockSetError(f"block set {path}: {problem}")
        h = a.header
        files = FileTable(starts=np.array(a.file_starts), md5=np.array(a.file_md5),
                          sha1=np.array(a.file_sha1), size=np.array(a.file_size),
                          category=np.array(a.file_category),
                          names=[a.file(i).name for i in range(a.n_files)])
        writer = TbsWriter(out, files=files, categories=list(h.categories), estimate=a.n_blocks)
        removed = 0
        try:
            for start in range(0, a.n_blocks, chunk):
                keys = np.array(a.keys[start : start + chunk])
                g = np.array(a.refs_g[start : start + chunk])
                if int(g.max()) >= int(files.starts[-1]):
                    raise BlockSetError(f"block set {a_path}: damaged (block reference outside "
                                        "every file)")
                if b.n_blocks:
                    _, count = b._table.find_many(keys)
                    keep = count == 0
                    removed += int((~keep).sum())
                    keys, g = keys[keep], g[keep]
                writer.add(keys, g)
            source = dict(msgspec.to_builtins(h.source), kind="subtract",
                          inputs=[str(a_path), str(b_path)])
            meta = {"name": name or Path(out).stem, "block_size": h.block_size,
                    "digest": h.digest, "max_files": h.max_files,
                    "low_entropy_values": h.low_entropy_values,
                    "dropped": dict(h.dropped, subtracted=h.dropped.get("subtracted", 0) + removed),
                    "source": source}
            return writer.finish(meta)
        finally:
            writer.abort()
    finally:
        a.close()
        b.close()

