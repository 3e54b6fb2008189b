"""vPDQ: PDQ of video frames sampled at an interval, computed in the worker (``--vpdq``).

For every file whose first bytes say video (``census``: mp4, mov, mkv, webm, avi ...; whatever
its name), the worker keeps the content of its single read (as for PDQ pictures, at most
``hashing.KEEP_LIMIT`` = 256 MiB: a larger video gets ``vpdq_error`` "too large"), decodes it
in memory with PyAV (FFmpeg inside the wheel; ``io.BytesIO`` of the content, never a file),
and hashes one frame every ``--vpdq-interval`` seconds with the same ``pdqhash`` as pictures,
as ThreatExchange's ``vpdq`` does: frames are counted from 0 in decoding order, frame ``n`` is
hashed when ``n`` is a multiple of ``round(interval x frame rate)``, its timestamp is
``n / frame rate``. Frames are hashed at their full size, as the reference does (reducing
1080p frames first saves ~10% and moves hashes by up to 16 bits): the hashes agree bit for bit
with ThreatExchange's ``vpdq`` (tests/data/vpdq). Pixels never leave the worker, are never
written, never shown.

Bounded, never a crash or a hang: ``TIME_LIMIT`` seconds of decoding per video and at most
``MAX_FRAMES`` hashed frames (the frames hashed so far are kept and ``vpdq_error`` says where
it stopped), frames larger than ``MAX_PIXELS`` are refused before decoding, and every FFmpeg
error (truncated, corrupt, no video stream, no frame) is a per-file ``vpdq_error``. The
duration recorded (``vpdq_duration``) is the one decoded, not what the header claims.

Matching (``match_video``) follows python-threatexchange's vPDQ matcher: frames of quality
under 50 are left out and each distinct hash counted once, on both sides; a query frame
matches a set video when some frame of it is within the PDQ threshold (31); the query share is
the part of the scanned video's frames that match, the target share the part of the set
video's frames matched; a match when the query share reaches ``--vpdq-query-pct`` (80) and the
target share ``--vpdq-target-pct`` (0, the reference's index threshold: a clip of a longer
known video matches). Frames are also looked up in the picture PDQ sets
(``frame_matches``): a video showing a known picture. Both are near matches: "needs review",
never a category (``vpdq_matches``, apart from ``matches``).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triage.content.census import SIGNATURE_KIND, VIDEO
from triage.config import VPDQ_QUERY_PCT, VPDQ_TARGET_PCT
from triage.content.hashing import KEEP_LIMIT
from triage.perceptual.index import DEFAULT_THRESHOLD, MIN_QUALITY, to_hex
from triage.perceptual.vsets import VpdqIndex, usable
from triage.records import LIMIT, FileRecord

VIDEO_SIGNATURES = frozenset(s for s, k in SIGNATURE_KIND.items() if k == VIDEO)
DEFAULT_INTERVAL = 1.0  # seconds between hashed frames (vPDQ's default)
TIME_LIMIT = 300.0  # seconds of decoding per video (a 10-min 1080p video: ~115 CPU s)
MAX_FRAMES = 36_000  # hashed frames per video (10 h at one a second)
MAX_PIXELS = 8192 * 8192  # a larger frame is refused before decoding
MAX_BYTES = KEEP_LIMIT  # the worker keeps at most this much content of one file
QUERY_PCT = VPDQ_QUERY_PCT  # the reference's shares (triage.config)
TARGET_PCT = VPDQ_TARGET_PCT
MAX_VIDEO_MATCHES = 20  # set videos listed per scanned video, best first

Frame = tuple[int, int, str, float]  # frame number, quality, PDQ hex, timestamp (s)


@dataclass(frozen=True)
class VpdqOptions:
    """What the workers need for ``--vpdq`` (small, picklable)."""

    interval: float = DEFAULT_INTERVAL
    time_limit: float = TIME_LIMIT
    max_frames: int = MAX_FRAMES
    query_pct: float = QUERY_PCT
    target_pct: float = TARGET_PCT
    # the --vpdq-set text sets compiled at start-up (``sources.compile_vpdq``): a .tdb whose
    # videos keep their own set's name; None: no text sets
    sets_file: str | None = None
    index_files: tuple[str, ...] = ()  # .tdb files whose vPDQ section is searched in place


def is_video(head: bytes) -> bool:
    """The read's ``keep`` policy for videos."""
    from triage.content.census import signature

    return signature(head) in VIDEO_SIGNATURES


_ADDRESS = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")


def _reason(e: BaseException) -> str:
    """An FFmpeg error as a reason that is the same on every run (no object address)."""
    text = _ADDRESS.sub("", " ".join(str(e).split()))
    return (text or type(e).__name__)[:160]


