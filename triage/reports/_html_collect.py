"""One streaming pass over files.jsonl gathering what report.html shows, in bounded memory.

Hits are kept per category up to ``hit_cap`` each (the most severe categories are shown first
and completely unless huge); files not read up to ``error_cap``; PDQ near-duplicates, the
``near_cap`` closest (a heap, so the closest are kept whatever the file order); the rest is
only counted.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.matching.categories import is_known_bad
from triage.reports._near import closest, near_matches, video_matches
from triage.reports._run import iter_notable

HIT_CAP = 1000  # hits listed per category
ERROR_CAP = 500  # files-not-read listed
REASON_CAP = 100  # distinct error reasons counted separately
NEAR_CAP = 1000  # near-duplicates listed, closest first

NEAR_KEYS = ("evidence", "volume_offset", "path", "inode", "size", "deleted", "category",
             "matches", "pdq_quality", "pdq_distance")
VIDEO_KEYS = ("evidence", "volume_offset", "path", "inode", "size", "deleted", "category",
              "vpdq_matches", "vpdq_frames", "vpdq_duration")
HIT_KEYS = ("evidence", "volume_offset", "path", "inode", "size", "deleted", "orphan", "realloc",
            "orphan_long_name", "mtime", "atime", "ctime", "crtime", "category", "matches")


@dataclass
class Collected:
    files: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    hits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hits_total: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    errors_total: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    near: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)  # heap, see below
    near_total: int = 0
    near_only: int = 0  # near-duplicates without an exact known-bad match: to review
    videos: list[dict[str, Any]] = field(default_factory=list)  # --vpdq near matches, in order
    videos_total: int = 0

    def near_sorted(self) -> list[dict[str, Any]]:
        """The kept near-duplicates, closest first (ties in files.jsonl order)."""
        return [r for _, _, r in sorted(self.near, key=lambda x: (-x[0], -x[1]))]

    def keep_near(self, record: dict[str, Any], cap: int) -> None:
        """Max-heap on (distance, line) via negation: the farthest kept one is dropped first."""
        self.near_total += 1
        if not is_known_bad(record.get("category")):
            self.near_only += 1
        if cap <= 0:
            return
        distance = closest(record)
        item = (-(257 if distance is None else distance), -self.near_total,
                {k: record.get(k) for k in NEAR_KEYS})
        if len(self.near) < cap:
            heapq.heappush(self.near, item)
        elif item[:2] > self.near[0][:2]:
            heapq.heapreplace(self.near, item)


def reason(error: str) -> str:
    """Group error messages: the part before the first ':' is the kind of failure."""
    head = error.split(":", 1)[0].strip()
    return head[:120] or "error"


def collect(run_dir: Path, algorithms: tuple[str, ...], hit_cap: int = HIT_CAP,
            error_cap: int = ERROR_CAP, near_cap: int = NEAR_CAP) -> Collected:
    c = Collected()
    keep = HIT_KEYS + algorithms
    for r in iter_notable(run_dir):
        c.files += 1
        if r is None:
            c.categories["unknown"] += 1
            continue
        cat = r.get("category")
        if cat is not None:
            c.categories[cat] += 1
        if is_known_bad(cat):
            c.hits_total[cat] += 1
            bucket = c.hits.setdefault(cat, [])
            if len(bucket) < hit_cap:
                bucket.append({k: r.get(k) for k in keep})
        if near_matches(r):
            c.keep_near(r, near_cap)
        if video_matches(r):
            c.videos_total += 1
            if len(c.videos) < near_cap:
                c.videos.append({k: r.get(k) for k in VIDEO_KEYS})
        if r.get("error"):
            c.errors_total += 1
            why = reason(str(r["error"]))
            if why in c.reasons or len(c.reasons) < REASON_CAP:
                c.reasons[why] += 1
            else:
                c.reasons["(other reasons)"] += 1
            if len(c.errors) < error_cap:
                c.errors.append({k: r.get(k) for k in ("evidence", "volume_offset", "path",
                                                       "inode", "size", "deleted", "error")})
    return c
