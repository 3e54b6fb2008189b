"""hits.csv: one row per known-bad file, for the examiner's spreadsheet; then the PDQ
near-duplicates that matched nothing exactly, marked as needing review.

An exact (cryptographic) match always outranks a near match: ``hashsets`` lists exact matches
only, near matches go to their own ``near_duplicate`` / ``pdq_distance`` columns (videos,
``--vpdq``: ``video_near_duplicate`` / ``vpdq_share``, the best share of frames), and a file
with only near matches keeps its own category (``unknown``, ``known-good``), gets the label
``NEAR_LABEL`` and comes after every exact hit, so it cannot be read as a confirmed hit.

Safety: every text cell is passed through the reversible ``escape`` (no newline, control or
bidi character survives; undecodable bytes become ``\\xHH``), and a cell that a spreadsheet
would read as a formula (first character ``= + - @``, tab or CR) gets a leading ``'``.
UTF-8 with a byte-order mark so that spreadsheets pick the right encoding; CRLF line ends.
"""

from __future__ import annotations

import csv
import heapq
import json
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from triage.matching.categories import is_known_bad, severity_key
from triage.reports._escape import escape
from triage.reports._near import (
    NEAR_LABEL,
    VIDEO_LABEL,
    best_share,
    closest,
    describe,
    describe_video,
    exact_matches,
    near_matches,
    video_matches,
)
from triage.reports._run import algorithms, atomic_text, iter_notable
from triage.reports.labels import Labels

NAME = "hits.csv"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TIMES = ("mtime", "atime", "ctime", "crtime")


def columns(algs: Iterable[str]) -> list[str]:
    return ["category", "label", "hashsets", "near_duplicate", "pdq_distance",
            "video_near_duplicate", "vpdq_share", "path",
            "orphan_long_name", "evidence", "volume_offset", "inode", "size", "deleted", *TIMES, *algs]


def safe_cell(value: Any) -> str:
    """The text of one cell: escaped, and defused when it could start a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = escape(str(value))
    return "'" + text if text.startswith(FORMULA_START) else text


def matched_sets(matches: list[dict[str, Any]]) -> str:
    """'caid (A); projectvic (1)': each set once, with what that set says."""
    seen: dict[tuple[str, str], None] = {}
    for m in matches:
        seen[(str(m.get("hashset")), str(m.get("category")))] = None
    return "; ".join(f"{name} ({cat})" for name, cat in seen)


def row(record: dict[str, Any], algs: Iterable[str], label: Labels) -> list[str]:
    """One file; a file that is no known-bad hit is labelled as a near-duplicate to review."""
    category = record.get("category")
    near = near_matches(record)
    video = video_matches(record)
    cells: list[Any] = [category, label(category) if is_known_bad(category) or not (near or video)
                        else NEAR_LABEL if near else VIDEO_LABEL,
                        matched_sets(exact_matches(record)), "; ".join(map(describe, near)),
                        closest(record) if near else None,
                        "; ".join(map(describe_video, video)), best_share(record),
                        record.get("path"),
                        record.get("orphan_long_name"), record.get("evidence"), record.get("volume_offset"), record.get("inode"),
                        record.get("size"), record.get("deleted")]
    cells += [record.get(t) for t in TIMES]
    cells += [record.get(a) for a in algs]
    return [safe_cell(c) for c in cells]


def write(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Stream files.jsonl once: exact hits sorted by severity, then path (then where); then
    the near-only rows, closest first. Memory stays bounded: rows are sorted in runs of
    ``RUN_ROWS`` spilled to temporary files and merged."""
    algs = algorithms(summary)
    label = Labels(summary)
    path = run_dir / NAME
    with atomic_text(path, "utf-8-sig") as fh, _Sorter() as hits, _Sorter() as near:
        out = csv.writer(fh, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        out.writerow(columns(algs))
        for record in iter_notable(run_dir):
            if record is None:
                continue
            where = [str(record.get("path")), str(record.get("evidence")),
                     record.get("volume_offset") or 0, str(record.get("inode"))]
            if is_known_bad(record.get("category")):
                hits.add([*severity_key(record.get("category")), *where],
                         row(record, algs, label))
            elif near_matches(record) or video_matches(record):
                distance = closest(record) if near_matches(record) else None
                near.add([999 if distance is None else distance, *where],
                         row(record, algs, label))
        for cells in hits.sorted():
            out.writerow(cells)
        for cells in near.sorted():
            out.writerow(cells)
    return path


RUN_ROWS = 20_000  # rows sorted in memory before a run is spilled to a temporary file


class _Sorter:
    """External sort of (key, row) pairs: bounded memory whatever the number of hits."""

    def __init__(self) -> None:
        self._rows: list[tuple[list[Any], list[str]]] = []
        self._runs: list[Any] = []

    def __enter__(self) -> "_Sorter":
        return self

    def __exit__(self, *exc: Any) -> None:
        for f in self._runs:
            f.close()

    def add(self, key: list[Any], cells: list[str]) -> None:
        self._rows.append((key, cells))
        if len(self._rows) >= RUN_ROWS:
            self._spill()

    def _spill(self) -> None:
        run = tempfile.TemporaryFile("w+", encoding="utf-8")
        for item in sorted(self._rows, key=lambda kc: kc[0]):
            run.write(json.dumps(item, ensure_ascii=True) + "\n")
        run.seek(0)
        self._runs.append(run)
        self._rows = []

    def sorted(self) -> Iterator[list[str]]:
        if not self._runs:
            for _, cells in sorted(self._rows, key=lambda kc: kc[0]):
                yield cells
            return
        if self._rows:
            self._spill()
        streams = [(json.loads(line) for line in run) for run in self._runs]
        for _, cells in heapq.merge(*streams, key=lambda kc: kc[0]):
            yield cells
