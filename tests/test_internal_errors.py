"""Internal errors: a worker exception is a defect of triage, never a result (issue 13).

The file it hit is recorded ``not read: ...`` and, separately, counted in
``totals.internal_errors`` with the first message in ``first_internal_error``; the terminal
shows it in red; the run exits 4 (1 when there are hits); and the test suite fails on any it did
not expect (conftest's TRIAGE_INTERNAL_ERRORS_LOG gate, exercised here). Evidence errors
(OSError from TSK, libyal, libewf) are not internal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from triage.errors import ExitCode
from triage.content.hashing import hash_reads
from triage.run.inspect import INSPECTORS
from triage.run.pool import WorkerPool, describe_defect
from triage.records import FileRecord, ReadTarget
from triage.reports.schema import summary_schema
from triage.run.results import Tally
from triage.run.scan import ScanConfig, run_scan
from triage.run.tasks import _hash_into

from conftest import TESTIMAGES

SETS = TESTIMAGES / "hashsets"
MANIFEST = json.loads((TESTIMAGES / "manifest.json").read_text())
EXT4 = next(im for im in MANIFEST["images"] if im["image"] == "ext4.img")
VICTIM = "/docs/notes.txt"


def _records(out: Path) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, (out / "files.jsonl").read_text().splitlines())}


@pytest.mark.internal_errors_expected
def test_injected_exception_is_counted_recorded_and_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_FAULT_INJECT", f"raise:{VICTIM}")
    outcome = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "ext4.img")],
                                  hashsets=[str(SETS / "caid.csv")], out=tmp_path / "o",
                                  workers=2))
    recs = _records(outcome.out)
    victim = recs[VICTIM]
    assert victim["md5"] is None
    assert victim["error"].startswith("not read: RuntimeError: injected fault")
    assert "(at triage/run/faults.py:" in victim["error"]  # where to look
    for f in EXT4["volumes"][0]["files"]:
        if f["path"] != VICTIM and f["content_expected"]:
            assert recs[f["path"]]["md5"] == f["md5"], f["path"]
    s = outcome.summary
    assert s["totals"]["internal_errors"] == 1 and s["totals"]["errors"] == 1
    assert s["first_internal_error"].startswith(f"{VICTIM}: RuntimeError: injected fault")
    assert outcome.exit_code == ExitCode.HITS
    jsonschema.validate(s, summary_schema())
    on_disk = json.loads((outcome.out / "summary.json").read_text())
    assert on_disk["totals"]["internal_errors"] == 1
    page = (outcome.out / "report.html").read_text()
    assert "<b>1 internal error(s)</b>" in page and "RuntimeError: injected fault" in page


@pytest.mark.internal_errors_expected
def test_cli_shows_it_in_red_exits_4_and_reports_to_the_test_gate(tmp_path: Path) -> None:
    """Through the CLI (a subprocess): red line on stderr even with --quiet, exit 4 without
    hits, and one line in the session's TRIAGE_INTERNAL_ERRORS_LOG (what fails other tests)."""
    log = Path(os.environ["TRIAGE_INTERNAL_ERRORS_LOG"])
    before = log.read_text() if log.exists() else ""
    env = dict(os.environ, TRIAGE_FAULT_INJECT=f"raise:{VICTIM}", FORCE_COLOR="1",
               COLUMNS="200")
    p = subprocess.run([sys.executable, "-m", "triage", "scan", str(TESTIMAGES / "ext4.img"),
                        "--out", str(tmp_path / "o"), "--quiet", "--workers", "1"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == ExitCode.INCOMPLETE, p.stderr
    assert "\x1b[1;31m" in p.stderr  # bold red
    assert "1 internal error" in p.stderr and "RuntimeError: injected fault" in p.stderr
    assert VICTIM in p.stderr
    new = log.read_text()[len(before):].splitlines()
    assert len(new) == 1
    entry = json.loads(new[0])
    assert entry["out"] == str((tmp_path / "o").resolve()) and entry["internal_errors"] == 1


def test_a_clean_scan_has_none(tmp_path: Path) -> None:
    outcome = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "ext4.img")], out=tmp_path / "o",
                                  workers=1))
    assert outcome.summary["totals"]["internal_errors"] == 0
    assert outcome.summary["first_internal_error"] is None
    assert outcome.exit_code == ExitCode.OK


