"""Scan under load: same results with the machine busy, and bounded memory and file handles.

Runs ``triage scan`` on an image twice — once alone, once while a CPU burner occupies a core —
sampling the whole process tree (main + workers) every 0.2 s for resident memory and open file
descriptors, then compares the two runs' records (order aside). Not part of CI.

    python benchmarks/load.py IMAGE [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def sample(pids: list[int]) -> tuple[int, int]:
    """(total RSS in KiB, open fds) of the processes."""
    rss = fds = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return rss, fds


def run(image: str, workers: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "triage", "scan", image, "--out", str(out), "--force", "-q",
           "--workers", str(workers), "--algorithms", "md5,sha1", "--formats", "csv"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak_rss = peak_fds = 0
    fds_seen = []
    while proc.poll() is None:
        rss, fds = sample(tree(proc.pid))
        peak_rss, peak_fds = max(peak_rss, rss), max(peak_fds, fds)
        fds_seen.append(fds)
        time.sleep(0.2)
    wall = time.perf_counter() - t
    records = sorted((r["volume_offset"], r["inode"], r["path"], r["md5"], r["sha1"])
                     for r in map(json.loads, (out / "files.jsonl").read_text().splitlines()))
    return {"wall": wall, "peak_rss_mb": peak_rss / 1024, "peak_fds": peak_fds,
            "fds_first_half_max": max(fds_seen[: len(fds_seen) // 2] or [0]),
            "fds_second_half_max": max(fds_seen[len(fds_seen) // 2:] or [0]),
            "records": records, "exit": proc.returncode}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        quiet = run(args.image, args.workers, Path(d) / "quiet")
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            loaded = run(args.image, args.workers, Path(d) / "loaded")
        finally:
            burner.kill()
    same = quiet["records"] == loaded["records"]
    print(f"{'run':8} {'wall s':>8} {'peak RSS MB':>12} {'peak fds':>9} {'fds 1st half':>12} "
          f"{'fds 2nd half':>12} {'exit':>5}")
    for name, r in (("quiet", quiet), ("loaded", loaded)):
        print(f"{name:8} {r['wall']:8.2f} {r['peak_rss_mb']:12.0f} {r['peak_fds']:9d} "
              f"{r['fds_first_half_max']:12d} {r['fds_second_half_max']:12d} {r['exit']:5d}")
    print(f"records: {len(quiet['records'])}, identical under load: {same}")


if __name__ == "__main__":
    main()
