"""Block-set build and open benchmark (issue 17): prints a table.

    python benchmarks/blockset.py [--size-gb 1.5] [--workdir /var/tmp/triage-blockset-bench]
                                  [--synthetic-rows 50000000] [--budget-mib N]

1. Build: a deterministic reference folder of ``--size-gb`` of random payloads (file sizes
   log-uniform 100 KB .. 20 MB, like pictures and short videos) is built into a ``.tbs`` by
   ``triage blockset build`` in a child process: wall and CPU time, blocks per second, peak
   RSS of the child (``wait4``), bytes per block of the file. The folder is in the page cache
   (just written): the figure is the tool's cost, a real reference disk adds its read time.
2. Open: ``BlockSet.open`` (median of 20) and a 1M-digest batch lookup (lookups per second).
3. Scale (``--synthetic-rows N``): N random block digests (no file reading) go through the
   builder's external sort and writer in a child process: rows per second and peak RSS, the
   figures that say whether a billion-block set builds on a 24 GiB machine (RSS must not grow
   with N).

``--size-gb 10`` runs the issue's 10 GB case (needs ~2x that in free disk in --workdir).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_reference(folder: Path, size: int, seed: int = 17) -> tuple[int, int]:
    """Write (or reuse) the reference folder; returns (files, bytes)."""
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == f"{size} {seed}":
        files = [p for p in folder.rglob("*.bin")]
        return len(files), sum(p.stat().st_size for p in files)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    total = count = 0
    while total < size:
        n = int(np.exp(rng.uniform(np.log(100_000), np.log(20_000_000))))
        n = min(n, size - total) if size - total > 100_000 else n
        sub = folder / f"d{count // 500:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{count:06d}.bin").write_bytes(rng.bytes(n))
        total += n
        count += 1
    marker.write_text(f"{size} {seed}")
    return count, total


def run_measured(args: list[str]) -> tuple[float, float, int, str]:
    """Run a child and read its own rusage via wait4 (peak RSS is per process)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    output = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {output.strip()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, output


def synthetic_child(rows: int, out: Path, budget_mib: int | None) -> None:
    """Child: ``rows`` random digests through the builder's sort and writer (no files)."""
    from collections import Counter

    from triage.blocks.build import Builder

    budget = budget_mib * 1024 * 1024 if budget_mib else None
    builder = Builder(tmpdir=out.parent, budget=budget)
    rng = np.random.default_rng(5)
    per_file = 1_000_000
    done = 0
    while done < rows:
        n = min(per_file, rows - done)
        digests = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        builder.add_hashed(f"synthetic/{done // per_file:05d}", n * 4096, n, digests,
                           np.arange(n, dtype=np.int64), os.urandom(16), os.urandom(20), "A",
                           Counter())
        done += n
    builder.write(out, {"name": "synthetic", "source": {"kind": "files", "files": 0, "bytes": 0,
                                                          "blocks": rows}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=1.5)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/triage-blockset-bench"))
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--digest", default="xxh3-128")
    parser.add_argument("--budget-mib", type=int, default=None,
                        help="sort buffer (TRIAGE_HASHSET_MEMORY); default 64 MiB")
    parser.add_argument("--synthetic-rows", type=int, default=0)
    parser.add_argument("--synthetic-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.synthetic_child:
        synthetic_child(args.synthetic_child, args.out, args.budget_mib)
        return

    from triage.blocks.tbs import BlockSet

    args.workdir.mkdir(parents=True, exist_ok=True)
    rows_out: list[tuple[str, str]] = []
    if args.size_gb > 0:
        ref = args.workdir / f"ref-{args.size_gb:g}GB"
        t = time.monotonic()
        files, total = make_reference(ref, int(args.size_gb * 1e9))
        print(f"reference folder {ref}: {files} files, {total / 1e9:.2f} GB "
              f"(ready in {time.monotonic() - t:.0f} s)", flush=True)
        out = args.workdir / "bench.tbs"
        command = ["-m", "triage", "blockset", "build", str(ref), "--out", str(out), "--force",
                   "--block-size", str(args.block_size), "--digest", args.digest, "--category", "A"]
        if args.budget_mib:
            os.environ["TRIAGE_HASHSET_MEMORY"] = str(args.budget_mib)
        wall, cpu, rss, _ = run_measured(command)
        with BlockSet.open(out) as bs:
            blocks_in = bs.header.source.blocks
            kept = bs.n_blocks
            size = out.stat().st_size
        rows_out += [
            ("reference data", f"{total / 1e9:.2f} GB, {files} files, {blocks_in:,} blocks of "
                               f"{args.block_size} B"),
            ("build wall / CPU", f"{wall:.1f} s / {cpu:.1f} s"),
            ("build rate", f"{blocks_in / wall:,.0f} blocks/s ({total / wall / 1e6:,.0f} MB/s)"),
            ("peak RSS (build child)", f"{rss / 2**20:,.0f} MiB"),
            ("kept blocks", f"{kept:,}"),
            (".tbs size", f"{size:,} B = {size / kept:.2f} B/block (key table 16 B/block)"),
            ("10 GB extrapolated", f"{10e9 / (total / wall):,.0f} s at this rate "
                                   f"(~{10e9 / args.block_size / 1e6:.1f}M blocks)"),
        ]
        opens = []
        for _ in range(20):
            t = time.perf_counter()
            bs = BlockSet.open(out)
            opens.append(time.perf_counter() - t)
            bs.close()
        with BlockSet.open(out) as bs:
            rng = np.random.default_rng(1)
            queries = rng.integers(0, 256, size=(1_000_000, 16), dtype=np.uint8)
            hits = np.array(bs.keys[:: max(1, kept // 1000)]).view(np.uint8).reshape(-1, 12)
            queries[: len(hits), :12] = hits
            t = time.perf_counter()
            found = bs.lookup(queries)
            lookup = time.perf_counter() - t
            assert (found[: len(hits)] >= 0).all()
        rows_out += [
            ("open (median of 20)", f"{statistics.median(opens) * 1e3:.2f} ms"),
            ("batch lookup", f"{1e6 / lookup:,.0f} digests/s (1M, page cache)"),
        ]
    if args.synthetic_rows:
        out = args.workdir / "synthetic.tbs"
        command = [str(Path(__file__).resolve()), "--synthetic-child", str(args.synthetic_rows),
                   "--out", str(out)] + (["--budget-mib", str(args.budget_mib)] if args.budget_mib else [])
        wall, cpu, rss, _ = run_measured(command)
        size = out.stat().st_size
        rows_out += [
            ("synthetic rows (sort+write)", f"{args.synthetic_rows:,} in {wall:.1f} s "
                                            f"({args.synthetic_rows / wall:,.0f} rows/s, CPU {cpu:.1f} s)"),
            ("synthetic peak RSS", f"{rss / 2**20:,.0f} MiB"),
            ("synthetic .tbs", f"{size:,} B = {size / args.synthetic_rows:.2f} B/block"),
            ("1e9 blocks extrapolated", f"{1e9 / (args.synthetic_rows / wall) / 60:,.0f} min "
                                        "sort+write; RSS as above (buffers + file table)"),
        ]
        t = time.perf_counter()
        BlockSet.open(out).close()
        rows_out.append(("synthetic open", f"{(time.perf_counter() - t) * 1e3:.2f} ms"))
        out.unlink()
    rows_out.append(("machine", f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
                                f"at the end (other work shares the CPUs: CPU s is the cost)"))
    width = max(len(k) for k, _ in rows_out)
    print()
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 60}")
    for key, value in rows_out:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
