"""Hash-set benchmark: import, index size, open time, RSS, batch lookups (issue 3 targets).

Generates a synthetic MD5+SHA-1 set from a fixed seed (random digests, never real hashes) as
md5sum text (``set.md5`` + ``set.sha1``, as md5sum/sha1sum would write them) and as VICS 2.0
JSON, then measures each step in a fresh child process (peak RSS from ``wait4``)::

    python benchmarks/hashsets.py                 # 10M records
    python benchmarks/hashsets.py --records 1000000
    python benchmarks/hashsets.py --huge          # also a 100M-record build (md5sum, ~12 GB text)
    python benchmarks/hashsets.py --bounds        # only the hostile-input bounds (issue 14)
    python benchmarks/hashsets.py --verify-cost INDEX.tdb   # only: cost of verifying an index

Targets: md5sum 10M <= 10 s, VICS 10M <= 40 s, peak RSS <= 600 MB, open <= 0.2 s, <= 40 bytes
per record, >= 1M lookups/s in batch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SEED = 20240603
CHUNK = 1_000_000
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_UPPER = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def _hex(digests: np.ndarray, upper: bool = False) -> np.ndarray:
    """(n, w) uint8 -> (n, 2w) ASCII hex (VICS exports are usually upper case)."""
    table = _HEX_UPPER if upper else _HEX
    out = np.empty((len(digests), digests.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = table[digests >> 4]
    out[:, 1::2] = table[digests & 15]
    return out


def _digits(values: np.ndarray, width: int, pad: int = ord("0")) -> np.ndarray:
    """Right-aligned decimal (n, width) ASCII; leading positions filled with ``pad``."""
    out = np.full((len(values), width), pad, dtype=np.uint8)
    v = values.astype(np.int64).copy()
    for col in range(width - 1, -1, -1):
        digit = (v % 10).astype(np.uint8) + ord("0")
        show = (v > 0) | (col == width - 1)
        out[show, col] = digit[show]
        v //= 10
    return out


def _const(text: bytes, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text, dtype=np.uint8), (n, len(text)))


def _chunk(rng: np.random.Generator, start: int, n: int) -> dict[str, np.ndarray]:
    return {
        "md5": rng.integers(0, 256, (n, 16), dtype=np.uint8),
        "sha1": rng.integers(0, 256, (n, 20), dtype=np.uint8),
        "category": rng.integers(0, 5, n),
        "size": (np.exp(rng.normal(np.log(200_000), 1.0, n)) + 1).astype(np.int64),
        "id": np.arange(start + 1, start + n + 1),
    }


def generate(folder: Path, records: int, vics: bool = True) -> dict[str, Path]:
    """Write set.md5, set.sha1 and (``vics``) set.json; reused when already there."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"md5": folder / "set.md5", "sha1": folder / "set.sha1", "vics": folder / "set.json"}
    stamp = folder / "generated.json"
    wanted = {"records": records, "seed": SEED, "vics": vics}
    if stamp.exists() and json.loads(stamp.read_text()) in (wanted, {**wanted, "vics": True}):
        return paths
    rng = np.random.default_rng(SEED)
    with open(paths["md5"], "wb") as f5, open(paths["sha1"], "wb") as f1, open(paths["vics"] if vics else os.devnull, "wb") as fj:
        fj.write(b'{"@odata.context":"http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Media","value":[\n')
        for start in range(0, records, CHUNK):
            n = min(CHUNK, records - start)
            c = _chunk(rng, start, n)
            name = np.hstack([_const(b"  media/", n), _digits(c["id"], 10), _const(b".jpg\n", n)])
            f5.write(np.hstack([_hex(c["md5"]), name]).tobytes())
            f1.write(np.hstack([_hex(c["sha1"]), name]).tobytes())
            sep = np.full((n, 2), ord(","), dtype=np.uint8)
            sep[:, 1] = ord("\n")
            if start + n == records:
                sep[-1] = (ord(" "), ord("\n"))
            rows = np.hstack([
                _const(b'{"MediaID":', n), _digits(c["id"], 10, ord(" ")),
                _const(b',"Category":', n), (c["category"].astype(np.uint8) + ord("0"))[:, None],
                _const(b',"MD5":"', n), _hex(c["md5"], upper=True),
                _const(b'","SHA1":"', n), _hex(c["sha1"], upper=True),
                _const(b'","MediaSize":', n), _digits(c["size"], 12, ord(" ")),
                _const(b"}", n), sep,
            ])
            if vics:
                fj.write(rows.tobytes())
        fj.write(b"]}\n")
    stamp.write_text(json.dumps(wanted))
    return paths


