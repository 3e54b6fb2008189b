"""vPDQ video hashes inside a compiled index (``.tdb``, format 1.3): written by ``hashset import``
from ThreatExchange vPDQ text files, searched by ``scan --vpdq`` straight from the mapped file.

Why: parsing the text files and building the frame index at every scan costs ~22 s for 20M
frames; compiled, opening costs a header read and an ``mmap`` and the workers share the pages.

The section is ``triage.perceptual.vsets.VpdqIndex`` as it lies in memory: the PDQ multi-index
over every usable frame (``words``, ``ids``, ``offsets``; quality >= 50, a video's repeated hash
once, as the reference matcher), per frame its video (``video``, <u4) and time (``times``, <f4),
and the video table: per video its category id into the index's one category list
(``categories``, <u2), usable frame count (``frames``, <u4) and name (``names``: UTF-8 bytes,
``name_offsets``: <u8, one more than videos). 56 bytes a frame. Every array is in the data area
the header's ``sections_sha256`` covers, and typed and bounded by ``tdbheader.Vpdq``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np

from triage.matching.categories import KNOWN_BAD
from triage.errors import HashSetError
from triage.hashsets import tdb
from triage.hashsets.pdqsection import Spill, mapped_arrays, write_multi_index
from triage.hashsets.store import EntryStore
from triage.hashsets.tdbheader import VPDQ_ARRAYS as ARRAYS
from triage.hashsets.tdbheader import vpdq_sizes as sizes
from triage.perceptual.index import INDEX_VERSION, PdqIndex, to_words
from triage.perceptual.vsets import VpdqIndex, VpdqSet, VpdqVideo

# -- import ---------------------------------------------------------------------------------


class VpdqRows:
    """The vPDQ sets of one import (``FILE_OR_DIR[:CATEGORY]``), category ids of its store.

    Bounded memory: frames go to temporary files (``tmpdir``: beside the index being written)
    as each video is read, and the multi-index is built from them by a counting sort
    (``pdqsection.write_multi_index``), so 100M frames need ~1 GB, not ~200 bytes a frame.
    The section is the one ``VpdqIndex.build`` would lay out for the same sets (rows in the
    order of sets then videos)."""

    def __init__(self, store: EntryStore, tmpdir: str | os.PathLike[str] | None = None
                 ) -> None:
        self.store, self.tmpdir = store, tmpdir
        self.rows = self.videos = 0
        self._names = 0
        self._counts: dict[int, int] = {}
        self._spills: dict[str, Spill] = {}

    def _spill(self, name: str) -> Spill:
        if name not in self._spills:
            self._spills[name] = Spill(ARRAYS[name], self.tmpdir, 4 if name == "words" else 1)
            if name == "name_offsets":
                self._spills[name].append(np.zeros(1, "<u8"))
        return self._spills[name]

    def add_set(self, loaded: VpdqSet, videos: Iterable[VpdqVideo] | None = None
                ) -> dict[str, Any]:
        """Add a vPDQ set: its videos (``loaded.videos``, or ``videos`` as they are read);
        returns what its ``sources`` entry records."""
        cat = self.store.category_id(loaded.category)  # in the category list, in order of sources
        found = {"vpdq_videos": 0, "vpdq_frames": 0, "vpdq_lines": 0}
        for video in loaded.videos if videos is None else videos:
            n = len(video.hashes)
            self._spill("words").append(to_words(video.hashes))
            self._spill("video").append(np.full(n, self.videos, "<u4"))
            self._spill("times").append(video.times)
            name = np.frombuffer(video.name.encode("utf-8", "surrogateescape"), np.uint8)
            self._spill("names").append(name)
            self._names += len(name)
            self._spill("name_offsets").append(np.array([self._names], "<u8"))
            self._spill("categories").append(np.array([cat], "<u2"))
            self._spill("frames").append(np.array([n], "<u4"))
            self._counts[cat] = self._counts.get(cat, 0) + 1
            self.videos += 1
            self.rows += n
            found["vpdq_videos"] += 1
            found["vpdq_frames"] += n
            found["vpdq_lines"] += video.lines
        return found

    def __len__(self) -> int:
        return self.videos

    def close(self) -> None:
        """Remove the temporary files."""
        for spill in self._spills.values():
            spill.close()
        self._spills.clear()

    def write(self, out: Any, categories: list[str | None]) -> dict[str, Any]:
        """Append the section to a ``tdb._Out``; returns the header's ``vpdq`` entry."""
        n = self.rows
        spec: dict[str, Any] = {"index_version": INDEX_VERSION, "rows": n,
                                "videos": self.videos}
        words = self._spill("words")
        spec["words"] = {"offset": out.align(), "length": 32 * n, "dtype": ARRAYS["words"]}
        words.copy_to(out)
        spec.update(write_multi_index(out, words.chunks, n, self.tmpdir))
        for name in list(ARRAYS)[3:]:
            spec[name] = {"offset": out.align(), "length": 0, "dtype": ARRAYS[name]}
            self._spill(name).copy_to(out)
            spec[name]["length"] = out.pos - spec[name]["offset"]
        spec["counts"] = {"null" if categories[i] is None else str(categories[i]): n
                          for i, n in sorted(self._counts.items()) if n}
        return spec


