"""The PDQ near-duplicate index: every PDQ hash of every set, searched within a Hamming distance.

Near-duplicate search is multi-index hashing. The 256 bits are cut into ``CHUNKS`` = 11 pieces
(three of 24 bits, eight of 23). If two hashes differ in at most ``t`` = 31 bits, at least one
piece differs in at most 2 bits (pigeonhole: were every piece 3 bits apart, the hashes would be
33 > 31 apart; ``piece_radii`` refines this to one piece at 1 bit). So the index keeps, per piece,
the set rows sorted by that piece's value with a direct-address table of bucket starts, and a
query probes in each piece its own value and every value within that radius (2,866 probes in
all for t = 31), then verifies the full 256-bit distance of the few candidates. Every hash within
the threshold is found - the search is exact, not approximate - and with 10M set hashes a query
touches about 3k buckets and 3k candidates instead of 10M hashes.

A compiled ``.tdb`` carries the index's arrays (``hashsets.pdqsection``; a scan compiles its
text sets into one too, ``perceptual.sources.compile_pdq``), which every worker maps read-only
(``mmap``), so the operating system shares one copy between all workers; ``PdqIndex.save``
writes the same arrays as a folder of ``.npy`` files (``PdqOptions.index_dir``). Both are built by one counting sort
by bucket key (``sort_pieces``) whose memory does not grow with the rows (a compiled index's
words are read back from a temporary file). Imports nothing of triage but errors.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triage.config import PDQ_THRESHOLD
from triage.errors import HashSetError

DEFAULT_THRESHOLD = PDQ_THRESHOLD  # PDQ's reference (Hamming distance, inclusive)
MIN_QUALITY = 50  # hashes of lower quality are not matched (flat or featureless pictures)
PDQ_BITS = 256
MAX_THRESHOLD = 64
NOTABLE = "notable"  # category of a PDQ entry whose set gives none (as for exact sets)

WIDTHS = (24, 24, 24, 23, 23, 23, 23, 23, 23, 23, 23)
CHUNKS = len(WIDTHS)
assert sum(WIDTHS) == PDQ_BITS
STARTS = tuple(itertools.accumulate((0,) + WIDTHS[:-1]))
INDEX_VERSION = 1


@dataclass
class PdqSet:
    """One PDQ hash-set file, parsed: ``hashes[i]`` (32 bytes) has category ``labels[codes[i]]``
    (None: the set gives none)."""

    name: str
    path: str
    format: str  # "pdq-list" | "pdq-csv" | "vics"
    sha256: str
    hashes: np.ndarray  # (n, 32) uint8, big-endian bit order (the hex order)
    codes: np.ndarray  # (n,) uint16
    labels: list[str | None] = field(default_factory=lambda: [None])
    skipped: int = 0  # malformed lines skipped under lenient
    dropped: int = 0  # all-zero hashes, or rows whose quality is under MIN_QUALITY
    streamed: int | None = None  # hashes handed to ``sink`` as parsed (``hashes`` stays empty)
    # where they went (``hashsets.pdqsection.PdqRows``): a scan compiles it to a .tdb
    sink: Any = field(default=None, compare=False, repr=False)

    @property
    def entries(self) -> int:
        return int(len(self.hashes)) if self.streamed is None else self.streamed

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "kind": "known-bad",
                "format": self.format, "sha256": self.sha256, "entries": self.entries,
                "algorithms": ["pdq"], "skipped_lines": self.skipped,
                "dropped": self.dropped}


# ---------------------------------------------------------------------------------------------
# Bits


def to_hex(bits: np.ndarray) -> str:
    """``pdqhash.compute``'s 256 bits as 64 hex: in order, 8 per byte, most significant first
    (python-threatexchange's convention)."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def to_words(hashes: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 -> (n, 4) uint64: word i holds bytes 8i..8i+7, big-endian."""
    return np.ascontiguousarray(hashes).view(">u8").astype(np.uint64).reshape(-1, 4)


def _chunk_values(words: np.ndarray, c: int) -> np.ndarray:
    """The value of piece ``c`` of every hash (uint32), bits in hex order."""
    s, w = STARTS[c], WIDTHS[c]
    a, o = divmod(s, 64)
    if o + w <= 64:
        v = (words[:, a] >> np.uint64(64 - o - w)) & np.uint64((1 << w) - 1)
    else:
        hi_bits = 64 - o
        lo_bits = w - hi_bits
        v = ((words[:, a] & np.uint64((1 << hi_bits) - 1)) << np.uint64(lo_bits)) | \
            (words[:, a + 1] >> np.uint64(64 - lo_bits))
    return v.astype(np.uint32)


def _distance(words: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distances between rows of (k, 4) uint64 words and the query word(s)."""
    c = np.bitwise_count(words ^ query)  # (k, 4) uint8; .sum(axis=1) is 3x slower
    return c[:, 0].astype(np.int64) + c[:, 1] + c[:, 2] + c[:, 3]


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` is many times slower on large int64 arrays)."""
    out = np.sort(values)
    if len(out) > 1:
        out = out[np.concatenate(([True], out[1:] != out[:-1]))]
    return out


def piece_radii(threshold: int) -> list[int]:
    """How far to probe around each piece so that no hash within ``threshold`` is missed.

    Generalised pigeonhole: if two hashes are at most ``t`` apart and the radii satisfy
    ``sum(r_i + 1) > t``, some piece ``i`` differs by at most ``r_i`` (else the distance would be
    at least ``sum(r_i + 1)``). With ``t + 1 = 11 q + rem``, ``rem`` pieces get ``q`` and the
    others ``q - 1`` (-1: not probed at all). For t = 31: ten pieces at 2 bits, one at 1.
    """
    q, rem = divmod(threshold + 1, CHUNKS)
    # the extra bit goes to the widest pieces first (fewer candidates a bucket)
    order = sorted(range(CHUNKS), key=lambda c: -WIDTHS[c])
    radii = [q - 1] * CHUNKS
    for c in order[:rem]:
        radii[c] = q
    assert sum(r + 1 for r in radii) > threshold
    return radii


def _masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit XOR mask with at most ``radius`` bits set (0 first; none if < 0)."""
    if radius < 0:
        return np.zeros(0, np.uint32)
    out = [0]
    for k in range(1, radius + 1):
        for bits in itertools.combinations(range(width), k):
            m = 0
            for b in bits:
                m |= 1 << b
            out.append(m)
    return np.array(out, np.uint32)


# ---------------------------------------------------------------------------------------------
# Building: a counting sort by bucket key, piece by piece, in bounded memory

SORT_BUDGET = 256 << 20  # bytes of row ids one scatter pass holds (64M rows); read at call time
_CHUNK = 1 << 21  # rows of an in-memory words array handed over at a time


def index_bits(n: int) -> tuple[int, ...]:
    """Bucket bits of each piece's direct-address table: about ``n`` buckets a piece (never
    more than the piece has values); refuses more rows than 32-bit ids can number."""
    if CHUNKS * n >= 1 << 32:
        raise HashSetError(f"{n:,} PDQ hashes: too many for one index")
    bits = max(4, math.ceil(math.log2(max(n, 2))))
    return tuple(min(w, bits) for w in WIDTHS)


def sort_pieces(chunks: Callable[[], Iterable[np.ndarray]], n: int,
                bucket_bits: tuple[int, ...], emit_ids: Callable[[np.ndarray], None],
                emit_offsets: Callable[[np.ndarray], None]) -> None:
    """The multi-index's ``ids`` (rows, piece by piece, sorted by bucket key then row) and its
    ``offsets`` (per piece the bucket starts into ``ids`` and one end), handed to ``emit_ids``
    and ``emit_offsets`` in file order.

    Why: sorting every piece's (key, row) pairs in memory costs ~200 bytes a frame at peak
    (100M frames: ~21 GB). Bucket keys are small integers, so a counting sort does it in
    bounded memory: per piece one pass over ``chunks()`` (the (m, 4) uint64 words, in row
    order; called once a pass, e.g. read back from a temporary file) counts the keys, then one
    pass per key range whose rows fit ``SORT_BUDGET`` scatters each chunk's rows to their
    slots (stable: the rows of a bucket stay in row order, so the result is the plain sort's).
    A bucket larger than the budget (many equal pieces: hostile input) is streamed as it comes,
    its rows already in order. Memory: the budget, two tables of 2**bits (<= 2**24) int64 and
    a chunk's work arrays: ~0.7 GB at 100M rows, whatever the row count."""
    cap = max(1, SORT_BUDGET // 4)
    for c, b in enumerate(bucket_bits):
        shift = np.uint32(WIDTHS[c] - b)
        starts = np.zeros((1 << b) + 1, np.int64)
        for words in chunks():
            if len(words):
                starts[1:] += np.bincount(_chunk_values(words, c) >> shift, minlength=1 << b)
        np.cumsum(starts, out=starts)
        table = starts.astype(np.uint32)
        table += np.uint32(c * n)
        emit_offsets(table)
        del table
        lo = 0
        while lo < 1 << b:
            hi = max(lo + 1, int(np.searchsorted(starts, starts[lo] + cap, "right")) - 1)
            hi = min(hi, 1 << b)
            if int(starts[hi] - starts[lo]):
                _scatter(chunks, c, shift, lo, hi, starts, cap, emit_ids)
            lo = hi


def _scatter(chunks: Callable[[], Iterable[np.ndarray]], c: int, shift: np.uint32, lo: int,
             hi: int, starts: np.ndarray, cap: int,
             emit_ids: Callable[[np.ndarray], None]) -> None:
    """The ids of piece ``c`` whose bucket key is in ``lo..hi-1`` (``sort_pieces``).
    ``starts[lo:hi]`` serve as the buckets' cursors (the offsets were already handed over)."""
    first, total = int(starts[lo]), int(starts[hi] - starts[lo])
    whole = lo == 0 and hi == len(starts) - 1
    row0 = 0
    if total > cap:  # one bucket over the budget: its rows come in order, emit them as met
        for words in chunks():
            key = _chunk_values(words, c) >> shift
            emit_ids((np.flatnonzero(key == lo) + row0).astype(np.uint32))
            row0 += len(words)
        return
    region = np.empty(total, np.uint32)
    cursor = starts[lo:hi]  # a view: the next free slot of each bucket, counted from first
    for words in chunks():
        key = _chunk_values(words, c) >> shift
        rows = np.arange(row0, row0 + len(words), dtype=np.uint64)
        row0 += len(words)
        if not whole:
            keep = (key >= lo) & (key < hi)
            key, rows = key[keep], rows[keep]
        if not len(key):
            continue
        # (key, row) packed in one uint64 and sorted: several times faster than an argsort
        packed = ((key - np.uint32(lo)).astype(np.uint64) << np.uint64(32)) | rows
        del key, rows
        packed.sort()
        keys = (packed >> np.uint64(32)).astype(np.intp)
        run = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        run_starts = np.concatenate(([0], run))
        lengths = np.diff(np.concatenate((run_starts, [len(keys)])))
        rank = np.arange(len(keys)) - np.repeat(run_starts, lengths)
        region[cursor[keys] + rank - first] = packed.astype(np.uint32)  # low 32 bits: the row
        cursor[keys[run_starts]] += lengths
    emit_ids(region)


class _Filler:
    """An array filled in order by ``sort_pieces``' callbacks (the in-memory build)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.at = array, 0

    def put(self, part: np.ndarray) -> None:
        self.array[self.at:self.at + len(part)] = part
        self.at += len(part)


# ---------------------------------------------------------------------------------------------
# Index


class PdqIndex:
    """Every PDQ hash of every set, searchable within a Hamming distance (exactly)."""

    def __init__(self, words: np.ndarray, meta: np.ndarray, ids: np.ndarray, offsets: np.ndarray,
                 bucket_bits: tuple[int, ...], sets: list[dict[str, Any]]) -> None:
        self.words = words  # (n, 4) uint64
        self.meta = meta  # (n,) uint32: set number << 16 | category code
        self.ids = ids  # (CHUNKS * n,) uint32: rows, piece by piece, sorted by bucket
        self.offsets = offsets  # bucket starts into ids, all pieces, each + 1 end
        self.bucket_bits = bucket_bits
        self.sets = sets  # [{"name", "labels": [...]}]
        bases = []
        at = 0
        for b in bucket_bits:
            bases.append(at)
            at += (1 << b) + 1
        self._bases = tuple(bases)
        self._probes: dict[int, tuple[np.ndarray, ...]] = {}

    def __len__(self) -> int:
        return int(len(self.words))

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def build(cls, sets: Iterable[PdqSet]) -> "PdqIndex":
        sets = list(sets)
        if len(sets) > 65535:
            raise HashSetError("too many PDQ sets")
        hashes = np.concatenate([s.hashes for s in sets]) if sets else np.zeros((0, 32), np.uint8)
        meta = np.concatenate([(np.uint32(i) << np.uint32(16)) | s.codes.astype(np.uint32)
                               for i, s in enumerate(sets)]) if sets else np.zeros(0, np.uint32)
        n = len(hashes)
        words = to_words(hashes)
        bucket_bits = index_bits(n)
        ids = _Filler(np.empty(CHUNKS * n, np.uint32))
        offsets = _Filler(np.empty(sum((1 << b) + 1 for b in bucket_bits), np.uint32))
        sort_pieces(lambda: (words[i:i + _CHUNK] for i in range(0, n, _CHUNK)), n,
                    bucket_bits, ids.put, offsets.put)
        info = [{"name": s.name, "labels": s.labels} for s in sets]
        return cls(words, meta, ids.array, offsets.array, bucket_bits, info)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in ("words", "meta", "ids", "offsets"):
            np.save(d / f"{name}.npy", getattr(self, name))
        (d / "index.json").write_text(json.dumps(
            {"version": INDEX_VERSION, "bucket_bits": list(self.bucket_bits),
             "sets": self.sets}), encoding="utf-8")
        return d

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> "PdqIndex":
        """Map a saved index read-only: workers share the pages, nothing is copied."""
        d = Path(directory)
        info = json.loads((d / "index.json").read_text(encoding="utf-8"))
        if info.get("version") != INDEX_VERSION:
            raise HashSetError(f"PDQ index {d}: version {info.get('version')} not supported")
        arrays = [np.load(d / f"{n}.npy", mmap_mode="r")
                  for n in ("words", "meta", "ids", "offsets")]
        return cls(*arrays, tuple(info["bucket_bits"]), info["sets"])

    # -- searching ----------------------------------------------------------------------------

    def _probe_plan(self, threshold: int) -> tuple[np.ndarray, ...]:
        """Per probe: which piece, XOR mask, shift to the bucket, base of that piece's table."""
        plan = self._probes.get(threshold)
        if plan is None:
            pieces, masks, shifts, bases = [], [], [], []
            for c, radius in enumerate(piece_radii(threshold)):
                m = _masks(WIDTHS[c], radius)
                pieces.append(np.full(len(m), c, np.intp))
                masks.append(m)
                shifts.append(np.full(len(m), WIDTHS[c] - self.bucket_bits[c], np.uint32))
                bases.append(np.full(len(m), self._bases[c], np.int64))
            plan = (np.concatenate(pieces), np.concatenate(masks), np.concatenate(shifts),
                    np.concatenate(bases), any(b < w for b, w in zip(self.bucket_bits, WIDTHS)))
            self._probes[threshold] = plan
        return plan

    def search(self, pdq: str | bytes, threshold: int = DEFAULT_THRESHOLD
               ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, distances) of every set hash within ``threshold`` bits of ``pdq``."""
        if not 0 <= threshold <= MAX_THRESHOLD:
            raise ValueError(f"PDQ threshold must be 0..{MAX_THRESHOLD}")
        raw = bytes.fromhex(pdq) if isinstance(pdq, str) else bytes(pdq)
        if len(raw) != 32 or not len(self.words):
            return np.zeros(0, np.intp), np.zeros(0, np.int64)
        q = int.from_bytes(raw, "big")
        values = np.array([(q >> (PDQ_BITS - s - w)) & ((1 << w) - 1)
                           for s, w in zip(STARTS, WIDTHS)], np.uint32)
        pieces, masks, shifts, bases, collide = self._probe_plan(threshold)
        slots = ((values[pieces] ^ masks) >> shifts).astype(np.int64) + bases
        if collide:  # small index: several probes fall in one bucket
            slots = _distinct(slots)
        starts = self.offsets[slots].astype(np.int64)
        lens = self.offsets[slots + 1].astype(np.int64) - starts
        hit = np.flatnonzero(lens)
        if not len(hit):
            return np.zeros(0, np.intp), np.zeros(0, np.int64)
        starts, lens = starts[hit], lens[hit]
        ends = np.cumsum(lens)
        pos = np.arange(ends[-1], dtype=np.int64) + np.repeat(starts - (ends - lens), lens)
        rows = self.ids[pos]  # a row found through two pieces comes twice: deduplicated below
        qw = to_words(np.frombuffer(raw, np.uint8).reshape(1, 32))[0]
        # np.take: several times faster than fancy indexing for rows of a 2-D array
        dist = _distance(np.take(self.words, rows, axis=0), qw)
        keep = np.flatnonzero(dist <= threshold)
        rows, dist = rows[keep].astype(np.intp), dist[keep]
        if len(rows) > 1:
            order = np.argsort(rows, kind="stable")
            rows, dist = rows[order], dist[order]
            first = np.concatenate(([True], rows[1:] != rows[:-1]))
            rows, dist = rows[first], dist[first]
        return rows, dist

    def matches(self, pdq: str, threshold: int = DEFAULT_THRESHOLD) -> list[dict[str, Any]]:
        """files.jsonl ``matches`` entries: the closest hash per set and category."""
        rows, dist = self.search(pdq, threshold)
        best: dict[tuple[int, int], int] = {}
        for row, d in zip(rows.tolist(), dist.tolist()):
            m = int(self.meta[row])
            key = (m >> 16, m & 0xFFFF)
            if key not in best or d < best[key]:
                best[key] = d
        out = []
        for (s, code), d in sorted(best.items(), key=lambda kv: (kv[1], kv[0])):
            info = self.sets[s]
            out.append({"hashset": info["name"], "algorithm": "pdq", "distance": d,
                        "category": info["labels"][code] or NOTABLE})
        return out


class PdqIndexGroup:
    """Several indexes searched as one: the index a scan builds from raw ``--pdq-set`` files
    and the PDQ sections of compiled ``.tdb`` files, each mapped where it lies."""

    def __init__(self, indexes: Iterable[PdqIndex]) -> None:
        self.indexes = list(indexes)

    def __len__(self) -> int:
        return sum(len(i) for i in self.indexes)

    def matches(self, pdq: str, threshold: int = DEFAULT_THRESHOLD) -> list[dict[str, Any]]:
        """``PdqIndex.matches`` of every index, closest first (stable: ties keep set order)."""
        found = [m for index in self.indexes for m in index.matches(pdq, threshold)]
        return sorted(found, key=lambda m: m["distance"])