# -- measurements, each in a child process --------------------------------------------------

_CHILD_IMPORT = """
import sys
from triage.hashsets import import_hashsets
import_hashsets(sys.argv[2:], sys.argv[1], force=True)
"""

_CHILD_OPEN = """
import json, sys, time
import numpy as np
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
import triage.hashsets
from triage.hashsets import load_hashset
before = rss()
t = time.perf_counter()
hs = load_hashset(sys.argv[1])
opened = time.perf_counter() - t
after = rss()
table = hs.tables["md5"]
rng = np.random.default_rng(7)
n = 1_000_000
hits = table.keys[rng.integers(0, len(table.keys), n // 2)]
misses = rng.integers(0, 256, (n - n // 2, 16), dtype=np.uint8).view("S16").reshape(-1)
queries = np.concatenate([hits, misses]); rng.shuffle(queries)
t = time.perf_counter(); start, count = table.find_many(queries); cold = n / (time.perf_counter() - t)
found_raw = int((count > 0).sum())
queries2 = np.concatenate([table.keys[rng.integers(0, len(table.keys), n // 2)], misses]); rng.shuffle(queries2)
t = time.perf_counter(); table.find_many(queries2); raw = n / (time.perf_counter() - t)
as_bytes = [q.tobytes().ljust(16, b"\\0") for q in queries[:200_000].view("V16")]
t = time.perf_counter(); res = hs.lookup_many("md5", as_bytes); api = len(as_bytes) / (time.perf_counter() - t)
t = time.perf_counter()
for d in as_bytes[:100_000]:
    hs.lookup("md5", d)
single = 100_000 / (time.perf_counter() - t)
print(json.dumps({"open_s": opened, "rss_before": before, "rss_after_open": after, "rss_after_lookups": rss(),
                  "batch_raw_per_s": raw, "batch_cold_per_s": cold, "batch_api_per_s": api, "single_per_s": single,
                  "found": found_raw, "expected_found": n // 2}))
"""