class _Bytes(io.RawIOBase):
    """The kept content as a read-only file for FFmpeg, without the copy ``io.BytesIO`` makes
    of a bytearray (up to 256 MiB more per worker)."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._view[self._pos:self._pos + len(buffer)]
        n = len(chunk)
        memoryview(buffer).cast("B")[:n] = chunk
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def compute_vpdq(data: bytes | bytearray | memoryview, interval: float = DEFAULT_INTERVAL,
                 time_limit: float = TIME_LIMIT, max_frames: int = MAX_FRAMES,
                 progress: Callable[[], None] | None = None
                 ) -> tuple[list[Frame], float | None, str | None]:
    """``(frames, decoded duration in s, reason or None)`` for a video's bytes. Frames hashed
    before an error or a limit are returned with the reason. ``progress`` is called for every
    decoded frame: the worker's heartbeat (throttled), so a long video is not taken for a
    hung worker; ``time_limit`` bounds it."""
    import av
    import pdqhash

    start = time.monotonic()
    frames: list[Frame] = []
    decoded = 0
    fps = 0.0
    try:
        with av.open(_Bytes(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                return [], None, "no video stream"
            # FFmpeg's best video stream (av_find_best_stream, as the reference): not a cover
            # picture attached to an audio file's first stream
            stream = container.streams.best("video") or container.streams.video[0]
            ctx = stream.codec_context
            ctx.thread_count = 1  # one core per worker: the pool gives the parallelism
            width, height = ctx.width or 0, ctx.height or 0
            if width * height > MAX_PIXELS:
                return [], None, f"{LIMIT}{width}x{height} frames exceed {MAX_PIXELS:,} pixels"
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            if not 0 < fps <= 1000 or math.isnan(fps):
                fps = 25.0  # no usable rate in the header: PAL's, so timestamps stay finite
            step = max(1, round(interval * fps))
            for frame in container.decode(stream):
                if progress is not None:
                    progress()
                if time.monotonic() - start > time_limit:
                    return frames, decoded / fps, (f"{LIMIT}time limit of {time_limit:g} s "
                                                   f"reached at frame {decoded:,}")
                if decoded % step == 0:
                    if len(frames) >= max_frames:
                        return frames, decoded / fps, (f"{LIMIT}{max_frames:,} frames "
                                                       "hashed (the limit)")
                    if frame.width * frame.height > MAX_PIXELS:
                        return frames, decoded / fps, f"{LIMIT}a frame exceeds {MAX_PIXELS:,} pixels"
                    pixels = frame.to_ndarray(format="rgb24")
                    bits, quality = pdqhash.compute(pixels)
                    del pixels
                    frames.append((decoded, int(quality), to_hex(bits),
                                   round(decoded / fps, 3)))
                decoded += 1
    except MemoryError:
        return frames, (decoded / fps if fps else None), "not decoded: out of memory"
    except Exception as e:  # noqa: BLE001 - hostile videos: a reason, never a crash
        return frames, (decoded / fps if fps else None), f"not decoded: {_reason(e)}"
    if not frames:
        return [], 0.0, "no frame decoded"
    return frames, round(decoded / fps, 3), None


def inspect_vpdq(record: FileRecord, content: bytes | bytearray | None,
                 options: VpdqOptions, progress: Callable[[], None] | None = None) -> None:
    """vPDQ of a video from the content its read kept: ``vpdq_frames``, ``vpdq_duration``,
    ``vpdq_error``, and the frames for ``vpdq.jsonl`` (``vpdq_hashes``, not in files.jsonl)."""
    if record.kind != VIDEO:
        return
    if content is None or len(content) > MAX_BYTES:
        size = len(content) if content is not None else (record.size or 0)
        record.vpdq_error = (f"{LIMIT}{size:,} bytes is over the {MAX_BYTES >> 20} MiB "
                             "limit" if size > MAX_BYTES else "not decoded: content not kept")
        return
    frames, duration, reason = compute_vpdq(content, options.interval, options.time_limit,
                                            options.max_frames, progress)
    record.vpdq_frames = len(frames)
    record.vpdq_duration = round(duration, 3) if duration is not None else None
    record.vpdq_error = reason
    record.vpdq_hashes = frames or None


# ---------------------------------------------------------------------------------------------
# Matching


def ranges(times: list[float], interval: float) -> list[list[float]]:
    """Matched frame times merged into [start, end] ranges (a gap of more than 1.5 intervals
    starts a new range); ``end`` is the last matched frame's time."""
    out: list[list[float]] = []
    for t in sorted(times):
        if out and t - out[-1][1] <= 1.5 * interval + 1e-6:
            out[-1][1] = t
        else:
            out.append([t, t])
    return [[round(a, 3), round(b, 3)] for a, b in out]


