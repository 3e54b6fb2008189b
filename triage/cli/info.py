"""``triage info``: a plain typer-annotated function, mounted by cli.py as

    app.command("info")(info)

Writes through ``triage.cli``'s Environment (looked up at call time: no import cycle). Exit
code 0 when every piece of evidence could be opened, 3 otherwise (the others are still shown).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from triage.errors import ExitCode
from triage.filesystems.info import info_many
from triage.records import strict_json
from triage.reports._escape import escape as text_escape
from triage.cli import env as cli_env


def _stdout() -> TextIO:
    return cli_env.current.stdout


def info(
    evidence: Annotated[list[str], typer.Argument(
        metavar="EVIDENCE...", show_default=False,
        help="Disk images, block devices or folders (as for 'triage scan').")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> int:
    """Describe evidence without hashing: format, size, segments, stored hashes, partition
    table, and per volume the file system, label, size and encryption."""
    entries, ok = info_many(list(evidence))
    out = _stdout()
    if json_out:
        # strict UTF-8 JSON: a path that is not UTF-8 gets path_bytes beside it
        out.write(json.dumps(strict_json({"evidence": entries}), indent=2, ensure_ascii=False)
                  + "\n")
    else:
        console = Console(file=out, highlight=False, soft_wrap=False)
        for entry in entries:
            print_info(entry, console)
    return int(ExitCode.OK if ok else ExitCode.EVIDENCE)


HEADER_LABELS = {"case_number": "case number", "description": "description",
                 "examiner_name": "examiner", "evidence_number": "evidence number",
                 "notes": "notes", "acquiry_date": "acquisition date",
                 "system_date": "system date", "acquiry_operating_system": "acquired on (OS)",
                 "acquiry_software": "acquisition software",
                 "acquiry_software_version": "acquisition software version",
                 "model": "device model", "serial_number": "device serial number",
                 "device_label": "device label"}


def _units(n: int) -> str:
    value, unit = float(n), "B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:,.1f} {unit} ({n:,} B)"


def print_info(entry: dict[str, Any], console: Console) -> None:
    """One evidence: a key/value table, the partition table, the volumes."""
    e = escape
    if entry.get("error"):
        message = str(entry["error"])  # one line, the path once (most errors start with it)
        if not message.startswith(f"{entry['path']}:"):
            message = f"{entry['path']}: {message}"
        console.print(f"[red]{e(message)}[/]", soft_wrap=True)
        return
    t = Table(title=e(entry["path"]), show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("format", e(entry["format"]))
    if entry.get("size") is not None:
        t.add_row("media size", _size_text(entry["size"]))
    segs = entry.get("segments", [])
    if len(segs) > 1 or entry["format"] not in ("raw", "logical"):
        t.add_row("segments", "\n".join(f"{e(s['path'])}  {_size_text(s['size'])}" for s in segs))
    if entry.get("parent"):
        t.add_row("parent", e(entry["parent"]))
    for alg, value in entry.get("stored_hashes", {}).items():
        t.add_row(f"stored {alg}", value)
    for key, value in (entry.get("acquisition") or {}).items():  # E01 header: evidence text
        t.add_row(HEADER_LABELS.get(key, key.replace("_", " ")), e(text_escape(value)))
    vs = entry.get("volume_system", "none")
    t.add_row("volume system", e(vs) + (f" ({entry['sector_size']}-byte sectors)"
                                       if entry.get("sector_size") else ""))
    console.print(t)
    for w in entry.get("warnings", []):
        console.print(f"[yellow]warning:[/] {e(w)}")
    if entry.get("partitions"):
        pt = Table(title="partition table", title_justify="left")
        for col in ("slot", "start sector", "sectors", "offset", "length", "description"):
            pt.add_column(col, justify="right" if col in ("start sector", "sectors", "offset")
                          else "left")
        for p in entry["partitions"]:
            style = "" if p["kind"] == "allocated" else "dim"
            pt.add_row(p["slot"] or p["kind"], str(p["start_sector"]), str(p["sectors"]),
                       f"{p['offset']:,}", _size_text(p["length"]), e(p["description"]),
                       style=style)
        console.print(pt)
    vt = Table(title="volumes", title_justify="left")
    for col in ("offset", "size", "file system", "label", "status", "encryption / notes"):
        vt.add_column(col, justify="right" if col == "offset" else "left")
    for v in entry.get("volumes", []):
        status = v["status"] or ""
        colour = {"readable": "green", "empty": "dim",
                  "encrypted": "bold red"}.get(status, "yellow")
        detail = "; ".join(x for x in [v.get("encryption"), v.get("error") if status != "encrypted"
                                       else None, *v.get("notes", [])] if x)
        vt.add_row(f"{v['offset']:,}", _size_text(v["fs_size"] or v["length"]),
                   e(v["fs_type"] or "-"), e(v["label"] or ""), f"[{colour}]{status}[/]",
                   e(detail))
    console.print(vt)


def _size_text(n: int | None) -> str:
    if n is None:
        return ""
    if n < 1024:
        return f"{n:,} B"
    return _units(n)
