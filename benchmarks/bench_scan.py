"""Scan-speed benchmark: triage against fiwalk and hashdeep on the same workloads.

Builds three deterministic workloads (seeded random content, ``mke2fs -d``, ``ewfacquire``),
then runs each tool alternately and prints one table with the hash-bound limit measured in the
same run. Not part of CI: the workloads take minutes and gigabytes to build.

    python benchmarks/bench_scan.py --workdir /var/tmp/triage-bench [--repeat 3] [--only big]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SEED = 20261125
MiB = 1 << 20


@dataclass
class Workload:
    name: str
    files: list[tuple[int, int]]  # (count, size range low..high) spec is expanded by build
    description: str


def _sizes(rng: random.Random, spec: list[tuple[int, int, int]]) -> list[int]:
    out = []
    for count, lo, hi in spec:
        out += [rng.randint(lo, hi) for _ in range(count)]
    return out


def _write_tree(root: Path, sizes: list[int], seed: int, per_dir: int = 500) -> int:
    """Seeded random files, ``per_dir`` to a directory; returns total bytes."""
    rng = random.Random(seed)
    total = 0
    for i, size in enumerate(sizes):
        d = root / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        with open(d / f"f{i:07d}.bin", "wb") as fh:
            left = size
            while left:
                n = min(left, 4 * MiB)
                fh.write(rng.randbytes(n))
                left -= n
        total += size
    return total


def _mke2fs(src: Path, image: Path, total: int, nfiles: int) -> None:
    blocks = int((total * 1.15 + nfiles * 4096 * 1.2 + 64 * MiB) // 4096)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000")
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-N", str(nfiles + 4096),
                    "-d", str(src), str(image), str(blocks)], check=True, env=env)


def build(workdir: Path, only: set[str]) -> dict[str, dict]:
    rng = random.Random(SEED)
    specs = {
        "big": [(15000, 1024, 60 * 1024), (3000, 100 * 1024, MiB), (10, 20 * MiB, 60 * MiB)],
        "small": [(200000, 0, 8 * 1024)],
    }
    out: dict[str, dict] = {}
    for name, spec in specs.items():
        sizes = _sizes(rng, spec)
        if name not in only and not (name == "big" and "e01" in only):
            continue
        src, image = workdir / f"{name}-src", workdir / f"{name}.raw"
        if not image.exists():
            if src.exists():
                shutil.rmtree(src)
            print(f"building {name}: {len(sizes)} files", file=sys.stderr)
            total = _write_tree(src, sizes, SEED + len(name))
            _mke2fs(src, image, total, len(sizes))
        out[name] = {"src": src, "image": image, "files": len(sizes), "bytes": sum(sizes)}
    if "e01" in only:
        e01 = workdir / "big-e01.E01"
        if not e01.exists():
            subprocess.run(["ewfacquire", "-u", "-q", "-t", str(workdir / "big-e01"), "-f",
                            "encase6", "-c", "fast", str(out["big"]["image"])],
                           check=True, stdout=subprocess.DEVNULL)
        out["e01"] = dict(out["big"], image=e01)
    return out


def hash_rate() -> float:
    """Single-core MD5+SHA-1 throughput in bytes/s (the hash-bound reference), measured in a
    child process so this process stays small (children inherit its peak RSS at fork)."""
    code = ("import hashlib,random,time\n"
            "r=random.Random(1); b=b''.join(r.randbytes(1<<20) for _ in range(256))\n"
            "t=time.perf_counter(); hashlib.md5(b).digest(); hashlib.sha1(b).digest()\n"
            "print(len(b)/(time.perf_counter()-t))")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child command (largest process of its tree)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = 0
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/triage-bench"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="big,e01,small")
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    loads = build(args.workdir, only)
    cores = os.cpu_count() or 1
    rate = hash_rate()
    rows = []
    for name, w in loads.items():
        limit = w["bytes"] / (rate * cores)
        tools: dict[str, list[str]] = {}
        for n in args.workers.split(","):
            out = args.workdir / f"out-{name}-{n}"
            tools[f"triage -w{n}"] = [sys.executable, "-m", "triage", "scan", str(w["image"]),
                                      "--algorithms", "md5,sha1", "--workers", n, "--out",
                                      str(out), "--force", "-q"]
        tools["fiwalk -x"] = ["fiwalk", "-x", str(w["image"])]
        if name != "e01":
            tools[f"hashdeep -j{cores}"] = ["hashdeep", "-r", "-c", "md5,sha1", "-j", str(cores),
                                            str(w["src"])]
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):  # alternate tools so drift hits all alike
            for tool, cmd in tools.items():
                if shutil.which(cmd[0]) is None and cmd[0] != sys.executable:
                    continue
                wall, rss = timed(cmd)
                if tool not in best or wall < best[tool][0]:
                    best[tool] = (wall, rss)
        fiwalk = best.get("fiwalk -x", (float("nan"), 0))[0]
        for tool, (wall, rss) in best.items():
            rows.append((name, w["files"], w["bytes"], tool, wall, wall / limit, fiwalk / wall,
                         rss, limit))
    print(f"\nsingle-core md5+sha1: {rate / MiB:.0f} MiB/s, cores: {cores}")
    print(f"{'workload':8} {'files':>7} {'GB':>6} {'tool':14} {'wall s':>8} {'x limit':>8} "
          f"{'vs fiwalk':>9} {'peak RSS MB':>11} {'limit s':>8}")
    for name, files, nbytes, tool, wall, xl, xf, rss, limit in rows:
        print(f"{name:8} {files:7d} {nbytes / 1e9:6.2f} {tool:14} {wall:8.2f} {xl:8.2f} "
              f"{xf:9.2f} {rss:11.0f} {limit:8.2f}")


if __name__ == "__main__":
    main()
