"""Derived reports of a run, rendered from files.jsonl + summary.json only (never the evidence).

``FORMATS`` maps a format name to its writer; ``render_all`` is what the scan calls at its end
and what ``triage report`` calls to re-render. files.jsonl and summary.json themselves are
written by the scan; they are listed in ``SCAN_FORMATS`` so ``--formats`` can name them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from triage.errors import UsageError
from triage.reports import dfxml, hits_csv, html
from triage.reports._run import ReportError, load_summary

__all__ = ["FORMATS", "FORMAT_FILES", "SCAN_FORMATS", "ReportError", "parse_formats", "render_all"]

Writer = Callable[[Path, dict[str, Any]], Path]

FORMATS: dict[str, Writer] = {
    "csv": hits_csv.write,
    "html": html.write,
    "dfxml": dfxml.write,
}
FORMAT_FILES = {"csv": hits_csv.NAME, "html": html.NAME, "dfxml": dfxml.NAME}
# Written by the scan itself, always; accepted in --formats so a list can name every output.
SCAN_FORMATS = ("jsonl", "json")
# Also accepted: the output file names.
ALIASES = {hits_csv.NAME: "csv", html.NAME: "html", dfxml.NAME: "dfxml",
           "files.jsonl": "jsonl", "summary.json": "json"}


def parse_formats(formats: str | Iterable[str] | None) -> list[str]:
    """'csv,html' / ['hits.csv'] / None (= all) -> writer names in registry order."""
    if formats is None:
        return list(FORMATS)
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = {ALIASES.get(x.strip().lower(), x.strip().lower()) for x in items if x.strip()}
    if "all" in names:
        return list(FORMATS)
    unknown = sorted(n for n in names if n not in FORMATS and n not in SCAN_FORMATS)
    if unknown:
        raise UsageError(f"--formats: unknown format {', '.join(unknown)}; choose from "
                         f"{','.join([*FORMATS, *SCAN_FORMATS])} or all")
    return [n for n in FORMATS if n in names]


PARALLEL_FROM = 32 << 20  # files.jsonl size from which DFXML renders in two processes


def render_all(run_dir: Path, formats: Iterable[str] | None = None,
               summary: dict[str, Any] | None = None) -> list[Path]:
    """Write the requested derived reports (default: all) into ``run_dir``; return their paths.

    Each writer streams files.jsonl, so memory stays bounded however many records there are;
    each file is replaced atomically, so a failed render leaves the previous one intact. For a
    large run DFXML (the costly format, ~15 us per record, seconds on a million-file device)
    renders its two halves in spawned processes while this one writes the other formats.
    ``summary`` (default: DIR/summary.json) lets a finishing scan render the summary it will
    write last, so summary.json never says complete before the reports exist.
    """
    run_dir = Path(run_dir)
    summary = load_summary(run_dir) if summary is None else summary
    names = parse_formats(formats)
    files = run_dir / "files.jsonl"
    big = files.is_file() and files.stat().st_size >= PARALLEL_FROM
    if "dfxml" not in names or not big or (os.cpu_count() or 1) < 2:
        return [FORMATS[name](run_dir, summary) for name in names]
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        finish = dfxml.write_parallel(run_dir, summary, pool)
        paths = {n: FORMATS[n](run_dir, summary) for n in names if n != "dfxml"}
        try:
            paths["dfxml"] = finish()
        except BrokenProcessPool:  # a helper process died (memory?): render it here instead
            paths["dfxml"] = dfxml.write(run_dir, summary)
    return [paths[n] for n in names]