def match_video(frames: list[Frame], index: VpdqIndex, threshold: int = DEFAULT_THRESHOLD,
                query_pct: float = QUERY_PCT, target_pct: float = TARGET_PCT,
                interval: float = DEFAULT_INTERVAL) -> list[dict[str, Any]]:
    """Set videos this video matches (python-threatexchange's semantics, module docstring),
    best query share first: ``{"hashset", "algorithm": "vpdq", "category", "video",
    "query_pct", "target_pct", "distance" (closest frame), "ranges" (of this video, s)}``."""
    query = usable(frames)
    if not query or not len(index):
        return []
    matched_times: dict[int, list[float]] = {}
    target_rows: dict[int, set[int]] = {}
    closest: dict[int, int] = {}
    for _, _, pdq, ts in query:
        rows, dist = index.pdq.search(pdq, threshold)
        if not len(rows):
            continue
        vids = np.asarray(index.video[rows])
        for vid in np.unique(vids).tolist():
            sel = vids == vid
            matched_times.setdefault(vid, []).append(ts)
            target_rows.setdefault(vid, set()).update(rows[sel].tolist())
            d = int(dist[sel].min())
            closest[vid] = min(d, closest.get(vid, d))
    out = []
    for vid, times in matched_times.items():
        info = index.videos[vid]
        q = 100.0 * len(times) / len(query)
        t = 100.0 * len(target_rows[vid]) / max(1, info["frames"])
        if q >= query_pct and t >= target_pct:
            out.append({"hashset": info["set"], "algorithm": "vpdq",
                        "category": info["category"], "video": info["name"],
                        "query_pct": round(q, 1), "target_pct": round(t, 1),
                        "distance": closest[vid], "ranges": ranges(times, interval)})
    out.sort(key=lambda m: (-m["query_pct"], -m["target_pct"], m["distance"]))
    return out[:MAX_VIDEO_MATCHES]


def frame_matches(frames: list[Frame], pictures: Any, threshold: int = DEFAULT_THRESHOLD
                  ) -> list[dict[str, Any]]:
    """Frames within the threshold of a picture PDQ set hash (``pictures``: the worker's
    ``PdqIndexGroup``): per set and category the closest frame, ``{"hashset", "algorithm":
    "pdq-frame", "category", "distance", "at" (s), "frames" (how many frames matched)}``."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for _, quality, pdq, ts in usable(frames):
        if quality < MIN_QUALITY:
            continue
        for m in pictures.matches(pdq, threshold):
            key = (m["hashset"], m["category"])
            found = best.get(key)
            if found is None:
                best[key] = {"hashset": m["hashset"], "algorithm": "pdq-frame",
                             "category": m["category"], "distance": m["distance"], "at": ts,
                             "frames": 1}
            else:
                found["frames"] += 1
                if m["distance"] < found["distance"]:
                    found["distance"], found["at"] = m["distance"], ts
    return sorted(best.values(), key=lambda m: (m["distance"], m["at"]))


def side_line(record: FileRecord) -> dict[str, Any] | None:
    """The ``vpdq.jsonl`` line of a hashed video: its key (evidence, volume, path, inode) and
    frames ``[frame number, quality, pdq hex, timestamp]`` in vPDQ's text order."""
    if not record.vpdq_hashes:
        return None
    return {"evidence": record.evidence, "volume_offset": record.volume_offset,
            "path": record.path, "inode": record.inode,
            "frames": [list(f) for f in record.vpdq_hashes]}


def _key(line: dict[str, Any]) -> tuple[Any, ...]:
    return (line.get("evidence"), line.get("volume_offset"), line.get("path"),
            line.get("path_bytes"), line.get("inode"))


def trim_side_file(side: Path, files: Path) -> None:
    """``--resume``: keep in ``vpdq.jsonl`` exactly one line per video whose record is in
    ``files.jsonl`` (already cut back to what the journal says was written). A video whose
    frames were written but whose record was not is hashed again: without this its line would
    come twice. Streams both files; holds the keys of the hashed videos only."""
    if not side.exists():
        return
    wanted: set[tuple[Any, ...]] = set()
    with open(files, "rb") as fh:
        for raw in fh:
            if b'"vpdq_frames":' not in raw or b'"vpdq_frames":null' in raw:
                continue
            record = json.loads(raw)
            if record.get("vpdq_frames"):
                wanted.add(_key(record))
    tmp = side.with_name(side.name + ".tmp")
    with open(side, "rb") as src, open(tmp, "wb") as out:
        for raw in src:
            try:
                key = _key(json.loads(raw))
            except ValueError:
                continue  # a torn last line (killed mid-write)
            if key in wanted:
                wanted.discard(key)
                out.write(raw)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, side)
