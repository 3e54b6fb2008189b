"""render_all and ``triage report``: format selection, re-rendering without the evidence,
damaged runs, bounded memory over a large files.jsonl."""

from __future__ import annotations

import io
import json
import resource
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from test_reports_support import ALGS, fake_run, jsonl_line, record, scanned_run

from triage import cli
from triage.cli.report import report
from triage.errors import ExitCode, UsageError
from triage.reports import FORMATS, ReportError, parse_formats, render_all

__all__ = ["scanned_run"]
OUTPUTS = {"hits.csv", "report.html", "files.dfxml"}


@pytest.fixture()
def env(monkeypatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(cli.env, "current", cli.Environment(stdout=out, stderr=io.StringIO(),
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


def _triage_report(run: Path, *args: str, fsize: int | None = None
                   ) -> subprocess.CompletedProcess[str]:
    """``triage report`` in a child process; ``fsize`` caps the size of any file it writes
    (RLIMIT_FSIZE: a write past it fails with EFBIG, as on a full disk, even as root)."""
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-m", "triage", "report", str(run), *args],
                          capture_output=True, text=True, timeout=120, preexec_fn=limit,
                          check=False)


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("triage: error: "), proc.stderr
    return lines[0]


def test_report_on_a_full_disk_exits_5(tmp_path: Path) -> None:
    """Disk full while writing report.html: exit 5 (output error), not 2; no torn report and
    no temporary file left, and the inputs are untouched."""
    run = fake_run(tmp_path / "run", [record(f"/p{i}.jpg", "A", i) for i in range(50)])
    inputs = {n: (run / n).read_bytes() for n in ("files.jsonl", "summary.json")}
    proc = _triage_report(run, "--formats", "html", fsize=4096)
    assert proc.returncode == ExitCode.OUTPUT, proc.stderr
    assert "report.html: cannot write" in _one_line_error(proc)
    assert not (run / "report.html").exists() and not list(run.glob(".*.tmp"))
    assert {n: (run / n).read_bytes() for n in inputs} == inputs
    proc = _triage_report(run, "--formats", "html")  # space again: the report is written
    assert proc.returncode == 0, proc.stderr
    assert (run / "report.html").stat().st_size > 4096


def test_report_into_an_unwritable_place_exits_5(tmp_path: Path) -> None:
    """A report whose name is taken by a folder (root ignores permission bits, so this is the
    unwritable output every test machine can make): exit 5, the folder is left alone."""
    run = fake_run(tmp_path / "run", [record("/a.jpg", "A", 1)])
    (run / "hits.csv").mkdir()
    (run / "hits.csv" / "keep").write_text("x")
    proc = _triage_report(run, "--formats", "csv")
    assert proc.returncode == ExitCode.OUTPUT, proc.stderr
    assert "hits.csv: cannot write" in _one_line_error(proc)
    assert (run / "hits.csv" / "keep").read_text() == "x" and not list(run.glob(".*.tmp"))
    # the temporary name taken by a folder too: still exit 5, one line
    (run / ".report.html.tmp").mkdir()
    proc = _triage_report(run, "--formats", "html")
    assert proc.returncode == ExitCode.OUTPUT, proc.stderr
    _one_line_error(proc)
    # a damaged input stays a bad-input error (exit 2)
    with open(run / "files.jsonl", "a", encoding="utf-8") as fh:
        fh.write("not json\n")
    (run / ".report.html.tmp").rmdir()
    proc = _triage_report(run, "--formats", "html")
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "files.jsonl:2" in _one_line_error(proc)
