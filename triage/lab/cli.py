"""``triage lab worker|submit|status``, ``triage case`` and ``triage rematch``: typer commands
over ``triage.lab``. Mounted by ``triage.cli`` (``app.add_typer(lab_app, name="lab")`` and two
commands); Celery is imported only when a lab command runs, so ``triage scan`` never needs it.
User errors are ``TriageError``s: one line and exit code 2 through ``triage.cli.main``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from triage.cli.options import option_fields, values_from, with_options
from triage.lab import settings
from triage.reports._escape import escape, json_safe

lab_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      rich_markup_mode=None,
                      help="Many exhibits on many machines through Celery + Redis.")

BrokerOpt = Annotated[str | None, typer.Option(
    "--broker", help=f"Redis URL of the queue (default: ${settings.BROKER_ENV} or "
                     f"{settings.DEFAULT_BROKER}).")]


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@lab_app.command()
def worker(
    broker: BrokerOpt = None,
    queues: Annotated[str, typer.Option("--queues", help="Comma list of queues to take exhibits from.")] = settings.DEFAULT_QUEUE,
    scan_workers: Annotated[int | None, typer.Option("--scan-workers", help="Hashing processes per exhibit (default: every core of this machine).")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Celery log level.")] = "INFO",
) -> None:
    """Take exhibits from the queue, one at a time, each scanned with every core."""
    from triage.lab.app import configure
    from triage.lab.worker import SCAN_WORKERS_ENV, cores

    if scan_workers is not None:
        if scan_workers < 1:
            raise typer.BadParameter("must be at least 1", param_hint="--scan-workers")
        os.environ[SCAN_WORKERS_ENV] = str(scan_workers)
    app = configure(broker)
    url = settings.shown_url(app.conf.broker_url)
    sys.stderr.write(f"triage lab worker: broker {url}, queues {queues}, {cores()} hashing "
                     f"processes per exhibit, visibility timeout "
                     f"{settings.visibility_timeout():.0f} s\n")
    from triage.errors import UsageError
    from triage.lab.client import ping

    try:
        ping(broker)
    except UsageError as e:
        sys.stderr.write(f"triage lab worker: {e}; retrying until it answers\n")
    sys.stderr.flush()
    # solo pool: the exhibit runs in this process, whose own hashing processes use every core
    # (a prefork child is daemonic and may not start them); one exhibit at a time
    app.worker_main(["worker", "-Q", queues, "--pool", "solo", "--concurrency", "1",
                     "--prefetch-multiplier", "1",
                     "--loglevel", loglevel, "-n", f"triage-{os.getpid()}@%h",
                     "--without-gossip", "--without-mingle"])


SUBMIT_OPTIONS = option_fields(lab=True)


@lab_app.command()
@with_options(SUBMIT_OPTIONS, before=2)
def submit(
    case_dir: Annotated[Path, typer.Argument(metavar="CASE_DIR", show_default=False, help="The case folder (new, empty, or this case's) on shared storage.")],
    evidence: Annotated[list[str], typer.Argument(metavar="EVIDENCE...", show_default=False, help="One exhibit per evidence item, at a path every worker sees.")],
    exhibit_names: Annotated[list[str], typer.Option("--exhibit-names", help="Comma list of exhibit names, one per evidence item (default: the evidence file names).")] = [],  # noqa: B006
    broker: BrokerOpt = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Queue to submit to (default: triage).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was queued as JSON.")] = False,
    **given: Any,
) -> None:
    """Queue one scan per evidence item into CASE_DIR/<exhibit>/ (the files of triage scan --out);
    the options are triage scan's, applied to every exhibit; hash sets are compiled once into
    CASE_DIR/hashsets."""
    from triage.config import ScanOptions
    from triage.lab.client import submit as do_submit

    values = values_from(SUBMIT_OPTIONS, given)
    options = ScanOptions(**{k: v for k, v in values.items() if k in ScanOptions.__struct_fields__})
    done = do_submit(case_dir, list(evidence), values["hashsets"], values["known_good"],
                     exhibit_names=_split(exhibit_names) or None, case=values["case"],
                     examiner=values["examiner"], broker=broker, queue=queue,
                     pdq_sets=values["pdq_sets"], options=options)
    if json_out:
        sys.stdout.write(json_safe(json.dumps({
            "case": done.case.case, "id": done.case.id, "folder": str(done.case.path),
            "exhibits": [e.to_toml() for e in done.exhibits]}, ensure_ascii=False)) + "\n")
        return
    for ex in done.exhibits:
        sys.stdout.write(f"queued {escape(ex.name)}: {escape(ex.evidence)} (task {ex.task_id})\n")
    sys.stdout.write(f"{len(done.exhibits)} exhibit(s) queued in {escape(str(done.case.path))}; "
                     f"follow with: triage lab status {escape(str(case_dir))}\n")


def _cell(row: dict[str, Any]) -> tuple[str, str]:
    state = row["state"]
    if state == "done":
        cats = ", ".join(f"{c}: {n}" for c, n in sorted(row.get("categories", {}).items()))
        detail = f"exit {row.get('exit_code')}; {cats or 'no files'}"
        if row.get("resumed"):
            detail += "; resumed after an interruption"
        return detail, row.get("host") or ""
    if state == "running":
        p = row.get("progress") or {}
        pct = f"{p['percent']}%" if p.get("percent") is not None else "?%"
        detail = (f"{pct} ({p.get('bytes_hashed', 0):,} of {p.get('bytes_total', 0):,} bytes, "
                  f"{p.get('files', 0):,} files)")
        if row.get("resume"):
            detail += "; resuming"
        return detail, f"{row.get('host')} pid {row.get('pid')}"
    if state == "queued" and row.get("resume"):
        return "an interrupted run waits to be resumed", ""
    return str(row.get("reason") or ""), str(row.get("host") or "")


def print_status(data: dict[str, Any], console: Console) -> None:
    title = f"case {escape(data['case']) or '(no reference)'}: {escape(data['folder'])}"
    table = Table(title=Text(title), show_header=True)
    for col in ("exhibit", "state", "host", "detail"):
        table.add_column(col)
    styles = {"done": "green", "failed": "bold red", "lost": "yellow", "running": "cyan"}
    for row in data["exhibits"]:
        detail, host = _cell(row)
        if row["state"] == "done" and row.get("known_bad_files"):
            style = "bold red"
        else:
            style = styles.get(row["state"], "")
        table.add_row(Text(escape(row["name"])), Text(row["state"], style=style),
                      Text(escape(host)), Text(escape(detail)))
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(data["counts"].items()))
    console.print(Text(f"{len(data['exhibits'])} exhibit(s): {counts}"))


@lab_app.command()
def status(
    case_dir: Annotated[Path, typer.Argument(metavar="CASE_DIR", show_default=False)],
    broker: BrokerOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Show it again every 2 s until every exhibit is done or failed.")] = False,
) -> None:
    """Per exhibit: queued / running on which host with progress / done (exit code, hits by
    category) / failed (why)."""
    from triage.lab.client import status as get_status

    console = Console(file=sys.stdout)
    while True:
        data = get_status(case_dir, broker)
        if json_out:
            sys.stdout.write(json_safe(json.dumps(data, ensure_ascii=False)) + "\n")
        else:
            print_status(data, console)
        sys.stdout.flush()
        if not watch or data["finished"]:
            return
        time.sleep(2.0)


def case(
    case_dir: Annotated[Path, typer.Argument(metavar="CASE_DIR", show_default=False, help="A lab case folder.")],
    formats: Annotated[str, typer.Option("--formats", help="Comma list of json,html.")] = "json,html",
) -> None:
    """case.json and case.html: every exhibit with its status and hits, the files found on two
    or more exhibits, totals. From the exhibits' output files only, never the evidence."""
    from triage.lab.caseview import write_case

    written, view = write_case(case_dir, formats)
    t = view["totals"]
    sys.stdout.write(f"{t['exhibits']} exhibit(s), {t['done']} done, {t['failed']} failed, "
                     f"{t['known_bad_files']:,} known-bad file(s), {t['linked_files']:,} file(s) "
                     f"on two or more exhibits; wrote {', '.join(str(p) for p in written)}\n")


