"""``triage report`` and ``triage schema``: plain typer-annotated functions, mounted by cli.py

    app.command("report")(report)
    app.command("schema")(schema)

They write through ``triage.cli``'s Environment (looked up at call time, so this module does
not import cli.py at import time and there is no import cycle), and raise ``TriageError`` for
user errors so ``triage.cli.main`` turns them into one line and an exit code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, TextIO

import typer

from triage.errors import UsageError
from triage.run.outdir import FolderLock, finish, only_reports_missing, remove_leftovers
from triage.reports import FORMAT_FILES, FORMATS, SCAN_FORMATS, parse_formats, render_all
from triage.reports._run import load_summary
from triage.reports.schema import SCHEMAS
from triage.reports.schema import schema as get_schema
from triage.cli import env as cli_env


def _stdout() -> TextIO:
    return cli_env.current.stdout


def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", show_default=False,
                       help="Output folder of a scan (holds files.jsonl and summary.json).")],
    formats: Annotated[str | None, typer.Option(
        "--formats", help=f"Comma list of {','.join(FORMATS)} (default: all). "
                          f"{','.join(SCAN_FORMATS)} are accepted and always exist.")] = None,
) -> int:
    """Re-render the reports of a run from files.jsonl + summary.json (the evidence is not read)."""
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run folder")
    lock = FolderLock(run_dir, "report")  # never render beside a scan still writing
    try:
        paths = _render_or_finish(run_dir, formats)
    finally:
        lock.release()
    for path in paths:
        _stdout().write(f"{path}\n")
    return 0


def _render_or_finish(run_dir: Path, formats: str | None) -> list[Path]:
    """A run whose records are all written but whose reports are not (killed while rendering)
    is finished here: its reports rendered, then summary.json marked complete."""
    summary = load_summary(run_dir)
    names = parse_formats(formats)
    run_formats = parse_formats((summary.get("options") or {}).get("formats"))
    if only_reports_missing(summary) and set(run_formats) <= set(names):
        remove_leftovers(run_dir)
        finish(run_dir, summary, names)
        return [run_dir / FORMAT_FILES[n] for n in names]
    return render_all(run_dir, names)


def schema(
    which: Annotated[str, typer.Argument(metavar="files|summary", show_default=False,
                     help="files: one files.jsonl record; summary: summary.json.")],
) -> int:
    """Print the JSON Schema (draft 2020-12) of a files.jsonl record or of summary.json."""
    if which not in SCHEMAS:
        raise UsageError(f"schema: unknown schema {which!r}; choose from {'|'.join(SCHEMAS)}")
    _stdout().write(json.dumps(get_schema(which), indent=2, ensure_ascii=False) + "\n")
    return 0