def _child(code: str, *args: str) -> tuple[float, int, str, float]:
    """(wall seconds, peak RSS bytes, stdout, CPU seconds) of ``python -c code args``.

    The peak includes what this process held when the child was started (Linux keeps the
    larger of the two across exec), so nothing big is generated in this process before.

    CPU (user + sys, all threads) is reported too: on a shared machine wall time includes
    waiting for a core, CPU time does not."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"child failed: {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_maxrss * 1024, out.decode(), usage.ru_utime + usage.ru_stime


def _best(repeat: int, code: str, *args: str) -> tuple[float, int, str, float]:
    """Best of ``repeat`` runs (minimum wall and CPU, maximum peak RSS): the machine is shared."""
    runs = [_child(code, *args) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2], min(r[3] for r in runs)


def measure(folder: Path, records: int, vics: bool, repeat: int = 1) -> list[tuple[str, str, str]]:
    paths = generate(folder, records, vics)
    rows: list[tuple[str, str, str]] = []
    label = f"{records / 1e6:g}M"
    text_index = folder / "md5sum.tdb"
    wall, peak, _, cpu = _best(repeat, _CHILD_IMPORT, str(text_index), str(paths["md5"]), str(paths["sha1"]))
    timed = records == 10_000_000  # the time targets are for 10M records
    rows.append((f"import md5sum {label} (set.md5 + set.sha1)", f"{wall:.1f} s (CPU {cpu:.1f} s)", "<= 10 s" if timed else ""))
    rows.append(("  peak RSS", f"{peak / 2**20:.0f} MB", "<= 600 MB"))
    size = text_index.stat().st_size
    rows.append(("  index size", f"{size / 2**20:.0f} MB = {size / records:.1f} B/record", "<= 40 B"))
    if vics:
        vics_index = folder / "vics.tdb"
        wall, peak, _, cpu = _best(repeat, _CHILD_IMPORT, str(vics_index), str(paths["vics"]))
        rows.append((f"import VICS JSON {label} ({paths['vics'].stat().st_size / 2**30:.1f} GB)", f"{wall:.1f} s (CPU {cpu:.1f} s)", "<= 40 s" if timed else ""))
        rows.append(("  peak RSS", f"{peak / 2**20:.0f} MB", "<= 600 MB"))
        size = vics_index.stat().st_size
        rows.append(("  index size (with size filter)", f"{size / 2**20:.0f} MB = {size / records:.1f} B/record", "<= 40 B"))
    _, _, out, _ = _child(_CHILD_OPEN, str(text_index))
    m = json.loads(out)
    rows.append(("open index", f"{m['open_s'] * 1000:.1f} ms", "<= 200 ms"))
    rows.append(("  RSS before / after open", f"{m['rss_before'] / 2**20:.0f} / {m['rss_after_open'] / 2**20:.0f} MB", "flat"))
    rows.append(("  RSS after 1.3M lookups", f"{m['rss_after_lookups'] / 2**20:.0f} MB", "page cache"))
    rows.append(("batch lookups, first pass (page faults)", f"{m['batch_cold_per_s'] / 1e6:.2f} M/s", ""))
    rows.append(("batch lookups (find_many, 1M, 50% hits)", f"{m['batch_raw_per_s'] / 1e6:.2f} M/s", ">= 1 M/s"))
    rows.append(("batch lookups (lookup_many API, bytes in/out)", f"{m['batch_api_per_s'] / 1e6:.2f} M/s", ">= 1 M/s"))
    rows.append(("single lookups (lookup)", f"{m['single_per_s'] / 1e6:.2f} M/s", ""))
    assert m["found"] == m["expected_found"], m
    return rows


# -- hostile inputs: duplicates and an over-long line (issue 14) --------------------------

_NSRL_HEADER = b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\n'
_NSRL_ROW = b'"0123456789ABCDEF0123456789ABCDEF01234567","0123456789ABCDEF0123456789ABCDEF","01234567","x.jpg",1234,1,"1",""\n'

_CHILD_LOAD = """
import sys
from triage.errors import HashSetError
from triage.hashsets import load_hashset
try:
    load_hashset(sys.argv[1])
except HashSetError as exc:
    print(str(exc)[:120])
"""


def _repeat_file(path: Path, line: bytes, count: int, header: bytes = b"") -> Path:
    """``header`` then ``line`` ``count`` times (reused when already there)."""
    if not path.exists() or path.stat().st_size != len(header) + len(line) * count:
        with open(path, "wb") as out:
            out.write(header)
            block = line * 100_000
            for _ in range(count // 100_000):
                out.write(block)
            out.write(line * (count % 100_000))
    return path


def _zip_of(path: Path, name: str, parts: "list[tuple[bytes, int]]") -> Path:
    """A deflated zip whose one entry is each ``(bytes, repeat)`` in turn (streamed)."""
    import zipfile

    if not path.exists():
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, \
                zf.open(name, "w", force_zip64=True) as entry:
            for data, repeat in parts:
                block = data * max(1, (1 << 20) // len(data))
                n = max(1, (1 << 20) // len(data))
                for _ in range(repeat // n):
                    entry.write(block)
                entry.write(data * (repeat % n))
    return path


def bounds(folder: Path) -> list[tuple[str, str, str]]:
    """Peak RSS and time of duplicate-heavy sets and an over-long zipped line."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    same = b"0123456789abcdef0123456789abcdef  x.jpg\n"
    for count in (10_000_000, 30_000_000):
        src = _repeat_file(folder / f"same-{count // 10**6}M.md5", same, count)
        wall, peak, _, cpu = _child(_CHILD_IMPORT, str(folder / "same.tdb"), str(src))
        rows.append((f"import {count // 10**6}M identical md5sum lines", f"{wall:.1f} s (CPU {cpu:.1f} s), {peak / 2**20:.0f} MB", "<= 400 MB"))
    # generated in a child: a child's ru_maxrss includes its parent's RSS at fork (vfork + exec)
    _child(f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import hashsets; "
           f"hashsets.generate(hashsets.Path({str(folder / 'random-10M')!r}), 10_000_000, False)")
    paths = {"md5": folder / "random-10M" / "set.md5"}
    wall, peak, _, cpu = _child(_CHILD_IMPORT, str(folder / "random.tdb"), str(paths["md5"]))
    rows.append(("import 10M random md5sum lines", f"{wall:.1f} s (CPU {cpu:.1f} s), {peak / 2**20:.0f} MB", "<= 400 MB"))
    dup_zip = _zip_of(folder / "nsrl-dup-30M.zip", "NSRLFile.txt", [(_NSRL_HEADER, 1), (_NSRL_ROW, 30_000_000)])
    wall, peak, _, cpu = _child(_CHILD_LOAD, str(dup_zip))
    rows.append(("--hashset zip of 30M duplicate NSRL lines", f"{wall:.1f} s (CPU {cpu:.1f} s), {peak / 2**20:.0f} MB", "<= 400 MB"))
    bomb = _zip_of(folder / "nsrl-long-line.zip", "NSRLFile.txt", [(_NSRL_HEADER, 1), (b"a", 4 << 30)])
    wall, peak, out, cpu = _child(_CHILD_LOAD, str(bomb))
    rows.append((f"--hashset {bomb.stat().st_size / 2**20:.0f} MB zip, one 4 GiB line", f"{wall:.1f} s (CPU {cpu:.1f} s), {peak / 2**20:.0f} MB", "refused at 64 KiB"))
    rows.append(("  message", out.strip()[:60], ""))
    return rows


