"""``triage sample``: mounted by cli.py as ``app.command("sample")(sample)``.

Writes summary.json (with its ``sampling`` section) and report.html into the output folder,
atomically, under the folder lock scan uses. Exit 1 when any block hit, 4 when reads failed
(the stated confidence is then lower than asked), 0 otherwise.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from triage.run.outdir import claim
from triage.records import strict_json, utc_now
from triage.run.report import write_json_atomic
from triage.reports._escape import escape, json_safe
from triage.cli import env as cli_env


def _streams() -> tuple[TextIO, TextIO]:
    return cli_env.current.stdout, cli_env.current.stderr


def sample(
    evidence: Annotated[list[str], typer.Argument(
        metavar="EVIDENCE...", show_default=False,
        help="Disk images (any container scan opens) or block devices.")],
    blockset: Annotated[str, typer.Option("--blockset", help="Block set (.tbs) to look blocks up in.")],
    confidence: Annotated[float, typer.Option("--confidence", help="Probability of at least one hit if --min-mib of the set's material is on the media, strictly between 0 and 1.")] = 0.99,
    min_mib: Annotated[float, typer.Option("--min-mib", help="Least amount of the set's material (MiB of its distinct blocks) the confidence is stated for.")] = 20.0,
    read_kib: Annotated[str, typer.Option("--read-kib", help="KiB per read (a multiple of the block size), or auto: 16 on rotational media, 4 otherwise.")] = "auto",
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the random draw (default: a random one, recorded).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: triage-sample-<evidence>-<UTC time>).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Reuse a non-empty --out folder.")] = False,
    then_scan: Annotated[bool, typer.Option("--then-scan", help="After a hit: hash the files owning hit blocks in full, then scan everything with --blockset into OUT/scan.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print summary.json to stdout.")] = False,
) -> int:
    """Is known material on this device? Read a random sample of media blocks and look them
    up in a block set; the confidence statement says what the sample promises."""
    from triage.blocks.sample import default_out, run_sample
    from triage.reports.html_blocks import write_sample_report
    from triage.run.scan import tool_versions

    stdout, stderr = _streams()
    out = out or default_out(evidence)
    started, t0 = utc_now(), time.monotonic()
    locks = []
    try:
        media, info, code = run_sample(list(evidence), blockset, confidence, min_mib,
                                       read_kib, seed,
                                       on_ready=lambda: locks.append(claim(out, force, evidence)))
        summary: dict[str, Any] = {
            "kind": "sample", "complete": False, "command": list(sys.argv),
            "tool": tool_versions(),
            "host": socket.gethostname(), "started": started, "blockset": info,
            "sampling": {"media": media}, "exit_code": code,
        }
        if then_scan and code == 1:
            from triage.blocks.confirm import confirm_and_scan

            summary["then_scan"] = confirm_and_scan(list(evidence), blockset, media, out)
        summary["finished"] = utc_now()
        summary["elapsed_seconds"] = round(time.monotonic() - t0, 3)
        write_json_atomic(out / "summary.json", summary)
        write_sample_report(out, summary)
        summary["complete"] = True
        write_json_atomic(out / "summary.json", summary)
    finally:
        for lock in locks:
            lock.release()
    if json_out:
        stdout.write(json_safe(json.dumps(strict_json(summary), indent=2, ensure_ascii=False))
                     + "\n")
    else:
        for m in media:
            stdout.write(f"{escape(m['evidence'])}: {m['reads_ok']:,} of {m['reads']:,} reads "
                         f"({m['bytes_read']:,} bytes) in {m['elapsed_seconds']} s, "
                         f"{m['hit_blocks']:,} block hits\n  {escape(m['statement'])}\n")
            for h in m["hits"][:20]:
                o = h.get("owner", {})
                where = (f"{o.get('path')}{' (deleted)' if o.get('deleted') else ''}"
                         if o.get("where") == "file" else o.get("where"))
                ref = h["reference_files"][0] if h["reference_files"] else {}
                stdout.write(f"  hit at byte {h['device_offset']:,}: {escape(str(where))} "
                             f"<- {escape(str(ref.get('name')))} [{escape(str(ref.get('category')))}]\n")
        stdout.write(f"report: {out}/summary.json, {out}/report.html  exit code {code}\n")
    for m in media:
        if m["read_errors"]:
            stderr.write(f"triage: warning: {escape(m['evidence'])}: {m['read_errors']:,} reads "
                         "failed; the stated confidence is computed from the reads that "
                         "succeeded\n")
    if info.get("invalid"):
        stderr.write(f"triage: {escape(info['invalid'])}; this sample is invalid "
                     "(summary.json: blockset.invalid)\n")
    return code
