"""Shared helpers of the tests/test_reports_*.py files (no tests here).

``scanned_run`` scans every committed image of ``testimages/`` once per session with the
library API (as the scan will call the renderers at its end, the tests call them explicitly);
``fake_run`` builds a run folder from hand-made records written by the scan's own JsonlWriter,
so hostile names reach the renderers exactly as a scan would store them.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import TESTIMAGES

from triage.records import SCHEMA_VERSION, FileRecord
from triage.reports import render_all
from triage.run.results import encode_line
from triage.config import recorded
from triage.run.scan import ScanConfig, run_scan

SETS = TESTIMAGES / "hashsets"
IMAGES = ["mbr.E01", "gpt.img", "ntfs.img", "fat.img", "ext4.img", "iso.iso"]
ALGS = ("md5", "sha1", "sha256")

HOSTILE_NAMES = [
    "/=cmd|' /C calc'!A0",
    "/+SUM(1,2)",
    "/-2+3",
    "/@A1",
    "/\tTAB",
    "/\rCR",
    "/a\nb",
    '/"q"',
    "/pipe|name",
    "/bad\udcffbyte\udc80",
    "/back\\slash\\x41",
    "/\u202egpj.exe",
    "/nul\x00ctl\x1b\x7f",
    "/<script>alert(1)</script>.jpg",
    "/\"><img src=x onerror=alert(1)>",
    "/café ✓ 漢字",
]


@pytest.fixture(scope="session")
def scanned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scan of all testimages with the example sets, every report rendered."""
    out = tmp_path_factory.mktemp("reports") / "run"
    config = ScanConfig(
        evidence=[str(TESTIMAGES / i) for i in IMAGES],
        hashsets=[str(SETS / "caid.csv"), str(SETS / "projectvic.json")],
        known_good=[str(SETS / "known-good.md5")], out=out, workers=2,
        case="CASE-<1>", examiner="J. O'Examiner & co", exhibit="EX\"1\"",
        argv=["triage", "scan", "--case", "CASE-<1>"],
    )
    run_scan(config)
    render_all(out)
    return out


def records_of(run_dir: Path) -> list[dict[str, Any]]:
    with open(run_dir / "files.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def summary_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


BASE_SUMMARY: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION, "complete": True,
    "tool": {"name": "triage", "version": "0.1.0", "pytsk3": "1", "tsk": "4", "libewf": "1",
             "python": "3.11"},
    # options and case as a scan records them (triage.config, the run's one description)
    **recorded(ScanConfig(evidence=["fake.img"], algorithms=ALGS, workers=1, max_orphans=10,
                          case="C", examiner="E", exhibit="X")),
    "host": "h",
    "command": ["triage", "scan", "fake.img"], "started": "2024-01-01T00:00:00.000000Z",
    "finished": "2024-01-01T00:00:01.000000Z",
    "hashsets": [{"name": "caid", "path": "caid.csv", "kind": "known-bad", "format": "csv",
                  "sha256": "0" * 64, "entries": 1, "algorithms": ["md5"], "skipped_lines": 0,
                  "dropped_empty": 0, "conflicts": 0}],
    "interrupted": False, "elapsed_seconds": 1.0,
    "evidence": [{"path": "fake.img", "format": "raw", "segments": ["fake.img"], "size": 1024,
                  "parent": None, "stored_hashes": {}, "volume_system": "none",
                  "volumes": [{"offset": 0, "length": 1024, "description": "whole image",
                               "slot": None, "fs_type": "ext4", "status": "scanned",
                               "error": None, "files": 0, "errors": 0, "notes": []}]}],
    "totals": {"files": 0, "bytes_hashed": 0, "deleted": 0, "errors": 0, "no_content": 0,
               "known_bad_files": 0},
    "categories": {}, "first_hit_seconds": None, "exit_code": 0,
}


def record(path: str, category: str | None = "A", n: int = 1, **kw: Any) -> FileRecord:
    """A plausible record; hashes derive from ``n`` so records differ."""
    hashes = {"md5": f"{n:032x}", "sha1": f"{n:040x}", "sha256": f"{n:064x}"}
    matches = [{"hashset": "caid", "algorithm": "md5", "category": category}] \
        if category not in (None, "unknown") else []
    fields: dict[str, Any] = dict(
        evidence="fake.img", volume_offset=0, fs_type="ext4", path=path, inode=str(n + 10),
        size=100 + n, deleted=False, mtime="2024-01-02T03:04:05Z",
        atime="2024-01-02T03:04:05.5Z", ctime=None, crtime="2023-12-31T23:59:59.123456789Z",
        hashes=hashes if category is not None else {}, category=category, matches=matches,
        error=None if category is not None else "read error: boom",
    )
    fields.update(kw)
    return FileRecord(**fields)


def jsonl_line(r: FileRecord) -> str:
    """A files.jsonl line as the scan writes it (its own encoder): strict UTF-8, a name that
    is not UTF-8 readable in ``path`` and exact in ``path_bytes``."""
    return encode_line(r.to_dict(ALGS)).decode("utf-8")


def fake_run(run_dir: Path, records: list[FileRecord], **summary: Any) -> Path:
    """A run folder as a scan would leave it, from hand-made records."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    with open(run_dir / "files.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(jsonl_line(r) for r in records)
    data = copy.deepcopy(BASE_SUMMARY)
    data.update(summary)
    bad = sum(1 for r in records if r.category not in (None, "unknown", "known-good"))
    data["totals"] = {**data["totals"], "files": len(records), "known_bad_files": bad}
    (run_dir / "summary.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return run_dir