def rematch(
    target: Annotated[Path, typer.Argument(metavar="RUN_OR_CASE_DIR", show_default=False, help="A finished run folder or a lab case folder.")],
    hashset: Annotated[list[str], typer.Option("--hashset", help="Known-bad hash set to match against (repeat).")] = [],  # noqa: B006
    known_good: Annotated[list[str], typer.Option("--known-good", help="Known-good hash set (repeat).")] = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option("--out", help="Where the new matched run (or case) goes (default: beside it, named ...-rematch-<UTC time>).")] = None,
    formats: Annotated[str | None, typer.Option("--formats", help="Reports of the new run: csv,html,dfxml (default: csv,html).")] = "csv,html",
    local: Annotated[bool, typer.Option("--local", help="On a case: re-match every exhibit here instead of through the queue.")] = False,
    broker: BrokerOpt = None,
) -> None:
    """Match a run's (or every exhibit's) files.jsonl against new hash sets, without the evidence."""
    from triage.lab.rematching import rematch as do_rematch

    result = do_rematch(target, list(hashset), list(known_good), out=out, formats=formats,
                        local=local, broker=broker)
    for r in result["runs"]:
        cats = ", ".join(f"{c}: {n}" for c, n in sorted(r.get("categories", {}).items()))
        sys.stdout.write(f"{escape(r['out'])}: {r['records']:,} records, "
                         f"{r['known_bad_files']:,} known-bad ({escape(cats) or 'none'}) "
                         f"in {r['seconds']:.2f} s\n")
