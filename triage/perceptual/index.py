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

The index is a folder of ``.npy`` arrays the main process writes once and every worker maps
read-only (``mmap``), so the operating system shares one copy between all workers; a compiled
``.tdb`` carries the same arrays (``hashsets.pdqsection``). Imports nothing of triage but errors.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triage.errors import HashSetError

DEFAULT_THRESHOLD = 31  # PDQ's reference match threshold (Hamming distance, inclusive)
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

    @property
    def entries(self) -> int:
        return int(len(self.hashes))

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


def _words(hashes: np.ndarray) -> np.ndarray:
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
        if CHUNKS * n >= 1 << 32:
            raise HashSetError(f"{n:,} PDQ hashes: too many for one index")
        words = _words(hashes)
        # direct-address bucket tables of about n buckets a piece (never more than the piece)
        bits = max(4, math.ceil(math.log2(max(n, 2))))
        bucket_bits = tuple(min(w, bits) for w in WIDTHS)
        ids = np.empty(CHUNKS * n, np.uint32)
        offsets = np.empty(sum((1 << b) + 1 for b in bucket_bits), np.uint32)
        at = 0
        for c, b in enumerate(bucket_bits):
            key = _chunk_values(words, c) >> np.uint32(WIDTHS[c] - b)
            counts = np.bincount(key, minlength=1 << b)
            # sort (key, row) packed in one uint64: several times faster than an argsort
            packed = (key.astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
            del key
            packed.sort()
            ids[c * n:(c + 1) * n] = packed.astype(np.uint32)  # the low 32 bits: the row
            del packed
            offsets[at] = c * n
            offsets[at + 1:at + 1 + (1 << b)] = np.cumsum(counts) + c * n
            at += (1 << b) + 1
        info = [{"name": s.name, "labels": s.labels} for s in sets]
        return cls(words, meta, ids, offsets, bucket_bits, info)

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
        qw = _words(np.frombuffer(raw, np.uint8).reshape(1, 32))[0]
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

