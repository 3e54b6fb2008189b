"""Cold-cache benchmark: does reading in physical block order pay when the data is not cached?

Drops the page cache (``/proc/sys/vm/drop_caches``, needs root) before every run, then times a
sequential ``dd`` read of the image (the device's streaming limit), ``triage scan`` with
``--order walk`` (directory order) and ``--order physical`` (files sorted by first data block),
and ``fiwalk -x``, alternately. Where the cache cannot be dropped it says so and stops: a warm
run says nothing about disk order.

    python benchmarks/cold.py IMAGE [--repeat 2] [--workers 2]

Use the big workload of ``bench_scan.py`` (``/var/tmp/triage-bench/big.raw``). Not in CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def timed(cmd: list[str]) -> float:
    if not drop_caches():
        raise SystemExit("cannot drop the page cache here (needs root): no cold-cache figures")
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", default="2")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="triage-cold-"))
    scan = [sys.executable, "-m", "triage", "scan", str(args.image), "--algorithms", "md5,sha1",
            "--workers", args.workers, "--out", str(out / "run"), "--force", "-q"]
    tools = {
        "dd bs=4M (sequential read)": ["dd", f"if={args.image}", "of=/dev/null", "bs=4M"],
        "triage --order walk": scan + ["--order", "walk"],
        "triage --order physical": scan + ["--order", "physical"],
        "fiwalk -x": ["fiwalk", "-x", str(args.image)],
    }
    best: dict[str, float] = {}
    try:
        for _ in range(args.repeat):
            for name, cmd in tools.items():
                if shutil.which(cmd[0]) is None and cmd[0] != sys.executable:
                    continue
                wall = timed(cmd)
                best[name] = min(wall, best.get(name, wall))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    size = args.image.stat().st_size
    print(f"\ncold cache, {args.image.name} ({size / 1e9:.2f} GB), best of {args.repeat}")
    print(f"{'tool':30} {'wall s':>8} {'MB/s':>8}")
    for name, wall in best.items():
        print(f"{name:30} {wall:8.2f} {size / wall / 1e6:8.0f}")


if __name__ == "__main__":
    main()