class _Backend:
    """Reads ``data`` through hash_reads, like every real backend."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def hash_content(self, handle, target, size, algorithms, progress, keep=None):
        return hash_reads(lambda p, n: self.data[p:p + n], size, algorithms, progress, keep)


def test_an_inspector_defect_keeps_the_hashes(monkeypatch) -> None:
    """A defect in content inspection costs the census fields, never the hashes (nor the
    match a hash gives): counted as internal, the record stays readable."""
    def broken(record, read):
        raise TypeError("unhashable type: 'bytearray'")

    monkeypatch.setattr("triage.run.tasks.INSPECTORS", INSPECTORS + [broken])
    data = b"\x89PNG\r\n\x1a\n" + bytes(100)
    record = FileRecord("e", 0, "ext4", "/a.png", "5", len(data), False, target=ReadTarget(5))
    tally = Tally()
    state = type("S", (), {"init": type("I", (), {"algorithms": ("md5",)})(),
                           "keep": None, "pdq": None})()
    _hash_into(state, _Backend(data), None, record, tally, lambda: None)
    import hashlib

    assert record.hashes == {"md5": hashlib.md5(data).hexdigest()} and record.error is None
    assert tally.internal_errors == 1
    assert tally.first_internal_error.startswith(
        "/a.png: content inspection: TypeError: unhashable type")


def _no_state(arg):
    return None


def _raise_type_error(state, arg, beat):
    raise TypeError("boom")


def _raise_os_error(state, arg, beat):
    raise OSError("TSK read error")


def test_pool_tells_defects_from_evidence_errors() -> None:
    """OSError (evidence) is a plain failure; any other exception is internal."""
    pool = WorkerPool(1, {"t": _raise_type_error, "o": _raise_os_error}, init=_no_state)
    try:
        events = []
        for i, name in enumerate(("t", "o")):
            pool.submit(i, name, None, 30)
            while not (got := pool.poll(1)):
                pass
            events += got
    finally:
        pool.close()
    assert [(e.kind, e.internal) for e in events] == [("failed", True), ("failed", False)]
    assert events[0].payload.startswith("TypeError: boom (at triage/run/pool.py:")
    assert events[1].payload == "OSError: TSK read error"


def test_describe_defect_names_our_innermost_frame() -> None:
    try:
        hash_reads(lambda p, n: 42, 10, ("md5",))  # a reader returning no buffer at all
    except TypeError as e:
        text = describe_defect(e)
    assert text.startswith("TypeError: ") and "(at triage/evidence/buffers.py:" in text


def test_the_journal_keeps_internal_errors_for_resume() -> None:
    """A resumed run's totals start from the journal: the count and first message survive."""
    from triage.run.journal import _tally_in, _tally_out

    t = Tally()
    t.internal("/a", "TypeError: x (at triage/content/census.py:1)")
    t.internal("/b", "KeyError: y")
    back = _tally_in(json.loads(json.dumps(_tally_out(t))))
    assert back.internal_errors == 2
    assert back.first_internal_error == "/a: TypeError: x (at triage/content/census.py:1)"
    total = Tally()
    total.add(Tally())
    total.add(back)
    assert total.totals()["internal_errors"] == 2 and total.first_internal_error.startswith("/a")


def test_describe_defect_ignores_code_outside_the_package(tmp_path: Path) -> None:
    """A checkout or caller folder that is itself named ``triage`` is not triage's own code:
    only frames inside the package are named (CI clones into a folder named triage)."""
    import importlib.util

    from triage.run.pool import describe_defect

    mod = tmp_path / "triage" / "caller.py"
    mod.parent.mkdir()
    mod.write_text("def boom():\n    raise TypeError('boom')\n")
    spec = importlib.util.spec_from_file_location("caller_outside", mod)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.boom()
    except TypeError as e:
        assert describe_defect(e) == "TypeError: boom"
