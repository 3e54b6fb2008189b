"""Lab benchmark: the queue's cost per exhibit, recovery after a SIGKILL, re-match speed.

    python benchmarks/lab.py --workdir /var/tmp/triage-lab-bench [--parts queue,kill,rematch]
                             [--exhibits 6] [--mib 200] [--records 1000000] [--speed-images]

* queue: N exhibits (ext4 images of seeded random files built with mke2fs -d, ``--mib`` each,
  plus the small test images; ``--speed-images`` adds bench_scan.py's 2.58 GB image) scanned
  one after the other with plain ``triage scan`` (the sum of their wall times), then submitted
  to a lab of 1 and of 2 ``triage lab worker`` processes on this machine (wall time from
  ``submit`` to the last exhibit done). Overhead per exhibit = (lab with 1 worker - sum of
  plain scans) / N: what the queue, Redis and the worker add.
* kill: one exhibit on worker A, SIGKILL of A (and its hashing processes) half-way, worker B
  running: seconds from the kill to the exhibit's completion, with the visibility timeout and
  lease the run uses (printed), against the seconds the scan takes alone.
* rematch: a files.jsonl of ``--records`` records (realistic lines: every field, MD5/SHA-1/
  SHA-256, ~1% of them listed) re-matched against a 500,000-entry set compiled to .tdb:
  seconds for files.jsonl + summary.json, and with hits.csv + report.html.

Redis is started here on a free port in the work folder and stopped at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SETS = REPO / "testimages" / "hashsets"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(folder), "--appendonly", "yes", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def images(workdir: Path, count: int, mib: int, speed: bool) -> list[Path]:
    from bench_scan import _mke2fs, _write_tree, build

    out = []
    for i in range(count):
        image = workdir / f"exhibit{i}.raw"
        if not image.exists():
            src = workdir / f"exhibit{i}-src"
            shutil.rmtree(src, ignore_errors=True)
            rng = random.Random(1000 + i)
            sizes = [rng.randint(1024, 2 << 20) for _ in range(mib * 1024 // 1024)]
            scale = mib * (1 << 20) / sum(sizes)
            sizes = [max(1, int(s * scale)) for s in sizes]
            total = _write_tree(src, sizes, 2000 + i)
            _mke2fs(src, image, total, len(sizes))
            shutil.rmtree(src)
        out.append(image)
    small = [REPO / "testimages" / n for n in ("fat.img", "ext4.img", "mbr.E01", "ntfs.img")]
    out += small
    if speed:
        out.append(build(workdir, {"big"})["big"]["image"])
    return out


HASHSETS = ["--hashset", str(SETS / "caid.csv"), "--known-good", str(SETS / "known-good.md5")]


def plain(evidence: list[Path], workdir: Path) -> float:
    total = 0.0
    for i, image in enumerate(evidence):
        out = workdir / "plain" / f"{i}-{image.name}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "triage", "scan", str(image), *HASHSETS,
                        "--out", str(out), "--quiet"], env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        total += time.perf_counter() - t
    return total


def worker(url: str, log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "triage", "lab", "worker", "--broker", url],
                            env={**ENV, **env}, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def lab_run(evidence: list[Path], workdir: Path, url: str, n_workers: int) -> float:
    from triage import lab

    case = workdir / f"case-{n_workers}w"
    shutil.rmtree(case, ignore_errors=True)
    procs = [worker(url, workdir / f"w{i}.log") for i in range(n_workers)]
    time.sleep(3)  # workers up before the clock starts: their start is not per-exhibit cost
    t = time.perf_counter()
    names = [f"{i}-{p.name}" for i, p in enumerate(evidence)]
    lab.submit(case, [str(p) for p in evidence], [str(SETS / "caid.csv")],
               [str(SETS / "known-good.md5")], exhibit_names=names, broker=url)
    status = lab.wait(case, url, timeout=3600)
    wall = time.perf_counter() - t
    for p in procs:
        kill(p)
    bad = [r for r in status["exhibits"] if r["state"] != "done"]
    assert not bad, bad
    return wall


def part_queue(args, url: str) -> None:
    evidence = images(args.workdir, args.exhibits, args.mib, args.speed_images)
    size = sum(p.stat().st_size for p in evidence)
    print(f"queue: {len(evidence)} exhibits, {size / 1e9:.2f} GB of images")
    plain(evidence, args.workdir)  # warm the page cache: every run reads from memory
    alone = plain(evidence, args.workdir)
    one = lab_run(evidence, args.workdir, url, 1)
    two = lab_run(evidence, args.workdir, url, 2)
    n = len(evidence)
    print(f"| sum of plain scans | {alone:.1f} s |")
    print(f"| lab, 1 worker | {one:.1f} s | overhead {(one - alone) / n:+.2f} s per exhibit |")
    print(f"| lab, 2 workers | {two:.1f} s | {alone / two:.2f}x the plain sum |")


def part_kill(args, url: str) -> None:
    from triage import lab

    evidence = args.workdir / "kill.raw"  # one larger exhibit, so the kill lands mid-scan
    if not evidence.exists():
        from bench_scan import _mke2fs, _write_tree

        src = args.workdir / "kill-src"
        shutil.rmtree(src, ignore_errors=True)
        rng = random.Random(99)
        sizes = [rng.randint(1 << 20, 4 << 20) for _ in range(args.kill_mib * 2 // 5)]
        total = _write_tree(src, sizes, 99)
        _mke2fs(src, evidence, total, len(sizes))
        shutil.rmtree(src)
    alone_dir = args.workdir / "kill-plain"
    shutil.rmtree(alone_dir, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "triage", "scan", str(evidence), *HASHSETS, "--out",
                    str(alone_dir), "--quiet"], env=ENV, stdout=subprocess.DEVNULL)
    alone = time.perf_counter() - t
    knobs = {"TRIAGE_LAB_VISIBILITY_TIMEOUT": str(args.visibility), "TRIAGE_LAB_LEASE": "5",
             "TRIAGE_LAB_RESTORE_INTERVAL": "1"}
    os.environ.update(knobs)
    case = args.workdir / "case-kill"
    shutil.rmtree(case, ignore_errors=True)
    a = worker(url, args.workdir / "wa.log", **knobs)
    time.sleep(3)
    lab.submit(case, [str(evidence)], [str(SETS / "caid.csv")], [str(SETS / "known-good.md5")],
               broker=url)
    while lab.status(case, url)["exhibits"][0]["state"] != "running":
        time.sleep(0.1)
    time.sleep(alone / 2)  # half-way through, by the plain scan's time
    row = lab.status(case, url)["exhibits"][0]
    p = row.get("progress") or {}
    if row["state"] != "running":
        kill(a)
        raise SystemExit("kill: the exhibit finished before the kill; raise --kill-mib")
        time.sleep(0.2)
    b = worker(url, args.workdir / "wb.log", **knobs)
    kill(a)
    t = time.perf_counter()
    status = lab.wait(case, url, timeout=3600, )
    took = time.perf_counter() - t
    kill(b)
    row = status["exhibits"][0]
    plain_lines = sorted((alone_dir / "files.jsonl").read_text().splitlines())
    lab_lines = (case / evidence.name / "files.jsonl").read_text().splitlines()
    same = sorted(lab_lines) == plain_lines
    print(f"kill: scan alone {alone:.1f} s; SIGKILL at {p['percent']}% -> done {took:.1f} s later "
          f"(visibility timeout {args.visibility} s, lease 5 s; resumed: {row.get('resumed')}; "
          f"records equal to the plain scan's: {same}, {len(lab_lines):,} lines)")


def part_rematch(args) -> None:
    from triage.hashsets import import_hashsets
    from triage.lab.rematching import rematch_run

    work = args.workdir / "rematch"
    shutil.rmtree(work, ignore_errors=True)
    run = work / "run"
    run.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "triage", "scan", str(REPO / "testimages" / "fat.img"),
                    "--out", str(run / "seed"), "--quiet"], env=ENV, stderr=subprocess.DEVNULL)
    template = json.loads((run / "seed" / "files.jsonl").read_text().splitlines()[0])
    summary = json.loads((run / "seed" / "summary.json").read_text())
    rng = random.Random(7)
    listed = []
    with open(run / "files.jsonl", "w") as fh:
        for i in range(args.records):
            content = rng.randbytes(16)
            rec = dict(template, path=f"/Users/someone/Pictures/{i // 1000:04d}/IMG_{i:07d}.JPG",
                       inode=str(1000 + i), size=1000 + i, md5=hashlib.md5(content).hexdigest(),
                       sha1=hashlib.sha1(content).hexdigest(),
                       sha256=hashlib.sha256(content).hexdigest(), category="unknown",
                       matches=[], error=None)
            if i % 100 == 0:
                listed.append((rec["md5"], rec["sha1"]))
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
    summary["totals"].update(files=args.records, known_bad_files=0)  # consistent with the lines
    summary["categories"] = {"unknown": args.records}
    summary["census"]["kinds"] = {template.get("kind") or "none": {"unknown": args.records}}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "seed").rename(work / "seed")
    src = work / "new.csv"
    with open(src, "w") as fh:
        fh.write("MD5,SHA1,Category\n")
        for md5, sha1 in listed:
            fh.write(f"{md5},{sha1},A\n")
        for _ in range(500_000 - len(listed)):
            c = rng.randbytes(16)
            fh.write(f"{hashlib.md5(c).hexdigest()},{hashlib.sha1(c).hexdigest()},B\n")
    tdb = work / "new.tdb"
    import_hashsets([src], tdb, name="new", kind="known-bad")
    size = (run / "files.jsonl").stat().st_size
    for formats in ("", "csv,html"):
        out = work / f"out-{formats or 'none'}"
        t = time.perf_counter()
        result = rematch_run(run, [str(tdb)], [], out=out, formats=formats)
        took = time.perf_counter() - t
        assert result["known_bad_files"] == len(listed), result
        print(f"rematch: {args.records:,} records ({size / 1e6:.0f} MB) against 500,000 entries, "
              f"reports [{formats or 'none'}]: {took:.2f} s ({result['known_bad_files']:,} hits)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/triage-lab-bench"))
    ap.add_argument("--parts", default="queue,kill,rematch")
    ap.add_argument("--exhibits", type=int, default=4)
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--visibility", type=int, default=20)
    ap.add_argument("--kill-mib", type=int, default=1500)
    ap.add_argument("--speed-images", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    if "rematch" in parts:
        part_rematch(args)
    if parts & {"queue", "kill"}:
        proc, url = start_redis(args.workdir)
        try:
            if "queue" in parts:
                part_queue(args, url)
            if "kill" in parts:
                part_kill(args, url)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
