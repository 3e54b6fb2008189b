"""Sampling and block-scan benchmark (issue 17): printed tables, not part of CI.

    python benchmarks/sampling.py --workdir /var/tmp/triage-sample-bench [--only cpu,model,scan]

cpu    CPU cost of a whole 1 TB plan (99 % / 20 MiB: 219,491 reads) from the page cache: reads,
       hashing at every 512-byte offset, lookups; measured on a 1 GiB cached file with the
       same number of reads (cost per read does not depend on the media size).
model  Time on a 7200 rpm disk and on a SATA SSD, simulated from the offsets the plan actually
       draws for a 1 TB medium, at 95 %, 99 %, 99.9 % and 4 / 16 KiB reads. Constants and
       their sources are in DISK / SSD below (and docs/sampling.md).
scan   ``triage scan`` with and without ``--blockset`` on bench_scan.py's 2.5 GB ext4 image.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from triage.blocks.plan import ALIGN, Plan, draw_slots, make_plan  # noqa: E402

TB = 10**12
MiB = 1 << 20

# 7200 rpm disk: Seagate BarraCuda 3.5" ST1000DM010 (1 TB) product manual / data sheet:
# 7200 rpm (8.333 ms a turn, average latency 4.16 ms), max sustained transfer 210 MB/s (outer
# zone), average read seek < 8.5 ms. Track-to-track 1.0 ms and inner-zone rate at half the
# outer (typical of zoned recording) are the usual textbook figures (Ruemmler & Wilkes, "An
# introduction to disk drive modeling", IEEE Computer 1994). Seek(d) = t2t + (full - t2t) *
# sqrt(d / D) for a seek over a fraction d/D of the stroke (Ruemmler & Wilkes' short-seek
# law used over the whole stroke); full-stroke 15.06 ms is chosen so that the average over
# random seeks (E[sqrt(x)] = 8/15 for x triangular on [0,1]) equals the datasheet's 8.5 ms.
DISK = {"rpm": 7200, "outer_mb_s": 210e6, "inner_mb_s": 105e6, "t2t_ms": 1.0,
        "avg_seek_ms": 8.5}
DISK["full_ms"] = DISK["t2t_ms"] + (DISK["avg_seek_ms"] - DISK["t2t_ms"]) * 15 / 8
# SATA SSD: Samsung 870 EVO data sheet: 4 KiB random read 98,000 IOPS at QD32, 13,000 IOPS
# at QD1 (per thread), sequential read 560 MB/s.
SSD = {"iops_qd1": 13_000, "iops_qd32": 98_000, "seq_b_s": 560e6}


def disk_time(offsets: np.ndarray, length: int, size: int, queue: int) -> float:
    """Seconds to serve ``offsets`` (ascending) on the DISK model. ``queue`` requests are
    outstanding (NCQ); the drive serves the one with the shortest positioning time (seek +
    rotational wait) first (SPTF, Worthington/Ganger/Patt 1994), queue 1 is strict order.
    Angular position of a byte: its offset within its track; tracks shrink from outer to
    inner zone with the transfer rate."""
    rot = 60.0 / DISK["rpm"]
    t, head = 0.0, 0
    pending: list[int] = []
    it = iter(offsets.tolist())
    nxt = next(it, None)

    def rate(off: int) -> float:
        f = off / size
        return DISK["outer_mb_s"] + (DISK["inner_mb_s"] - DISK["outer_mb_s"]) * f

    def angle(off: int) -> float:
        track = rate(off) * rot  # bytes on this track
        return (off % track) / track

    def seek(a: int, b: int) -> float:
        if a == b:
            return 0.0
        d = abs(a - b) / size
        return (DISK["t2t_ms"] + (DISK["full_ms"] - DISK["t2t_ms"]) * math.sqrt(d)) / 1e3

    while nxt is not None or pending:
        while nxt is not None and len(pending) < queue:
            pending.append(nxt)
            nxt = next(it, None)
        best, best_cost = 0, math.inf
        for i, off in enumerate(pending):
            s = seek(head, off)
            arrive = ((t + s) / rot) % 1.0
            wait = ((angle(off) - arrive) % 1.0) * rot
            if s + wait < best_cost:
                best, best_cost = i, s + wait
        off = pending.pop(best)
        t += best_cost + length / rate(off)
        head = off
    return t


def ssd_time(n: int, length: int, queue: int) -> float:
    """Seconds on the SSD model: IOPS at the queue depth (4 KiB IOs; a longer read costs as
    many 4 KiB IOs), or the sequential bandwidth, whichever binds."""
    iops = SSD["iops_qd1"] if queue <= 1 else SSD["iops_qd32"]
    ios = n * math.ceil(length / 4096)
    return max(ios / iops, n * length / SSD["seq_b_s"])


def model_table() -> None:
    print("\n## Time on media models, 1 TB (10^12 bytes), min 20 MiB, offsets drawn (seed 1)")
    print("| confidence | read | reads n | bytes read | disk QD1 | disk NCQ 32 | SSD QD1 "
          "| SSD QD32 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for conf in (0.95, 0.99, 0.999):
        for r in (1, 4):
            p = make_plan(TB, 4096, conf, 20, r)
            offs = draw_slots(p, 1) * p.slot_bytes
            L = p.read_bytes
            d1 = disk_time(offs, L, TB, 1)
            d32 = disk_time(offs, L, TB, 32)
            print(f"| {conf:.1%} | {r * 4} KiB | {p.reads:,} | {p.reads * L / 1e9:.2f} GB "
                  f"| {d1 / 60:.1f} min | {d32 / 60:.1f} min | {ssd_time(p.reads, L, 1):.1f} s "
                  f"| {ssd_time(p.reads, L, 32):.1f} s |", flush=True)


def cpu_table(work: Path) -> None:
    from triage.blocks.build import build_blockset
    from triage.blocks.media import Media
    from triage.blocks.sample import sample_media
    from triage.blocks.tbs import BlockSet

    work.mkdir(parents=True, exist_ok=True)
    media_path, refs, tbs = work / "cached-1GiB.dd", work / "refs", work / "cpu.tbs"
    rng = np.random.default_rng(1)
    if not media_path.exists():
        with open(media_path, "wb") as fh:
            for _ in range(1024):
                fh.write(rng.integers(0, 256, MiB, dtype=np.uint8).tobytes())
    if not tbs.exists():
        refs.mkdir(exist_ok=True)
        for i in range(64):  # 256 MiB of reference files: 65,536 blocks
            (refs / f"r{i:02d}.bin").write_bytes(rng.integers(0, 256, 4 * MiB,
                                                              dtype=np.uint8).tobytes())
        build_blockset([refs], tbs, category="A")
    subprocess.run(["cat", str(media_path)], stdout=subprocess.DEVNULL, check=True)  # cache it
    bs, media = BlockSet.open(tbs), Media(str(media_path))
    print(f"\n## CPU from the page cache: 1 TB plan's read count on a cached 1 GiB file, set of "
          f"{bs.n_blocks:,} blocks")
    print("| plan | reads | windows hashed | CPU s | wall s | reads/s (CPU) | per read |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for conf, r in ((0.99, 1), (0.99, 4), (0.999, 1)):
        full = make_plan(TB, 4096, conf, 20, r)
        slots = media.size // full.slot_bytes - 1
        p = Plan(slots * full.slot_bytes, 4096, r, slots, full.material_blocks,
                 full.material_slots, conf, min(full.reads, slots), 20.0)
        c0, t0 = time.process_time(), time.monotonic()
        res = sample_media(media, bs, p, seed=2)
        cpu, wall = time.process_time() - c0, time.monotonic() - t0
        scale = full.reads / p.reads
        print(f"| 1 TB {conf:.1%} {r * 4} KiB | {full.reads:,} | {int(res.windows * scale):,} "
              f"| {cpu * scale:.2f} | {wall * scale:.2f} | {p.reads / cpu:,.0f} "
              f"| {cpu / p.reads * 1e6:.1f} us |", flush=True)
    media.close()
    bs.close()


def scan_table(work: Path) -> None:
    import bench_scan

    from triage.blocks.build import build_blockset

    big = bench_scan.build(work, {"big"})["big"]
    image = big["image"]
    tbs = work / "scan.tbs"
    if not tbs.exists():
        src = sorted(p for p in Path(big["src"]).rglob("*.bin"))[:400]
        build_blockset(src, tbs, category="A")
    size = image.stat().st_size
    subprocess.run(["cat", str(image)], stdout=subprocess.DEVNULL, check=True)
    print(f"\n## Full block scan on bench_scan.py's ext4 image ({size / 1e9:.2f} GB, "
          f"{big['files']:,} files), page cache, 2 workers")
    print("| run | wall s | GB/s of media | CPU s (all processes) | block pass: wall s, CPU s "
          "(its thread), windows |")
    print("|---|---:|---:|---:|---|")
    import json

    for rep in range(2):
        for label, extra in (("triage scan", []),
                             ("triage scan --blockset", ["--blockset", str(tbs)])):
            out = work / f"out-{len(extra)}"
            r0 = os.times()
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "triage", "scan", str(image), "--out",
                            str(out), "--force", "--quiet", "--workers", "2", "--algorithms",
                            "md5,sha1", *extra], check=False, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            wall = time.monotonic() - t0
            r1 = os.times()
            cpu = (r1.children_user - r0.children_user) + (r1.children_system
                                                           - r0.children_system)
            bpass = json.loads((out / "summary.json").read_text()).get("block_scan")
            extra_col = (f"{bpass['elapsed_seconds']:.1f}, {bpass['cpu_seconds']:.1f}, "
                         f"{bpass['windows_hashed']:,}" if bpass else "-")
            print(f"| {label} | {wall:.1f} | {size / wall / 1e9:.2f} | {cpu:.1f} "
                  f"| {extra_col} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/triage-sample-bench"))
    ap.add_argument("--only", default="cpu,model,scan")
    a = ap.parse_args()
    only = set(a.only.split(","))
    print(f"ALIGN {ALIGN} B windows; numpy {np.__version__}; {os.cpu_count()} CPUs")
    if "cpu" in only:
        cpu_table(a.workdir)
    if "model" in only:
        model_table()
    if "scan" in only:
        scan_table(a.workdir)


if __name__ == "__main__":
    main()
