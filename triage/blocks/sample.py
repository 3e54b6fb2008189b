"""``triage sample``: is known material on this device? A random sample of media blocks,
hashed and looked up in a block set, with a stated confidence (``plan.py``).

For each evidence: plan n reads (``make_plan``), draw the slots from a recorded seed, read them
in ascending order with several in flight (``media.Media.reads``), hash every 512-byte-aligned
window of block size inside each read (file data is cluster-aligned relative to its partition,
which can be any sector), look the digests up, and map every hit to its volume and owning file
(``locate.py``). Read errors are counted: a failed read found nothing, and the achieved
confidence is computed from the reads that succeeded.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triage.blocks.locate import locate
from triage.blocks.media import Media
from triage.blocks.plan import ALIGN, MIB, Plan, draw_slots, make_plan, statement
from triage.errors import ExitCode, UsageError

MAX_HITS = 10_000  # hits listed per evidence (all are counted)
MAX_REFS = 8  # reference files listed per hit block (all are counted)
AUTO_KIB_SSD = 4
AUTO_KIB_DISK = 16
DEPTH = 8  # reads in flight (SSD, files)
DEPTH_DISK = 32  # on a spinning disk: a full NCQ queue lets the drive order by rotation
# Reads per thread task. 256 on SSDs and files (a task per 4 KiB read cost more CPU than the
# read); 1 on a spinning disk, so that the reads in flight are the next DEPTH_DISK planned
# offsets, close together, among which the drive picks by rotational position (the disk
# model of benchmarks/sampling.py); with batches the in-flight reads would lie one per batch,
# gigabytes apart, and the drive would serve them in effect one at a time.
BATCH = 256
LOOKUP_KEYS = 2048  # windows gathered before one lookup


def read_blocks_for(read_kib: str | int, block_size: int, media: Media) -> tuple[int, str]:
    """R (blocks per read) and why: ``auto`` is 16 KiB on a spinning disk (more material in
    runs found for ~0.1 ms more per seek), 4 KiB elsewhere (least CPU and transfer)."""
    if str(read_kib) == "auto":
        rot = media.rotational()
        kib = max(AUTO_KIB_DISK if rot else AUTO_KIB_SSD, block_size // 1024)
        why = {True: "rotational media", False: "solid-state media",
               None: "media kind unknown"}[rot]
    else:
        try:
            kib = int(read_kib)
        except ValueError:
            raise UsageError(f"--read-kib must be a number of KiB or auto (got {read_kib!r})"
                             ) from None
        why = "--read-kib"
    if kib * 1024 < block_size or (kib * 1024) % block_size:
        raise UsageError(f"--read-kib {kib} must be a multiple of the set's block size "
                         f"({block_size // 1024} KiB)")
    return kib * 1024 // block_size, f"{kib} KiB ({why})"


@dataclass
class SampleResult:
    """One evidence's sample, as it goes into summary.json."""

    plan: Plan
    seed: int
    read_size: str
    reads_ok: int = 0
    read_errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    bytes_read: int = 0
    windows: int = 0
    hits: list[dict[str, Any]] = field(default_factory=list)
    hit_blocks: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    offsets_digest: str = ""


def sample_media(media: Media, blockset: Any, plan: Plan, seed: int, index: int = 0,
                 depth: int = DEPTH, batch: int = BATCH) -> SampleResult:
    """Read, hash and look up the planned sample of one medium (no mapping to files yet)."""
    from triage.blocks.digest import hash_blocks

    res = SampleResult(plan, seed, "")
    t0, c0 = time.monotonic(), time.process_time()
    slots = draw_slots(plan, seed, index)
    res.offsets_digest = hashlib.sha256(slots.tobytes()).hexdigest()
    slot_bytes, want = plan.slot_bytes, plan.read_bytes
    B, digest = plan.block_size, blockset.digest
    requests = ((int(s) * slot_bytes, want) for s in slots)
    keys: list[np.ndarray] = []
    starts: list[tuple[int, int]] = []
    pending = 0
    for part in media.read_batches(requests, depth, batch):
        for off, data in part:
            if isinstance(data, OSError):
                res.read_errors += 1
                if len(res.first_errors) < 10:
                    res.first_errors.append(f"byte {off:,}: {data.strerror or data}")
                continue
            res.reads_ok += 1
            res.bytes_read += len(data)
            k = hash_blocks(data, B, digest, step=ALIGN)
            if len(k):
                keys.append(k)
                starts.append((off, len(k)))
                pending += len(k)
        if pending >= LOOKUP_KEYS:
            _look_up(blockset, keys, starts, res)
            keys, starts, pending = [], [], 0
    if keys:
        _look_up(blockset, keys, starts, res)
    res.elapsed = time.monotonic() - t0
    res.cpu = time.process_time() - c0
    return res


def _look_up(blockset: Any, keys: list[np.ndarray], starts: list[tuple[int, int]],
              res: SampleResult) -> None:
    """One lookup for many reads' windows (its cost is mostly fixed); hits back to offsets."""
    allkeys = np.concatenate(keys) if len(keys) > 1 else keys[0]
    res.windows += len(allkeys)
    found = blockset.lookup(allkeys)
    hit = np.flatnonzero(found >= 0)
    if not len(hit):
        return
    counts = np.array([n for _, n in starts])
    first = np.cumsum(counts) - counts
    offs = np.array([o for o, _ in starts], dtype=np.int64)
    which = np.searchsorted(first, hit, side="right") - 1
    for w, idx in zip(which.tolist(), hit.tolist()):
        res.hit_blocks += 1
        if len(res.hits) < MAX_HITS:
            res.hits.append(_hit(blockset, int(offs[w]) + (idx - int(first[w])) * ALIGN,
                                 int(found[idx])))


