"""vPDQ sets (``--vpdq-set``) and the frame index every worker maps to match scanned videos.

A vPDQ hash is what ThreatExchange's ``vpdq`` writes for one video: one line per sampled frame,
``frame_number,quality,pdq_hex,timestamp`` (timestamp in seconds, 3 decimals; e.g.
``0,100,e271...055c,0.000``). A set is one such file (one video) or a folder of them (every
regular file in it, sorted by name: one video each, named by the file's stem), with a category
(``--vpdq-set PATH:CATEGORY``; none given: ``notable`` as for other sets).

The frame index is the PDQ multi-index (``perceptual.index.PdqIndex``) over every usable frame
of every set video (quality >= 50, repeated hashes of one video kept once: the reference
library's ``quality_filter`` and ``dedupe``), plus, per row, the video it belongs to and its
timestamp. A scan does not build it in memory: the videos are streamed (``iter_vpdq_set``) into
temporary files and compiled into a ``.tdb`` vPDQ section (``perceptual.sources.compile_vpdq``)
that every worker maps read-only, so 100M frames cost the page cache, not each worker's memory.
``VpdqIndex.build``/``save``/``open`` remain for tests and benchmarks (the same layout).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triage.errors import HashSetError, UsageError
from triage.perceptual.index import MIN_QUALITY, NOTABLE, PdqIndex, PdqSet

_LINE = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*([0-9a-fA-F]{64})\s*,\s*([0-9]+(?:\.[0-9]*)?)\s*$")
MAX_SET_FILE = 64 << 20  # one video's hash file, at most (a 1/s hash of 100 h is ~30 MiB)


@dataclass
class VpdqVideo:
    """One set video: its usable frames (quality >= 50, distinct hashes, in file order)."""

    name: str
    hashes: np.ndarray  # (n, 32) uint8
    times: np.ndarray  # (n,) float32, seconds
    lines: int = 0  # frame lines in the file (before the quality filter and dedupe)


@dataclass
class VpdqSet:
    """``--vpdq-set PATH[:CATEGORY]``, parsed."""

    name: str
    path: str
    category: str
    sha256: str  # over the files' names and bytes, in order
    videos: list[VpdqVideo] = field(default_factory=list)
    skipped: int = 0  # malformed lines skipped under --lenient
    # videos streamed to ``sink`` as read (``videos`` stays empty): what it counted of them,
    # ``vpdq_videos``, ``vpdq_frames``, ``vpdq_lines`` (``hashsets.vpdqsection.VpdqRows``)
    streamed: dict[str, int] | None = None
    sink: Any = field(default=None, compare=False, repr=False)  # a scan compiles it to a .tdb

    def summary(self) -> dict[str, Any]:
        counted = self.streamed
        return {"name": self.name, "path": self.path, "kind": "known-bad", "format": "vpdq",
                "sha256": self.sha256,
                "videos": len(self.videos) if counted is None else counted["vpdq_videos"],
                "frames": int(sum(len(v.hashes) for v in self.videos)) if counted is None
                else counted["vpdq_frames"],
                "category": self.category, "algorithms": ["vpdq"],
                "skipped_lines": self.skipped}


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``PATH[:CATEGORY]``: the part after the last colon is a category unless the whole spec
    names an existing file or folder (a path may hold colons)."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, category = spec.rsplit(":", 1)
    return path, (category.strip() or None)


def absolute_spec(spec: str) -> str:
    """The spec with an absolute path, as summary.json keeps it for ``--resume``."""
    path, category = parse_spec(spec)
    return os.path.abspath(path) + (f":{category}" if category else "")


def parse_frames(text: str, where: str, lenient: bool = False) -> tuple[list[tuple[int, int, str, float]], int]:
    """The ``frame,quality,hash,timestamp`` lines of one vPDQ hash file (blank lines and ``#``
    comments ignored); returns (frames, malformed lines skipped)."""
    frames: list[tuple[int, int, str, float]] = []
    skipped = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None or int(m.group(2)) > 100:
            if lenient:
                skipped += 1
                continue
            shown = line.strip()[:60].encode("ascii", "backslashreplace").decode()
            raise HashSetError(f"{where}:{n}: not a vPDQ line (frame,quality,hash,timestamp): "
                               f"{shown!r}")
        frames.append((int(m.group(1)), int(m.group(2)), m.group(3).lower(),
                       float(m.group(4))))
    return frames, skipped


def looks_vpdq(path: str | os.PathLike[str]) -> bool:
    """Whether a file (or the first file of a folder) starts with a vPDQ frame line."""
    p = Path(path)
    try:
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            return bool(files) and looks_vpdq(files[0])
        if not p.is_file():  # a FIFO or device would block the read: the loaders refuse it
            return False
        with open(p, "rb") as fh:
            head = fh.read(4096).decode("utf-8-sig", "replace")
    except OSError:
        return False
    for line in head.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return _LINE.match(line) is not None
    return False


def usable(frames: list[tuple[int, int, str, float]]) -> list[tuple[int, int, str, float]]:
    """The reference matcher's frames: quality >= 50, each distinct hash once (first kept)."""
    seen: set[str] = set()
    out = []
    for f in frames:
        if f[1] >= MIN_QUALITY and f[2] not in seen:
            seen.add(f[2])
            out.append(f)
    return out


