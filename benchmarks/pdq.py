"""Census and PDQ benchmark: what the census costs a scan, and how fast near-duplicate search is.

    python benchmarks/pdq.py [--files 20000] [--set 10000000] [--queries 100000] [--workers 2]
                             [--workdir /var/tmp/triage-pdq] [--skip-scan] [--skip-search]

1. Census cost per file next to hashing cost per file (the same small files, in memory), and the
   signature table next to ``puremagic`` and ``filetype`` (when installed) on the same heads.
2. Census cost in a real scan: an ext4 image of ``--files`` small files of mixed types
   (``mke2fs -d``), scanned alternately with and without the census inspector.
3. Near-duplicate search: ``--set`` random PDQ hashes (fixed seed) compiled into the index,
   ``--queries`` pictures' hashes of which 1% are planted near matches (1..31 bits away); the
   search runs in ``--workers`` processes, as in a scan. Every planted match must be found.
4. PDQ hashing cost per picture (drawn with Pillow) at a few sizes.

Prints one table. Not part of CI: it needs about 3 GB of memory and a few minutes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triage.content.census import inspect_census  # noqa: E402
from triage.content.hashing import HEAD, Digest  # noqa: E402
from triage.perceptual.index import PdqIndex, PdqSet  # noqa: E402
from triage.perceptual.sets import load_pdq_set  # noqa: E402
from triage.records import FileRecord  # noqa: E402

SEED = 20261125
ROWS: list[tuple[str, str]] = []


def row(what: str, value: str) -> None:
    ROWS.append((what, value))
    print(f"  {what:<58} {value}", flush=True)


# ---------------------------------------------------------------------------------------------
# Sample files


def _picture(rng: random.Random, fmt: str) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (rng.randint(16, 96), rng.randint(16, 96)),
                    tuple(rng.randrange(256) for _ in range(3)))
    ImageDraw.Draw(img).ellipse([2, 2, 12, 12], fill=(0, 0, 0))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def mixed_files(n: int, seed: int = SEED) -> list[tuple[str, bytes]]:
    """Small files of mixed types and sizes (0.2-8 KiB), a fifth of them misnamed."""
    rng = random.Random(seed)
    pictures = {f: [_picture(rng, f) for _ in range(20)] for f in ("JPEG", "PNG", "GIF")}
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.3:
            fmt = rng.choice(list(pictures))
            data, ext = rng.choice(pictures[fmt]), {"JPEG": "jpg", "PNG": "png", "GIF": "gif"}[fmt]
        elif r < 0.4:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                z.writestr("a.txt", rng.randbytes(rng.randint(10, 2000)))
            data, ext = buf.getvalue(), "zip"
        elif r < 0.5:
            data, ext = gzip.compress(rng.randbytes(rng.randint(100, 4000))), "gz"
        elif r < 0.6:
            data, ext = b"%PDF-1.4\n" + rng.randbytes(rng.randint(200, 6000)), "pdf"
        elif r < 0.8:
            words = [rng.choice(["triage", "file", "disk", "hash", "set", "picture"])
                     for _ in range(rng.randint(30, 1200))]
            data, ext = " ".join(words).encode(), "txt"
        else:
            data, ext = rng.randbytes(rng.randint(200, 8192)), "bin"
        if rng.random() < 0.2:
            ext = rng.choice(["txt", "dll", "jpg", "doc"])
        out.append((f"f{i:06d}.{ext}", data))
    return out


# ---------------------------------------------------------------------------------------------
# 1. Census per file vs hashing per file


def bench_census_micro(files: list[tuple[str, bytes]]) -> None:
    print("census, per file (in memory):")
    algorithms = ("md5", "sha1", "sha256")
    t0 = time.perf_counter()
    heads = []
    for _, data in files:
        d = Digest(algorithms)
        d.update(data)
        d.hexdigests()
        heads.append(d.head)
    hashing = (time.perf_counter() - t0) / len(files)
    records = [FileRecord("e", 0, "ext4", "/d/" + name, "1", len(data), False)
               for name, data in files]
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for rec, head in zip(records, heads):
            inspect_census(rec, head)
        best = min(best, (time.perf_counter() - t0) / len(files))
    row("hashing md5+sha1+sha256 (Digest), per file", f"{hashing * 1e6:8.1f} us")
    row("census inspector, per file", f"{best * 1e6:8.2f} us  "
        f"({100 * best / hashing:.1f}% of hashing)")
    libs = []
    try:
        import puremagic

        libs.append(("puremagic.from_string", lambda h: _quiet(puremagic.from_string, h)))
    except ImportError:
        pass
    try:
        import filetype

        libs.append(("filetype.guess", filetype.guess))
    except ImportError:
        pass
    for name, fn in libs:
        t0 = time.perf_counter()
        for head in heads:
            fn(head)
        per = (time.perf_counter() - t0) / len(heads)
        row(f"{name}, per file (same heads)", f"{per * 1e6:8.2f} us  "
            f"({per / best:.0f}x the table)")


def _quiet(fn, head: bytes):
    try:
        return fn(head)
    except Exception:  # noqa: BLE001 - puremagic raises when it knows nothing
        return None


# ---------------------------------------------------------------------------------------------
# 2. Census in a real scan


_NO_CENSUS = '''
import os
if os.environ.get("TRIAGE_BENCH_NO_CENSUS"):
    import triage.run.inspect as _i
    del _i.INSPECTORS[:]
'''


def bench_census_scan(files: list[tuple[str, bytes]], workdir: Path, workers: int,
                      repeat: int, image: Path | None = None) -> None:
    """Scans alternately with and without the census; ``image`` defaults to one built here
    from ``files`` (``--census-image`` measures the speed workloads instead)."""
    from triage.run.scan import ScanConfig, run_scan

    built = image is None
    tag = f"{len(files):,} mixed small files" if built else image.name
    print(f"census in a scan ({tag}, {workers} workers):")
    if built and shutil.which("mke2fs") is None:
        row("census in a scan", "skipped: mke2fs not installed")
        return
    if built:
        image = workdir / "census.img"
        if not image.exists():
            _build_census_image(files, workdir / "census-src", image)
    # spawned workers import triage afresh: a sitecustomize empties INSPECTORS there
    hook = workdir / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_NO_CENSUS)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(hook), str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])
    times: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for i in range(repeat):
        for census in ((False, True) if i % 2 == 0 else (True, False)):
            if census:
                os.environ.pop("TRIAGE_BENCH_NO_CENSUS", None)
            else:
                os.environ["TRIAGE_BENCH_NO_CENSUS"] = "1"
            out = workdir / "out"
            shutil.rmtree(out, ignore_errors=True)
            t0, c0 = time.perf_counter(), _cpu()
            outcome = run_scan(ScanConfig(evidence=[str(image)], out=out, workers=workers,
                                          formats=""))
            times[census].append(time.perf_counter() - t0)
            cpu[census].append(_cpu() - c0)
            kinds = sum(1 for line in (out / "files.jsonl").open() if '"kind":"' in line)
            assert (kinds > 0) == census, "the census switch did not reach the workers"
            assert not built or outcome.summary["totals"]["files"] >= len(files)
    os.environ.pop("TRIAGE_BENCH_NO_CENSUS", None)
    print(f"    wall times off {[round(t, 2) for t in times[False]]} "
          f"on {[round(t, 2) for t in times[True]]}")
    off, on = statistics.median(times[False]), statistics.median(times[True])
    row(f"{tag}: scan without census, wall (median)", f"{off:8.2f} s")
    row(f"{tag}: scan with census, wall (median)",
        f"{on:8.2f} s  ({100 * (on - off) / off:+.1f}%)")
    off, on = min(cpu[False]), min(cpu[True])
    row(f"{tag}: scan without census, CPU of all processes (best)", f"{off:8.2f} s")
    row(f"{tag}: scan with census, CPU of all processes (best)",
        f"{on:8.2f} s  ({100 * (on - off) / off:+.1f}%)")
    diffs = [b - a for a, b in zip(cpu[False], cpu[True])]
    row(f"{tag}: census CPU, median of paired differences",
        f"{statistics.median(diffs):+8.2f} s  ({100 * statistics.median(diffs) / off:+.1f}%; "
        f"pairs {', '.join(f'{d:+.2f}' for d in diffs)})")


def _build_census_image(files: list[tuple[str, bytes]], src: Path, image: Path) -> None:
    shutil.rmtree(src, ignore_errors=True)
    for i, (name, data) in enumerate(files):
        d = src / f"d{i // 1000:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    total = sum(len(d) for _, d in files)
    blocks = int((total * 1.3 + len(files) * 4096 * 1.2 + (32 << 20)) // 4096)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-N",
                    str(len(files) + 4096), "-d", str(src), str(image), str(blocks)],
                   check=True, env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"))


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the workers): unlike wall time,
    not inflated by other load on the machine."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------------------------------------
# 3. Near-duplicate search


def _flip(rng: np.random.Generator, h: np.ndarray, d: int) -> np.ndarray:
    bits = np.unpackbits(h)
    bits[rng.choice(256, d, replace=False)] ^= 1
    return np.packbits(bits)


def _search_worker(args: tuple[str, np.ndarray, int]) -> tuple[int, float, list]:
    directory, queries, threshold = args
    index = PdqIndex.open(directory)
    hexes = [bytes(q).hex() for q in queries]
    t0 = time.process_time()
    found = []
    for i, h in enumerate(hexes):
        rows, dist = index.search(h, threshold)
        if len(rows):
            found.append((i, rows.tolist(), dist.tolist()))
    return len(hexes), time.process_time() - t0, found


def bench_search(n_set: int, n_queries: int, workers: int, workdir: Path) -> None:
    print(f"near-duplicate search ({n_set:,} set hashes x {n_queries:,} pictures, "
          f"{workers} processes):")
    rng = np.random.default_rng(SEED)
    hashes = rng.integers(0, 256, (n_set, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, (n_queries, 32), dtype=np.uint8)
    planted = {}
    for i in rng.choice(n_queries, max(1, n_queries // 100), replace=False).tolist():
        target = int(rng.integers(n_set))
        d = int(rng.integers(1, 32))
        queries[i] = _flip(rng, hashes[target], d)
        planted[i] = (target, d)
    s = PdqSet("bench", "bench", "pdq-list", "-", hashes, np.zeros(n_set, np.uint16))
    t0 = time.perf_counter()
    index = PdqIndex.build([s])
    build = time.perf_counter() - t0
    directory = workdir / "pdq-index"
    shutil.rmtree(directory, ignore_errors=True)
    t0 = time.perf_counter()
    index.save(directory)
    save = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in directory.iterdir())
    del index, s
    row("index build (11 pieces)", f"{build:8.2f} s")
    row("index save", f"{save:8.2f} s  ({size / 2**30:.2f} GiB, mapped by the workers)")
    parts = np.array_split(np.arange(n_queries), workers)
    ctx = multiprocessing.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(workers) as pool:
        results = pool.map(_search_worker, [(str(directory), queries[p], 31) for p in parts])
    wall = time.perf_counter() - t0
    found = {}
    for part, (_, _, hits) in zip(parts, results):
        for i, rows, dist in hits:
            found[int(part[i])] = dict(zip(rows, dist))
    missed = [i for i, (target, d) in planted.items() if found.get(i, {}).get(target) != d]
    per_query = statistics.mean(t / n for n, t, _ in results)
    row("search, CPU per picture (one process)", f"{per_query * 1e6:8.0f} us")
    row(f"search, {n_queries:,} pictures: CPU of the busiest of {workers} processes",
        f"{max(t for _, t, _ in results):8.2f} s  (the wall time on {workers} free cores)")
    row(f"search, {n_queries:,} pictures on {workers} processes (wall, incl. start)",
        f"{wall:8.2f} s  (load average {os.getloadavg()[0]:.1f})")
    row("planted near matches found", f"{len(planted) - len(missed)}/{len(planted)}")
    extra = sum(len(v) for k, v in found.items() if k not in planted)
    row("other matches (random hashes within 31 bits: expected 0)", f"{extra}")
    if missed:
        raise SystemExit(f"missed planted matches: {missed[:10]}")
    shutil.rmtree(directory, ignore_errors=True)


def bench_list_parse(workdir: Path, n: int = 1_000_000) -> None:
    rng = np.random.default_rng(SEED + 1)
    path = workdir / "pdq-list.txt"
    with open(path, "w") as fh:
        for block in range(0, n, 100_000):
            hashes = rng.integers(0, 256, (min(100_000, n - block), 32), dtype=np.uint8)
            fh.write("".join(bytes(h).hex() + "\n" for h in hashes))
    t0 = time.perf_counter()
    s = load_pdq_set(path)
    dt = time.perf_counter() - t0
    assert s.entries == n
    row(f"load a plain PDQ list ({n:,} lines)", f"{dt:8.2f} s")
    path.unlink()


# ---------------------------------------------------------------------------------------------
# 4. PDQ hashing per picture


def bench_pdq_hashing() -> None:
    from PIL import Image, ImageDraw, ImageFilter

    from triage.perceptual import compute as pdq

    print("PDQ hashing, per picture:")
    for (w, h), fmt in [((640, 480), "JPEG"), ((4000, 3000), "JPEG"), ((4000, 3000), "PNG")]:
        rng = random.Random(w)
        img = Image.new("RGB", (w, h), (40, 90, 160))
        d = ImageDraw.Draw(img)
        for _ in range(30):
            x, y = rng.randrange(w), rng.randrange(h)
            d.ellipse([x, y, x + w // 6, y + h // 6], fill=tuple(rng.randrange(256)
                                                                 for _ in range(3)))
        img = img.filter(ImageFilter.GaussianBlur(w / 600))
        out = io.BytesIO()
        img.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        data = out.getvalue()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            hexhash, quality, reason = pdq.compute(data)
            times.append(time.perf_counter() - t0)
        assert reason is None, reason
        row(f"decode + PDQ, {w}x{h} {fmt} ({len(data) >> 10} KiB)",
            f"{min(times) * 1e3:8.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--set", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scan-workers", type=int, default=1,
                    help="workers of the census scans (1: least scheduling noise)")
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--skip-scan", action="store_true")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--census-image", type=Path, action="append", default=[],
                    help="also measure the census on this image (e.g. the speed workloads)")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="triage-pdq-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}")
    files = mixed_files(args.files)
    bench_census_micro(files)
    if not args.skip_scan:
        bench_census_scan(files, workdir, args.scan_workers, args.repeat)
        for image in args.census_image:
            bench_census_scan(files, workdir, args.scan_workers, args.repeat, image)
    if not args.skip_search:
        bench_search(args.set, args.queries, args.workers, workdir)
        bench_list_parse(workdir)
    bench_pdq_hashing()
    print("\n| measure | value |\n| --- | --- |")
    for what, value in ROWS:
        print(f"| {what} | {value.strip()} |")


if __name__ == "__main__":
    main()
