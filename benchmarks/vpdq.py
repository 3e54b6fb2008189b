"""vPDQ benchmark: decode + PDQ speed per core, a 10-minute video's cost, the frame search,
and what ``--vpdq`` costs a scan of an image that holds no video.

    python benchmarks/vpdq.py [--seconds 10] [--set-videos 2000] [--set-frames 1000]
                              [--query-videos 100] [--query-frames 300] [--files 5000]
                              [--repeat 3] [--workdir /var/tmp/triage-vpdq]
                              [--skip-decode] [--skip-search] [--skip-scan]
                              [--tdb [--keep-tdb]]

1. Decode + PDQ, one core (``thread_count`` 1, as in a worker): H.264 videos drawn here
   (moving gradients and shapes, 30 fps, libx264 ``medium``) at 480p and 1080p; frames decoded
   per second, frames hashed per second (one a second of video: vPDQ's default) and seconds
   of video per CPU second; a 10-minute video's cost is extrapolated from the latter (decoding
   every frame dominates: the hashed frames are 1/30 of them).
2. Frame search: ``--set-videos`` x ``--set-frames`` random PDQ frames (fixed seed) in the
   frame index (``perceptual.vsets.VpdqIndex``, the PDQ multi-index), queried with
   ``--query-videos`` x ``--query-frames`` frames, 1% of them planted near matches (1..31 bits
   from a set frame) that must all be found; time per query frame, extrapolated to 10k videos.
   The target is 100M frames (100k x 1,000); at the default 2M the index fits this shared
   machine. Note on extrapolation: past 2^24 rows the pieces' buckets no longer split, so the
   candidates per probe grow with the index size (see the printed estimate).
2b. ``--tdb``: random frames (fixed seeds) compiled into a ``.tdb`` vPDQ section
   (``hashsets.vpdqsection``: what ``hashset import`` writes), its size, the time to open it (a worker's start-up), and
   ``--query-videos`` x ``--query-frames`` scanned videos matched against it (``match_video``),
   extrapolated linearly to 10k videos. The frames are made one video at a time (each from
   its own seed) and streamed into the section in a child process, whose peak RSS is the
   import's. Measured here (2 shared cores, 23 GB, ``nice -n 10 ... --skip-decode --skip-search
   --skip-scan --tdb --set-videos 100000 --query-videos 300 --query-frames 60``): 100M frames
   (100k x 1,000) built + written in 196 s, 8.26 GiB (89 B a frame), peak RSS 0.69 GiB; open
   0.6 ms; 300 videos x 60 frames in 37.4 s (2,080 us a frame): 10k x 60 ~20.8 min of one
   core. 20M: 30.5 s, 2.00 GiB, 0.54 GiB, 565 us a frame (the in-memory build before: 27 s
   at 4.4 GB peak RSS; 100M needed ~21 GB and was not built).
3. ``--vpdq`` on an ext4 image of ``--files`` small files (text, JPEG and PNG pictures, no
   video): scans alternately plain, ``--pdq`` and ``--vpdq``, median of ``--repeat``.

Not part of CI. Prints one table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triage.perceptual.video import compute_vpdq, match_video
from triage.perceptual.vsets import VpdqIndex, VpdqSet, VpdqVideo


def draw(n: int, w: int, h: int, fps: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        s = i // fps
        r = np.random.default_rng(s)
        a, b = r.uniform(-3, 3, 2)
        img = np.empty((h, w, 3), np.uint8)
        img[..., 0] = ((xx * a + yy * b + 3 * i) % 255).astype(np.uint8)
        img[..., 1] = ((xx * b - yy * a) % 255).astype(np.uint8)
        cx, cy = r.uniform(0, w), r.uniform(0, h)
        img[..., 2] = np.where((xx - cx - 4 * (i % fps)) ** 2 + (yy - cy) ** 2
                               < (h / 6) ** 2, 255, 0)
        yield img


def make_video(path: Path, w: int, h: int, seconds: int, fps: int = 30) -> Path:
    import av

    if path.exists():
        return path
    with av.open(str(path), "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        for img in draw(seconds * fps, w, h, fps):
            for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return path


def decode_speed(workdir: Path, seconds: int, rows: list[tuple[str, str]]) -> None:
    import av

    for name, (w, h) in (("480p", (854, 480)), ("1080p", (1920, 1080))):
        path = make_video(workdir / f"{name}-{seconds}s.mp4", w, h, seconds)
        data = path.read_bytes()
        with av.open(str(path)) as c:
            decoded = sum(1 for _ in c.decode(video=0))
        times = []
        for _ in range(3):
            t0 = time.process_time()
            frames, duration, why = compute_vpdq(data)
            times.append(time.process_time() - t0)
            assert why is None and len(frames) == seconds, (why, len(frames))
        cpu = min(times)
        rows.append((f"{name} H.264 ({w}x{h}, 30 fps, {len(data) / seconds / 1e3:.0f} kB/s): "
                     "decode + PDQ, one core",
                     f"{decoded / cpu:,.0f} frames decoded/s, {len(frames) / cpu:,.1f} hashed/s, "
                     f"{seconds / cpu:,.1f} s of video per CPU s"))
        rows.append((f"{name}: a 10-minute video (extrapolated from {seconds} s)",
                     f"{600 * cpu / seconds:,.1f} CPU s"))


def random_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def flip(h: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    out = h.copy()
    for b in rng.choice(256, bits, replace=False):
        out[b // 8] ^= 1 << (7 - b % 8)
    return out


def search_speed(args, rows: list[tuple[str, str]]) -> None:
    rng = np.random.default_rng(20261206)
    n = args.set_videos * args.set_frames
    t0 = time.perf_counter()
    hashes = random_hashes(rng, n)
    videos = [VpdqVideo(f"v{i}", hashes[i * args.set_frames:(i + 1) * args.set_frames],
                        np.arange(args.set_frames, dtype=np.float32))
              for i in range(args.set_videos)]
    built = VpdqIndex.build([VpdqSet("bench", "bench", "1", "0" * 64, videos)])
    d = Path(tempfile.mkdtemp(dir=args.workdir))
    built.save(d)
    del built, videos
    index = VpdqIndex.open(d)
    rows.append((f"frame index: {n:,} frames ({args.set_videos:,} videos x "
                 f"{args.set_frames:,}), built + saved", f"{time.perf_counter() - t0:,.1f} s"))
    # query videos: random frames, 1% planted near a set frame
    planted = 0
    queries = []
    for v in range(args.query_videos):
        q = random_hashes(rng, args.query_frames)
        for i in range(args.query_frames):
            if rng.random() < 0.01:
                q[i] = flip(hashes[rng.integers(n)], int(rng.integers(1, 32)), rng)
                planted += 1
        queries.append([(i, 100, q[i].tobytes().hex(), float(i)) for i in range(len(q))])
    found = 0
    t0 = time.perf_counter()
    for frames in queries:
        for _, _, pdq, _ in frames:
            rows_, _ = index.pdq.search(pdq, 31)
            found += len(rows_) > 0
    elapsed = time.perf_counter() - t0
    total = args.query_videos * args.query_frames
    assert found >= planted, (found, planted)  # every planted near frame is found
    per = elapsed / total
    rows.append((f"frame search: {total:,} query frames ({args.query_videos} videos x "
                 f"{args.query_frames}), {planted} planted, all found",
                 f"{elapsed:,.2f} s, {per * 1e6:,.0f} us a frame"))
    t0 = time.perf_counter()
    for frames in queries[:10]:
        match_video(frames, index)
    rows.append(("match_video (search + shares), per 300-frame video",
                 f"{(time.perf_counter() - t0) / 10 * 1e3:,.0f} ms"))
    # 10k videos x 300 frames against 100M: candidates per probe grow ~ rows / 2^23 once the
    # buckets stop splitting (pieces of 23-24 bits); at n rows the buckets hold ~ n / 2^bits
    bits = max(4, int(np.ceil(np.log2(max(n, 2)))))
    now = n / 2 ** min(23, bits)
    at100m = 100e6 / 2 ** 23
    factor = max(1.0, at100m / max(now, 1e-9))
    est = 10_000 * 300 * per * factor
    rows.append(("10k videos x 300 frames vs 100M frames (extrapolated, one core)",
                 f"~{est / 3600:,.1f} h one core (x{factor:,.1f} candidates a probe vs "
                 f"{n / 1e6:g}M); ~{est / 3600 / 2:,.1f} h on 2"))
    shutil.rmtree(d, ignore_errors=True)


def set_frames(seed: int, video: int, frames: int) -> np.ndarray:
    """Set video ``video``'s random frames, made again from its own seed whenever needed (the
    benchmark never holds the 100M frames)."""
    return np.random.default_rng([seed, video]).integers(0, 256, (frames, 32), dtype=np.uint8)


def build_tdb(path: Path, videos: int, frames: int, seed: int, result) -> None:
    """In a child process (its peak RSS is the import's): the set's videos made one at a
    time and streamed into ``VpdqRows``, written as ``hashset import`` writes the index."""
    import resource

    from triage.matching.categories import KNOWN_BAD
    from triage.hashsets import tdb
    from triage.hashsets.loader import _meta
    from triage.hashsets.store import EntryStore
    from triage.hashsets.vpdqsection import VpdqRows

    t0 = time.perf_counter()
    times = np.arange(frames, dtype=np.float32)
    made = (VpdqVideo(f"v{i}", set_frames(seed, i, frames), times, frames)
            for i in range(videos))
    store = EntryStore(tmpdir=path.parent)
    section = VpdqRows(store, path.parent)
    section.add_set(VpdqSet("bench", "bench", "A", "0" * 64), made)
    streamed = time.perf_counter() - t0
    meta = _meta("bench", KNOWN_BAD, None, [{
        "path": "bench", "name": "bench", "format": "vpdq", "sha256": "0" * 64, "bytes": 0,
        "records": 0, "skipped": 0, "dropped_empty": 0}])
    tdb.write_index(path, store.finish(), meta, None, section)
    section.close()
    store.close()
    result.put({"seconds": time.perf_counter() - t0, "streamed": streamed,
                "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


def tdb_search(args, rows: list[tuple[str, str]]) -> None:
    """The compiled frame index (``.tdb`` vPDQ section): build + write (in a child process,
    frames made one video at a time: its peak RSS is the import's), open (a header read and
    an mmap), then ``--query-videos`` x ``--query-frames`` scanned frames searched in it (1%
    planted near matches, every planted frame's set video reported), extrapolated linearly to
    10k videos."""
    import multiprocessing

    from triage.hashsets import tdb
    from triage.hashsets.vpdqsection import open_vpdq

    seed = 20261207
    n = args.set_videos * args.set_frames
    path = args.workdir / "bench-vpdq.tdb"
    ctx = multiprocessing.get_context("spawn")
    result = ctx.Queue()
    child = ctx.Process(target=build_tdb, args=(path, args.set_videos, args.set_frames, seed,
                                                 result))
    child.start()
    built = result.get()
    child.join()
    size = path.stat().st_size
    rows.append((f".tdb vPDQ section: {n:,} frames ({args.set_videos:,} videos x "
                 f"{args.set_frames:,}), generated + streamed + built + written",
                 f"{built['seconds']:,.1f} s ({built['streamed']:,.1f} s generating and "
                 f"streaming the frames), {size / 2**30:,.2f} GiB ({size / n:,.1f} B a frame)"))
    rows.append(("peak RSS of that import (child process)",
                 f"{built['maxrss'] / 2**30:,.2f} GiB ({built['maxrss'] / n:,.1f} B a frame)"))
    t0 = time.perf_counter()
    index = open_vpdq(path)
    rows.append(("open (header check + mmap, what each worker does at start-up)",
                 f"{(time.perf_counter() - t0) * 1e3:,.1f} ms"))
    rng = np.random.default_rng(seed + 1)
    planted = 0
    queries, expected = [], []
    for _ in range(args.query_videos):
        q = random_hashes(rng, args.query_frames)
        want = set()
        for i in range(args.query_frames):
            if rng.random() < 0.01:
                v = int(rng.integers(args.set_videos))
                f = int(rng.integers(args.set_frames))
                q[i] = flip(set_frames(seed, v, args.set_frames)[f], int(rng.integers(1, 32)),
                            rng)
                want.add(f"v{v}")
                planted += 1
        queries.append([(i, 100, q[i].tobytes().hex(), float(i)) for i in range(len(q))])
        expected.append(want)
    t0 = time.perf_counter()
    missed = 0
    for frames, want in zip(queries, expected):
        got = {m["video"] for m in match_video(frames, index, query_pct=0, target_pct=0)}
        missed += len(want - got)
    elapsed = time.perf_counter() - t0
    total = args.query_videos * args.query_frames
    assert not missed, f"{missed} planted frames' videos not reported"
    rows.append((f"match_video, {args.query_videos:,} scanned videos x {args.query_frames} "
                 f"frames ({planted} planted, every one's video reported)",
                 f"{elapsed:,.1f} s, {elapsed / total * 1e6:,.0f} us a frame"))
    est = elapsed / args.query_videos * 10_000
    rows.append((f"10k scanned videos x {args.query_frames} frames vs this index "
                 "(linear, one core)", f"~{est / 60:,.1f} min one core, ~{est / 120:,.1f} min "
                 "on 2 workers"))
    del index
    verify = time.perf_counter()
    ok = tdb.verify(path)
    rows.append(("integrity check of the file (SHA-256 of its data sections)",
                 f"{'verified' if ok else 'FAILED'} in {time.perf_counter() - verify:,.1f} s"))
    if not args.keep_tdb:
        path.unlink()


def scan_cost(args, rows: list[tuple[str, str]]) -> None:
    from PIL import Image

    src = args.workdir / "novideo-src"
    image = args.workdir / "novideo.img"
    if not image.exists():
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        rnd = random.Random(7)
        for i in range(args.files):
            d = src / f"d{i % 50}"
            d.mkdir(exist_ok=True)
            kind = i % 10
            if kind == 0:
                Image.effect_noise((64, 64), 40).convert("RGB").save(d / f"p{i}.jpg")
            elif kind == 1:
                Image.effect_noise((64, 64), 60).save(d / f"p{i}.png")
            else:
                (d / f"t{i}.txt").write_bytes(rnd.randbytes(rnd.randint(100, 20_000)))
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image),
                        "256M"], check=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    results: dict[str, list[float]] = {"plain": [], "--pdq": [], "--vpdq": []}
    for _ in range(args.repeat):
        for name in results:
            out = args.workdir / "out"
            shutil.rmtree(out, ignore_errors=True)
            flags = [] if name == "plain" else [name]
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "triage", "scan", str(image), "--out",
                            str(out), "-q", "--workers", "2", "--formats", "csv", *flags],
                           check=False, env=env, capture_output=True)
            results[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in results.items()}
    rows.append((f"scan of {args.files:,} files, no video (median of {args.repeat})",
                 ", ".join(f"{k} {v:.2f} s" for k, v in med.items())))
    rows.append(("--vpdq over --pdq on that image",
                 f"{med['--vpdq'] - med['--pdq']:+.2f} s ({(med['--vpdq'] / med['--pdq'] - 1) * 100:+.1f} %)"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--set-videos", type=int, default=2000)
    ap.add_argument("--set-frames", type=int, default=1000)
    ap.add_argument("--query-videos", type=int, default=100)
    ap.add_argument("--query-frames", type=int, default=300)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/triage-vpdq"))
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--skip-scan", action="store_true")
    ap.add_argument("--tdb", action="store_true",
                    help="also the compiled (.tdb) frame index: build, open, 10k-video search")
    ap.add_argument("--keep-tdb", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    if not args.skip_decode:
        decode_speed(args.workdir, args.seconds, rows)
    if not args.skip_search:
        search_speed(args, rows)
    if args.tdb:
        tdb_search(args, rows)
    if not args.skip_scan:
        scan_cost(args, rows)
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")


if __name__ == "__main__":
    main()
