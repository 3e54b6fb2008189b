"""Command line: a thin typer layer over ``triage.run.scan.run_scan``.

Every user error becomes one line on stderr and a documented exit code; the streams and the
terminal are passed in an ``Environment`` so tests need no patching.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

try:  # typer >= 0.16 vendors click as typer._click; older releases use click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from triage.version import __version__
from triage.matching.categories import KNOWN_GOOD, is_known_bad, severity_key
from triage.cli import env as cli_env
from triage.cli.blockset import blockset_app
from triage.cli.hashset import hashset_app
from triage.cli.info import info
from triage.cli.report import report, schema
from triage.cli.env import Environment
from triage.cli.sample import sample
from triage.errors import ExitCode, TriageError, UsageError
from triage.lab.cli import case as case_command, lab_app, rematch as rematch_command
from triage.records import strict_json
from triage.reports._escape import escape, json_safe
from triage.reports.labels import Labels
from triage.reports.words import (EXAMINED, NO_KNOWN_BAD, census_category, census_kind,
                                  known_bad_sets, stopped_early, volume_reason)
from triage.config import ScanConfig, fields
from triage.cli.options import option_fields, values_from, with_options
from triage.run.progress import ProgressSink
from triage.run.scan import default_out_dir, resume_config, run_scan

EXIT_CODES_HELP = (
    "Exit codes: 0 finished, no known-bad match; 1 finished with known-bad matches; "
    "2 usage error or bad input (hash set, option, missing file); 3 evidence could not be "
    "opened at all; 4 finished but some files or volumes could not be read; 5 the output "
    "folder could not be written (disk full, permissions); 130 interrupted (outputs valid, "
    "summary marked incomplete)."
)


def _plain_metavars() -> None:
    """typer >= 0.17 prints each value's Python type in --help (``--workers <int>``,
    ``EVIDENCE... <list[str]>``): an examiner should read words. Options show their metavar
    (set where a word says more) or one derived from the type (N, SECONDS, PATH, TEXT);
    arguments show their name only."""
    try:
        from typer import core
    except ImportError:  # pragma: no cover
        return

    def option_metavar(self: Any, ctx: Any) -> str | None:
        if self.metavar is not None:
            return self.metavar
        desc = getattr(self, "type_descriptor", None)
        if desc is None:
            return None
        if desc.is_choice and desc.choices:
            return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
        if desc.is_path:
            return "PATH"
        bare = self.bare_type() if hasattr(self, "bare_type") else ""
        return {"int": "N", "float": "SECONDS"}.get(bare.removeprefix("list[").rstrip("]"),
                                                     "TEXT")

    if hasattr(core, "TyperOption") and hasattr(core.TyperOption, "display_type_rich"):
        core.TyperOption.display_type_rich = option_metavar  # type: ignore[method-assign]
    if hasattr(core, "TyperArgument") and hasattr(core.TyperArgument, "display_type_rich"):
        core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]


_plain_metavars()

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Forensic triage of disk images against hash sets. "
                  + EXIT_CODES_HELP)


class RichProgress(ProgressSink):
    """Bytes hashed of a total, rate and ETA. In walk order the total starts as the bytes the
    file systems say they use (allocation metadata), grows when the walk finds more, and
    becomes exact once every directory is listed."""

    def __init__(self, console: Console) -> None:
        self._p = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                           TransferSpeedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                           console=console, transient=True)
        self._task = self._p.add_task("scanning", total=None)
        self._listed = self._estimate = 0
        self._exact = False

    def __enter__(self) -> "RichProgress":
        self._p.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._p.stop()

    def _retotal(self) -> None:
        total = self._listed if self._exact else max(self._listed, self._estimate)
        self._p.update(self._task, total=total or None)  # None: unknown, never a full bar

    def estimate(self, nbytes: int) -> None:
        self._estimate += nbytes
        self._retotal()

    def listing_done(self) -> None:
        self._exact = True
        self._retotal()

    def add_total(self, nbytes: int) -> None:
        self._listed += nbytes
        self._retotal()

    def advance(self, nbytes: int, files: int = 1) -> None:
        self._p.advance(self._task, nbytes)

    def status(self, text: str) -> None:
        self._p.update(self._task, description=text[-40:])

    def note(self, text: str) -> None:
        self._p.console.print(f"triage: {text}", markup=False, highlight=False)

    def warn(self, text: str) -> None:
        self._p.console.print(Text(f"triage: warning: {text}", style="bold yellow"))


class PlainProgress(ProgressSink):
    """No terminal to draw on (or --quiet): notes still go to stderr as lines, unless quiet."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self._stream, self._quiet = stream, quiet

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def note(self, text: str) -> None:
        if not self._quiet:
            self._stream.write(f"triage: {text}\n")

    def warn(self, text: str) -> None:
        self._stream.write(f"triage: warning: {text}\n")


