"""hits.csv: one row per known-bad file, for the examiner's spreadsheet; then the PDQ
near-duplicates that matched nothing exactly, marked as needing review.

An exact (cryptographic) match always outranks a near match: ``hashsets`` lists exact matches
only, near matches go to their own ``near_duplicate`` / ``pdq_distance`` columns, and a file
with only near matches keeps its own category (``unknown``, ``known-good``), gets the label
``NEAR_LABEL`` and comes after every exact hit, so it cannot be read as a confirmed hit.

Safety: every text cell is passed through the reversible ``escape`` (no newline, control or
bidi character survives; undecodable bytes become ``\\xHH``), and a cell that a spreadsheet
would read as a formula (first character ``= + - @``, tab or CR) gets a leading ``'``.
UTF-8 with a byte-order mark so that spreadsheets pick the right encoding; CRLF line ends.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from triage.categories import is_known_bad
from triage.reports._escape import escape
from triage.reports._near import NEAR_LABEL, closest, describe, exact_matches, near_matches
from triage.reports._run import algorithms, atomic_text, iter_notable
from triage.reports.labels import Labels

NAME = "hits.csv"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TIMES = ("mtime", "atime", "ctime", "crtime")


def columns(algs: Iterable[str]) -> list[str]:
    return ["category", "label", "hashsets", "near_duplicate", "pdq_distance", "path",
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
    cells: list[Any] = [category, label(category) if is_known_bad(category) or not near
                        else NEAR_LABEL,
                        matched_sets(exact_matches(record)), "; ".join(map(describe, near)),
                        closest(record) if near else None, record.get("path"),
                        record.get("orphan_long_name"), record.get("evidence"), record.get("volume_offset"), record.get("inode"),
                        record.get("size"), record.get("deleted")]
    cells += [record.get(t) for t in TIMES]
    cells += [record.get(a) for a in algs]
    return [safe_cell(c) for c in cells]


def write(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Stream files.jsonl once; memory does not grow with the number of records (near-only
    rows wait in a temporary file that spills to disk past 1 MiB)."""
    algs = algorithms(summary)
    label = Labels(summary)
    path = run_dir / NAME
    with atomic_text(path, "utf-8-sig") as fh, \
            tempfile.SpooledTemporaryFile(1 << 20, "w+", encoding="utf-8", newline="") as later:
        out = csv.writer(fh, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        near_only = csv.writer(later, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        out.writerow(columns(algs))
        for record in iter_notable(run_dir):
            if record is None:
                continue
            if is_known_bad(record.get("category")):
                out.writerow(row(record, algs, label))
            elif near_matches(record):
                near_only.writerow(row(record, algs, label))
        later.seek(0)
        shutil.copyfileobj(later, fh)
    return path