_CHILD_VERIFY = """
import json, sys, time
from triage.hashsets import tdb
t = time.perf_counter(); c = time.process_time()
digest = tdb.sections_digest(sys.argv[1])
print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""


def verify_cost(index: Path) -> list[tuple[str, str, str]]:
    """Time to re-hash an index's data sections (what a scan does beside the scan)."""
    size = index.stat().st_size
    rows = []
    for label in ("first (page cache as found)", "again (warm cache)"):
        _, peak, out, _ = _child(_CHILD_VERIFY, str(index))
        m = json.loads(out)
        rows.append((f"verify {size / 2**30:.2f} GB index, {label}",
                     f"{m['wall']:.1f} s (CPU {m['cpu']:.1f} s), {size / m['wall'] / 2**30:.2f} GB/s", ""))
        rows.append(("  peak RSS", f"{peak / 2**20:.0f} MB", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "triage-hashset-bench")
    parser.add_argument("--huge", action="store_true", help="also build a 100M-record index (md5sum text)")
    parser.add_argument("--no-vics", action="store_true", help="skip the VICS JSON import")
    parser.add_argument("--repeat", type=int, default=1, help="imports: best of N runs (shared machines)")
    parser.add_argument("--bounds", action="store_true", help="only the duplicate / over-long line bounds")
    parser.add_argument("--verify-cost", type=Path, metavar="INDEX", help="only: time to verify INDEX")
    args = parser.parse_args()
    if args.bounds or args.verify_cost:
        _print(bounds(args.dir / "bounds") if args.bounds else verify_cost(args.verify_cost))
        return
    t = time.monotonic()
    generate(args.dir / str(args.records), args.records, not args.no_vics)
    print(f"generated {args.records:,} records in {time.monotonic() - t:.0f} s under {args.dir}", file=sys.stderr)
    _print(measure(args.dir / str(args.records), args.records, vics=not args.no_vics, repeat=args.repeat))
    if args.huge:
        huge = 100_000_000
        t = time.monotonic()
        generate(args.dir / str(huge), huge, vics=False)
        print(f"generated {huge:,} records in {time.monotonic() - t:.0f} s", file=sys.stderr)
        _print(measure(args.dir / str(huge), huge, vics=False))


def _print(rows: list[tuple[str, str, str]]) -> None:
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{'measure':<54}  {'result':>30}  target   (load average {load} on {os.cpu_count()} cores)")
    for name, value, target in rows:
        print(f"{name:<54}  {value:>30}  {target}", flush=True)


if __name__ == "__main__":
    main()