def _print_version(value: bool) -> None:
    if value:
        cli_env.current.stdout.write(f"triage {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", is_eager=True,
                                                callback=_print_version,
                                                help="Print the version.")] = False) -> None:
    """Forensic triage of disk images against hash sets."""


SCAN_OPTIONS = option_fields()


@app.command(epilog=EXIT_CODES_HELP)
@with_options(SCAN_OPTIONS, before=2)
def scan(
    ctx: typer.Context,
    evidence: Annotated[list[str] | None, typer.Argument(
        metavar="EVIDENCE...", show_default=False,
        help=next(f.help for f in fields() if f.name == "evidence"))] = None,
    resume: Annotated[Path | None, typer.Option("--resume", metavar="DIR", help="Continue the interrupted run in this folder (evidence, hash sets and options read from its summary.json; only --workers, --quiet and --json may be added).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary table.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print summary.json to stdout instead of the table.")] = False,
    **options: Any,
) -> int:
    """Walk every file system of the evidence, hash every file, match against hash sets."""
    values = values_from(SCAN_OPTIONS, options)
    if resume is not None:
        _refuse_with_resume(ctx)
        config = resume_config(resume, argv=list(sys.argv), **{
            f.name: values[f.name] for f in SCAN_OPTIONS if f.on_resume and _given(ctx, f.name)})
    elif not evidence:
        raise UsageError("missing EVIDENCE (or --resume DIR)")
    else:
        config = ScanConfig(evidence=list(evidence), argv=list(sys.argv), **values)
    if config.out is None:  # named here so an interruption can say where the outputs are
        config.out = default_out_dir(config.evidence)
    show = cli_env.current.interactive and not quiet and not json_out
    console = Console(file=cli_env.current.stderr)
    try:
        with (RichProgress(console) if show else PlainProgress(cli_env.current.stderr, quiet)) as progress:
            outcome = run_scan(config, progress)
    except KeyboardInterrupt:
        _say_interrupted(config.out)
        return int(ExitCode.INTERRUPTED)
    print_internal_errors(outcome.summary, console)
    if json_out:
        cli_env.current.stdout.write(json_safe(json.dumps(strict_json(outcome.summary), indent=2,
                                               ensure_ascii=False))
                          + "\n")
    elif not quiet:
        print_summary(outcome.summary, outcome.out, Console(file=cli_env.current.stdout))
    _warn_after(outcome.summary, table_shown=not (quiet or json_out))
    return int(outcome.exit_code)


# Options that only change how a resumed run is shown or how fast it goes; everything that
# decides what is scanned and matched comes from DIR/summary.json.
RESUME_ALLOWS = ("resume", "quiet", "json_out", *(f.name for f in SCAN_OPTIONS if f.on_resume))


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _typed(ctx: typer.Context, p: Any) -> str:
    """The flag as the user typed it (--no-orphans, not --orphans)."""
    if p.param_type_name != "option" or not p.opts:
        return "EVIDENCE"
    off = getattr(p, "secondary_opts", None)
    return off[0] if off and ctx.params.get(p.name) is False else p.opts[0]