def load_vpdq_set(spec: str, lenient: bool = False) -> VpdqSet:
    """Read ``--vpdq-set PATH[:CATEGORY]``: one hash file, or a folder of them."""
    out, videos = iter_vpdq_set(spec, lenient)
    out.videos = list(videos)
    return out


def iter_vpdq_set(spec: str, lenient: bool = False) -> tuple[VpdqSet, Iterator[VpdqVideo]]:
    """``load_vpdq_set`` one video at a time (what ``hashset import`` streams to disk): the set
    without its videos, and an iterator over them; the set's ``sha256`` and ``skipped`` are
    complete once the iterator is exhausted. A missing path is refused here, at once."""
    path, category = parse_spec(spec)
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            raise UsageError(f"--vpdq-set {path}: the folder holds no vPDQ hash file")
    elif p.is_file():
        files = [p]
    elif p.exists():
        raise UsageError(f"--vpdq-set {path}: not a regular file or folder")
    else:
        raise UsageError(f"--vpdq-set {path}: no such file or folder")
    out = VpdqSet(p.name or path, str(path), category or NOTABLE, "")
    return out, _read_videos(out, files, lenient)


def _read_videos(out: VpdqSet, files: list[Path], lenient: bool) -> Iterator[VpdqVideo]:
    digest = hashlib.sha256()
    for f in files:
        try:
            if f.stat().st_size > MAX_SET_FILE:
                raise HashSetError(f"{f}: over {MAX_SET_FILE >> 20} MiB: not a vPDQ hash file")
            data = f.read_bytes()
        except OSError as e:
            raise HashSetError(f"{f}: cannot read ({e.strerror})") from None
        digest.update(f.name.encode("utf-8", "surrogateescape") + b"\0" + data)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HashSetError(f"{f}: not a vPDQ hash file (not text)") from None
        frames, skipped = parse_frames(text, str(f), lenient)
        out.skipped += skipped
        good = usable(frames)
        hashes = (np.frombuffer(bytes.fromhex("".join(h for _, _, h, _ in good)), np.uint8)
                  .reshape(-1, 32))
        times = np.array([t for *_, t in good], np.float32)
        yield VpdqVideo(f.stem, hashes, times, len(frames))
    out.sha256 = digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The frame index

INDEX_VERSION = 1


class VpdqIndex:
    """Every usable frame of every set video in one PDQ multi-index, with per row the video
    (``video``) and the frame's time (``times``); ``videos[i]``: name, set, category, frames."""

    def __init__(self, pdq: PdqIndex, video: np.ndarray, times: np.ndarray,
                 videos: list[dict[str, Any]]) -> None:
        self.pdq, self.video, self.times, self.videos = pdq, video, times, videos

    def __len__(self) -> int:
        return len(self.pdq)

    @classmethod
    def build(cls, sets: list[VpdqSet]) -> VpdqIndex:
        hashes, video, times, videos = [], [], [], []
        for s in sets:
            for v in s.videos:
                vid = len(videos)
                videos.append({"name": v.name, "set": s.name, "category": s.category,
                               "frames": len(v.hashes)})
                hashes.append(v.hashes)
                video.append(np.full(len(v.hashes), vid, np.uint32))
                times.append(v.times)
        all_hashes = np.concatenate(hashes) if hashes else np.zeros((0, 32), np.uint8)
        one = PdqSet("vpdq", "", "vpdq", "", all_hashes, np.zeros(len(all_hashes), np.uint16))
        return cls(PdqIndex.build([one]),
                   np.concatenate(video) if video else np.zeros(0, np.uint32),
                   np.concatenate(times) if times else np.zeros(0, np.float32), videos)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        d = Path(directory)
        self.pdq.save(d / "pdq")
        np.save(d / "video.npy", self.video)
        np.save(d / "times.npy", self.times)
        (d / "videos.json").write_text(json.dumps({"version": INDEX_VERSION,
                                                   "videos": self.videos}), encoding="utf-8")
        return d

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> VpdqIndex:
        """Map a saved frame index read-only."""
        d = Path(directory)
        info = json.loads((d / "videos.json").read_text(encoding="utf-8"))
        if info.get("version") != INDEX_VERSION:
            raise HashSetError(f"vPDQ index {d}: version {info.get('version')} not supported")
        return cls(PdqIndex.open(d / "pdq"), np.load(d / "video.npy", mmap_mode="r"),
                   np.load(d / "times.npy", mmap_mode="r"), info["videos"])
