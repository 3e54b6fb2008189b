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
from triage.reports import FORMATS, SCAN_FORMATS, render_all
from triage.reports.schema import SCHEMAS
from triage.reports.schema import schema as get_schema


def _stdout() -> TextIO:
    from triage import cli  # at call time: cli.py imports this module

    return cli._env.stdout


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
    for path in render_all(run_dir, formats):
        _stdout().write(f"{path}\n")
    return 0


def schema(
    which: Annotated[str, typer.Argument(metavar="files|summary", show_default=False,
                     help="files: one files.jsonl record; summary: summary.json.")],
) -> int:
    """Print the JSON Schema (draft 2020-12) of a files.jsonl record or of summary.json."""
    if which not in SCHEMAS:
        raise UsageError(f"schema: unknown schema {which!r}; choose from {'|'.join(SCHEMAS)}")
    _stdout().write(json.dumps(get_schema(which), indent=2, ensure_ascii=False) + "\n")
    return 0