def _refuse_with_resume(ctx: typer.Context) -> None:
    """--resume with --hashset (say) would be silently ignored and yet appear in the recorded
    command: refuse it, naming the options, so what is recorded is what ran."""
    extra = [_typed(ctx, p) for p in ctx.command.params
             if p.name not in RESUME_ALLOWS and p.name is not None and _given(ctx, p.name)]
    if extra:
        raise UsageError(f"--resume DIR takes the evidence, hash sets and options from "
                         f"DIR/summary.json; remove {', '.join(extra)} (with --resume only "
                         "--workers, --quiet and --json are allowed)")


def _warn(text: str) -> None:
    cli_env.current.stderr.write(f"triage: warning: {text}\n")


def _warn_after(summary: dict[str, Any], table_shown: bool) -> None:
    """Without the summary table (--quiet, --json) an early stop is still said, on stderr."""
    early = stopped_early(summary)
    if early and not table_shown:
        _warn(early)


def _say_interrupted(out: Path) -> None:
    """Ctrl-C / SIGTERM: what became of the run, and the exact command that continues it."""
    dir_ = shlex.quote(str(out))
    if not (out / "summary.json").is_file():
        cli_env.current.stderr.write("triage: interrupted before the scan started; nothing was written\n")
        return
    cli_env.current.stderr.write(
        f"triage: interrupted: the scan did not finish. The outputs in {dir_} are valid: "
        "files.jsonl holds every record finished so far, summary.json says "
        "\"complete\": false and the reports are marked partial.\n"
        f"triage: to continue where it stopped: triage scan --resume {dir_}\n")


app.add_typer(hashset_app, name="hashset")
app.add_typer(blockset_app, name="blockset")
app.command("info")(info)
app.command("report")(report)
app.command("schema")(schema)
app.command("sample", epilog=EXIT_CODES_HELP)(sample)
app.add_typer(lab_app, name="lab")
app.command("case")(case_command)
app.command("rematch")(rematch_command)


def print_census(census: dict[str, Any], console: Console) -> None:
    """Files by kind (rows) and category (columns), then the headline."""
    kinds = census["kinds"]
    if not kinds:
        console.print("files by kind and category: no files")
        console.print(Text(escape(census["headline"])))
        return
    cats = sorted({c for row in kinds.values() for c in row}, key=severity_key)
    title = "files by kind and category"
    table = Table(title=title, show_header=True, min_width=len(title) + 4)
    table.add_column("kind")
    for c in cats:  # codes come from hash sets: escaped, and Text is never read as markup
        table.add_column(Text(escape(census_category(c))), justify="right")
    for kind, row in kinds.items():
        table.add_row(Text(escape(census_kind(kind))), *(str(row.get(c, 0)) for c in cats))
    console.print(table)
    console.print(Text(escape(census["headline"])))


def print_internal_errors(summary: dict[str, Any], console: Console) -> None:
    """Internal errors (defects of triage, never results) in red on stderr, whatever
    ``--quiet`` or ``--json`` say: the examiner must not miss that a file was lost to a bug."""
    n = summary["totals"].get("internal_errors", 0)
    if n:
        first = escape(summary.get("first_internal_error") or "")
        console.print(f"[bold red]triage: {n} internal error{'s' * (n != 1)} (a defect of "
                      f"triage: please report it); first:[/] {markup_escape(first)}",
                      highlight=False, soft_wrap=True)


