"""render_all and ``triage report``: format selection, re-rendering without the evidence,
damaged runs, bounded memory over a large files.jsonl."""

from __future__ import annotations

import io
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
from test_reports_support import ALGS, fake_run, jsonl_line, record, scanned_run

from triage import cli
from triage.cli_report import report
from triage.errors import UsageError
from triage.reports import FORMATS, ReportError, parse_formats, render_all

__all__ = ["scanned_run"]
OUTPUTS = {"hits.csv", "report.html", "files.dfxml"}


@pytest.fixture()
def env(monkeypatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(cli, "_env", cli.Environment(stdout=out, stderr=io.StringIO(),
                                                     interactive=False))
    return out


def test_parse_formats() -> None:
    assert parse_formats(None) == list(FORMATS) == parse_formats("all")
    assert parse_formats("html, CSV") == ["csv", "html"]
    assert parse_formats(["files.dfxml", "jsonl", "json"]) == ["dfxml"]
    with pytest.raises(UsageError, match="pdf"):
        parse_formats("csv,pdf")


def test_report_rerenders_without_the_evidence(scanned_run: Path, tmp_path: Path,
                                               env: io.StringIO) -> None:
    """Copy only files.jsonl + summary.json elsewhere: the evidence paths in them no longer
    resolve, and every report is still produced identically."""
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("files.jsonl", "summary.json"):
        shutil.copy(scanned_run / name, run / name)
    assert report(run, None) == 0
    assert {Path(line).name for line in env.getvalue().split()} == OUTPUTS
    for name in OUTPUTS:
        assert (run / name).read_bytes() == (scanned_run / name).read_bytes(), name
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert report(run, "csv") == 0
    after = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    changed = {n for n in after if after[n] != before.get(n)}
    assert changed <= {"hits.csv"}  # html and dfxml untouched, inputs untouched
    assert not list(run.glob(".*.tmp"))


def test_report_usage_errors(tmp_path: Path, env: io.StringIO) -> None:
    with pytest.raises(UsageError):
        report(tmp_path / "missing", None)
    with pytest.raises(UsageError, match="not a triage run folder"):
        report(tmp_path, None)


def test_torn_last_line_is_tolerated_corrupt_line_is_not(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", [record("/a", "A", 1), record("/b", "A", 2)])
    with open(run / "files.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"evidence":"fake.img","path":"/torn')  # a scan killed mid-write
    render_all(run)
    assert (run / "hits.csv").read_bytes().count(b"\r\n") == 3
    with open(run / "files.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n" + jsonl_line(record("/c", "A", 3)))
    with pytest.raises(ReportError, match=r"files\.jsonl:3"):
        render_all(run)


def test_failed_render_keeps_previous_report(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", [record("/a", "A", 1)])
    render_all(run, ["html"])
    before = (run / "report.html").read_bytes()
    with open(run / "files.jsonl", "a", encoding="utf-8") as fh:
        fh.write("not json\n")
    with pytest.raises(ReportError):
        render_all(run, ["html"])
    assert (run / "report.html").read_bytes() == before
    assert not list(run.glob(".*.tmp"))


def test_memory_is_bounded(tmp_path: Path) -> None:
    """30,000 records, a fifth of them hits: peak Python memory far below the input size."""
    run = tmp_path / "big"
    fake_run(run, [])
    n = 30_000
    with open(run / "files.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n):
            cat = "B" if i % 5 == 0 else "unknown"
            fh.write(jsonl_line(record(f"/dir{i % 97}/file-{i}.jpg", cat, i)))
    summary = json.loads((run / "summary.json").read_text())
    summary["totals"].update(files=n, known_bad_files=n // 5)
    (run / "summary.json").write_text(json.dumps(summary))
    size = (run / "files.jsonl").stat().st_size
    tracemalloc.start()
    try:
        render_all(run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 10_000_000
    assert peak < 12_000_000, f"peak {peak:,} bytes for a {size:,}-byte files.jsonl"
    text = (run / "report.html").read_text(encoding="utf-8")
    assert f"{n // 5 - 1000:,} more, see hits.csv" in text
    assert (run / "hits.csv").read_bytes().count(b"\r\n") == n // 5 + 1
    assert ALGS[0] in text


def test_parallel_render_writes_the_same_bytes(scanned_run: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Large runs render DFXML in two halves in spawned processes (ids continue across the cut)
    while the main process writes the rest: the same files, byte for byte, no parts left."""
    import triage.reports as reports

    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    for d in (serial, parallel):
        d.mkdir()
        for name in ("files.jsonl", "summary.json"):
            shutil.copy(scanned_run / name, d / name)
    render_all(serial)
    monkeypatch.setattr(reports, "PARALLEL_FROM", 0)
    paths = render_all(parallel)
    assert [p.name for p in paths] == [reports.FORMAT_FILES[f] for f in reports.FORMATS]
    for p in paths:
        assert p.read_bytes() == (serial / p.name).read_bytes(), p.name
    assert sorted(x.name for x in parallel.iterdir()) == sorted(x.name for x in serial.iterdir())