def _hit(blockset: Any, offset: int, entry: int) -> dict[str, Any]:
    refs = blockset.refs(entry)
    return {"device_offset": offset, "entry": entry, "references": len(refs),
            "reference_files": [
                {"md5": r.file.md5, "sha1": r.file.sha1, "name": r.file.name,
                 "size": r.file.size, "category": r.file.category, "block_offset": r.offset}
                for r in refs[:MAX_REFS]],
            "categories": sorted({r.file.category or "" for r in refs})}


def run_sample(evidence: list[str], blockset_path: str, confidence: float = 0.99,
               min_mib: float = 20.0, read_kib: str = "auto", seed: int | None = None,
               on_ready: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """Sample every evidence; return (per-evidence sampling entries, set info, exit code).
    ``on_ready()`` runs once the set, the evidence and every plan are known good, before any
    sample is read (the CLI claims its output folder there: a usage error leaves nothing)."""
    from triage.blocks.tbs import BlockSet

    if not 0.0 < confidence < 1.0:
        raise UsageError(f"--confidence must lie strictly between 0 and 1 (got {confidence})")
    if seed is None:
        seed = secrets.randbits(63)
    elif seed < 0:
        raise UsageError("--seed must be 0 or more")
    bs = BlockSet.open(blockset_path)
    check = bs.verification()  # the set's data re-hashed beside the sample (as a .tdb's)
    try:
        if min_mib * MIB > bs.n_blocks * bs.block_size:
            raise UsageError(f"--min-mib {min_mib:g} is more than the block set holds "
                             f"({bs.n_blocks * bs.block_size / MIB:,.2f} MiB of distinct "
                             "blocks): the promise would be empty")
        medias = [Media(p) for p in evidence]  # every evidence opens before any is read
        plans = []
        for m in medias:
            r, why = read_blocks_for(read_kib, bs.block_size, m)
            plans.append((make_plan(m.size, bs.block_size, confidence, min_mib, r), why))
        if on_ready is not None:
            on_ready()
        entries, any_hit, any_err = [], False, False
        for i, (m, (plan, why)) in enumerate(zip(medias, plans)):
            rot = m.rotational()
            depth, batch = (DEPTH_DISK, 1) if rot else (DEPTH, BATCH)
            res = sample_media(m, bs, plan, seed, i, depth=depth, batch=batch)
            res.read_size = why
            owners = locate(m.img, m.spec, [h["device_offset"] for h in res.hits]) if res.hits else {}
            for h in res.hits:
                h.update(owner=owners[h["device_offset"]].to_dict())
            entries.append(_entry(m, plan, res, seed, i) | {"reads_in_flight": depth
                                                             if m.parallel else 1})
            any_hit |= res.hit_blocks > 0
            any_err |= res.read_errors > 0
            m.close()
        info = _set_info(bs)
    finally:
        bs.close()
    code = ExitCode.HITS if any_hit else (ExitCode.INCOMPLETE if any_err else ExitCode.OK)
    check.wait()
    info["verification"] = check.summary()
    if check.problem is not None:  # hits and misses alike came from an altered set
        info["invalid"] = check.message()
        code = ExitCode.USAGE
    return entries, info, int(code)


def _set_info(bs: Any) -> dict[str, Any]:
    return {"path": str(bs.path), "name": bs.name, "block_size": bs.block_size,
            "digest": bs.digest, "blocks": bs.n_blocks, "categories": dict(bs.categories)}


def _entry(m: Media, plan: Plan, res: SampleResult, seed: int, index: int) -> dict[str, Any]:
    achieved = plan.achieved(res.reads_ok)
    return {
        "evidence": m.path, "format": m.spec.format, "media_bytes": plan.media_bytes,
        "block_size": plan.block_size, "media_blocks": plan.media_blocks,
        "read_size": res.read_size, "read_bytes": plan.read_bytes,
        "slots": plan.slots, "material_blocks": plan.material_blocks,
        "material_slots": plan.material_slots, "min_mib": plan.min_mib,
        "confidence_asked": plan.confidence, "reads": plan.reads,
        "reads_ok": res.reads_ok, "read_errors": res.read_errors,
        "first_read_errors": res.first_errors,
        "bytes_read": res.bytes_read, "windows_hashed": res.windows,
        "seed": seed, "seed_index": index,
        "draw": "numpy.random.default_rng([seed, seed_index]).choice(slots, reads, "
                "replace=False), sorted",
        "offsets_sha256": res.offsets_digest,
        "numpy": np.__version__,
        "elapsed_seconds": round(res.elapsed, 3), "cpu_seconds": round(res.cpu, 3),
        "confidence_achieved": achieved,
        "statement": statement(plan, achieved, res.hit_blocks > 0, res.read_errors),
        "hit_blocks": res.hit_blocks, "hits_listed": len(res.hits),
        "hits": res.hits,
    }


def default_out(evidence: list[str]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path(f"triage-sample-{Path(evidence[0]).name}-{stamp}")