def print_summary(summary: dict[str, Any], out: Path, console: Console) -> None:
    label = Labels(summary)
    t = summary["totals"]
    table = Table(title="triage summary", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("files", str(t["files"]))
    table.add_row("bytes hashed", f"{t['bytes_hashed']:,}")
    table.add_row("deleted", str(t["deleted"]))
    table.add_row("errors", str(t["errors"]))
    if t.get("internal_errors"):
        table.add_row("[bold red]internal errors (defects of triage)[/]",
                      f"[bold red]{t['internal_errors']}[/]")
    table.add_row("no content (names only)", str(t["no_content"]))
    if t.get("perceptual_limited"):
        table.add_row("[yellow]PDQ/vPDQ stopped by a limit (not fully examined)[/]",
                      f"[yellow]{t['perceptual_limited']}[/]")
    if summary["options"].get("size_filter"):
        table.add_row("[yellow]not hashed: size in no set (--size-filter)[/]",
                      f"{t['skipped_size_filter']} ({t['skipped_bytes']:,} bytes)")
    for cat, n in sorted(summary["categories"].items(), key=lambda kv: severity_key(kv[0])):
        style = "bold red" if is_known_bad(cat) else ("green" if cat == KNOWN_GOOD else "")
        name = Text(escape(f"{cat}: {label(cat)}"))  # escaped, and Text is never markup
        table.add_row(name, f"[{style}]{n}[/]" if style else str(n))
    hits = t["known_bad_files"]
    table.add_row("known-bad hits", f"[bold red]{hits}[/]" if hits else "0")
    near = t.get("near_duplicates", 0)
    if summary.get("options", {}).get("pdq"):
        table.add_row("PDQ/vPDQ near-duplicates (review)" if summary["options"].get("vpdq")
                      else "PDQ near-duplicates (review)",
                      f"[bold yellow]{near}[/]" if near else "0")
    console.print(table)
    census = summary.get("census")
    if census:
        print_census(census, console)
    for ev in summary.get("evidence", []):
        if ev.get("error"):
            console.print(Text.assemble(("evidence not scanned: ", "red"), escape(str(ev["error"]))))
        ver = ev.get("verification")
        if ver:
            style = "green" if ver["status"] == "verified" else "red"
            console.print(Text.assemble((f"image verification: {ver['status']}", style),
                                        f" ({escape(str(ev['path']))})"), highlight=False)
        for v in ev.get("volumes", []):
            if v["status"] not in EXAMINED:
                words, detail = volume_reason(v)
                line = Text.assemble((f"volume at offset {v['offset']:,} "
                                      f"({escape(v.get('description') or '?')}) {v['status']}: ",
                                      "yellow"), words)
                if detail:
                    line.append(f" [{escape(detail)}]", style="dim")
                console.print(line)
    early = stopped_early(summary)
    if early:
        console.print(Text(early, style="bold yellow"))
    if not known_bad_sets(summary):
        console.print(Text("warning: " + NO_KNOWN_BAD, style="bold yellow"))
    written = [f"{out}/files.jsonl", f"{out}/summary.json"] + summary.get("reports", [])
    console.print(f"report: {', '.join(written)}  exit code {summary['exit_code']}",
                  markup=False)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, env: Environment | None = None) -> None:
    """Entry point: maps every error to one line and an exit code, never a traceback."""
    cli_env.current = env or Environment()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = app(args=argv, prog_name="triage", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as e:
        cli_env.current.stderr.write(e.ctx.get_help() + "\n" if e.ctx else "usage: triage scan --help\n")
        sys.exit(ExitCode.USAGE)
    except click_exc.UsageError as e:
        sub = e.ctx.info_name if e.ctx and e.ctx.parent else None
        hint = f"triage {sub} --help" if sub else "triage --help"
        cli_env.current.stderr.write(f"triage: error: {e.format_message()} (see '{hint}')\n")
        sys.exit(ExitCode.USAGE)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        cli_env.current.stderr.write("triage: interrupted; outputs so far are kept, summary marked incomplete\n")
        sys.exit(ExitCode.INTERRUPTED)
    except TriageError as e:
        cli_env.current.stderr.write(f"triage: error: {e}\n")
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