# -- scan -----------------------------------------------------------------------------------


class VideoTable:
    """``VpdqIndex.videos`` read from the mapped section: ``table[i]`` is the dict the matcher
    reads (name, set, category, frames), made on demand (100k videos cost no start-up)."""

    def __init__(self, set_name: str, labels: list[str | None], cats: np.ndarray,
                 frames: np.ndarray, offsets: np.ndarray, names: np.ndarray,
                 by_source: list[tuple[str, int]] | None = None) -> None:
        self.set_name, self.labels, self.cats, self.frames = set_name, labels, cats, frames
        self.offsets, self.names = offsets, names
        # (name, videos) per source in order: each video named by its own source's set
        self.sources = [name for name, _ in by_source or ()]
        self.ends = np.cumsum([n for _, n in by_source or ()], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.cats)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self.cats):
            raise IndexError(i)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        where = int(np.searchsorted(self.ends, i, "right")) if self.sources else 0
        return {"name": bytes(self.names[a:b]).decode("utf-8", "surrogateescape"),
                "set": self.sources[where] if self.sources else self.set_name,
                "category": self.labels[int(self.cats[i])],
                "frames": int(self.frames[i])}


@dataclass
class TdbVpdq:
    """A compiled index used for video near matches: ``summary.json`` ``vpdq_sets`` entry."""

    name: str
    path: str
    sha256: str
    videos: int
    frames: int
    categories: dict[str, int]
    verification: Any = field(default=None, compare=False, repr=False)  # tdb.Verification

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "kind": KNOWN_BAD, "format": "tdb",
                "sha256": self.sha256, "videos": self.videos, "frames": self.frames,
                "category": ", ".join(sorted(self.categories)),
                "algorithms": ["vpdq"], "skipped_lines": 0,
                "verification": self.verification and self.verification.summary()}


def describe_vpdq(path: str | os.PathLike[str], header: dict[str, Any] | None = None,
                  required: bool = True) -> TdbVpdq | None:
    """The vPDQ part of an index, from its header alone; ``required`` refuses an index
    without one, or one compiled as known-good."""
    file = Path(path)
    if header is None:
        header = tdb.read_header(file)[0]
    spec = header.get("vpdq")
    if not spec or not spec.get("videos"):
        if required:
            raise HashSetError(f"index {file} carries no vPDQ hashes (import vPDQ files with "
                               "triage hashset import FILE_OR_DIR:CATEGORY)")
        return None
    if header.get("kind") != KNOWN_BAD:
        if required:
            raise HashSetError(f"index {file} was compiled as {header.get('kind')}; video near "
                               "matches are only searched in known-bad sets")
        return None
    return TdbVpdq(str(header["name"]), str(file), str(header["sections_sha256"]),
                   int(spec["videos"]), int(spec["rows"]), dict(spec.get("counts") or {}))


def open_vpdq(path: str | os.PathLike[str], by_source: bool = False) -> VpdqIndex:
    """Map an index's vPDQ section as a ``VpdqIndex`` (read-only; pages read on demand).
    ``by_source``: a video's set is the name of the source it came from (``sources`` entries
    with ``vpdq_videos``, in order), not the index's: a scan's compiled ``--vpdq-set`` text
    sets (``perceptual.sources.compile_vpdq``) keep their own names."""
    file = Path(path)
    header, limit, _ = tdb.read_header(file)
    describe_vpdq(file, header)
    spec = header["vpdq"]
    try:
        n, videos = int(spec["rows"]), int(spec["videos"])
        a, bits = mapped_arrays(file, spec, ARRAYS, limit)
        want = sizes(n, videos, bits, len(a["names"]))
        if any(len(a[k]) != v for k, v in want.items()):
            raise ValueError("sections disagree in length")
        if int(a["name_offsets"][-1]) != len(a["names"]):
            raise ValueError("names disagree with their offsets")
        meta = np.broadcast_to(np.uint32(0), (n,))  # one set, one code: the video says which
        pdq = PdqIndex(a["words"].reshape(n, 4), meta, a["ids"], a["offsets"], bits,
                       [{"name": "vpdq", "labels": [None]}])
        sources = [(str(s["name"]), int(s["vpdq_videos"])) for s in header["sources"]
                   if s.get("vpdq_videos")] if by_source else None
        if sources is not None and sum(k for _, k in sources) != videos:
            raise ValueError("sources disagree with the videos")
        table = VideoTable(str(header["name"]), list(header["categories"]), a["categories"],
                           a["frames"], a["name_offsets"], a["names"], sources)
        return VpdqIndex(pdq, a["video"], a["times"], table)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise HashSetError(f"index {file}: damaged vPDQ section ({exc})") from None
