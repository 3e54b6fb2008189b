"""Never lose a result: worker crashes and hangs cost one file, interruption leaves valid
outputs, and a resumed run ends identical (order aside) to an uninterrupted one.

Faults are injected with TRIAGE_FAULT_INJECT (crash:<path suffix> makes the worker process
exit abruptly while reading that file, hang:<suffix> makes it sleep), read by the workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triage.errors import ExitCode
from triage.run.scan import ScanConfig, run_scan

from conftest import TESTIMAGES

SETS = TESTIMAGES / "hashsets"
MANIFEST = json.loads((TESTIMAGES / "manifest.json").read_text())
EXT4 = next(im for im in MANIFEST["images"] if im["image"] == "ext4.img")


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "files.jsonl").read_text().splitlines()]


def core(recs: list[dict]) -> list[tuple]:
    return sorted((r["volume_offset"], r["inode"], r["path"], r["md5"], r["sha1"], r["category"],
                   r["error"]) for r in recs)


def config(out: Path, **kw) -> ScanConfig:
    return ScanConfig(evidence=[str(TESTIMAGES / "ext4.img")], hashsets=[str(SETS / "caid.csv")],
                      out=out, workers=2, **kw)


@pytest.mark.parametrize("fault", [
    pytest.param("crash", marks=pytest.mark.internal_errors_expected),  # a crash is a defect
    "hang"])
def test_worker_fault_costs_only_that_file(tmp_path: Path, monkeypatch, fault: str) -> None:
    monkeypatch.setenv("TRIAGE_FAULT_INJECT", f"{fault}:/docs/notes.txt")
    outcome = run_scan(config(tmp_path / "o", fs_timeout=3, read_timeout=3))
    recs = {r["path"]: r for r in records(outcome.out)}
    victim = recs["/docs/notes.txt"]
    assert victim["md5"] is None and victim["error"].startswith("not read:")
    assert ("died" in victim["error"]) if fault == "crash" else ("no progress" in victim["error"])
    for f in EXT4["volumes"][0]["files"]:
        if f["path"] != "/docs/notes.txt" and f["content_expected"]:
            assert recs[f["path"]]["md5"] == f["md5"], f["path"]
    assert outcome.summary["totals"]["errors"] == 1
    # a crash is a defect (counted, named); a hang is a limit (slow or looping media)
    assert outcome.summary["totals"]["internal_errors"] == (fault == "crash")
    if fault == "crash":
        assert outcome.summary["first_internal_error"].startswith(
            "/docs/notes.txt: worker process died")
    assert outcome.exit_code == ExitCode.HITS  # the CAID hits are still found and reported


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "triage", "scan", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume_equals_clean_run(tmp_path: Path, sig: int) -> None:
    clean = run_scan(config(tmp_path / "clean"))
    out = tmp_path / "run"
    env = dict(os.environ, TRIAGE_FAULT_INJECT="hang:/docs/notes.txt")
    proc = _start([str(TESTIMAGES / "ext4.img"), "--hashset", str(SETS / "caid.csv"), "--out",
                   str(out), "--workers", "2", "-q"], env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the scan is stuck on the hanging file
        time.sleep(0.3)
        if (out / "files.jsonl").exists() and (out / "files.jsonl").stat().st_size > 0:
            break
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["interrupted"] is True
    partial = records(out)  # every line is whole, valid JSON
    assert len(partial) < len(records(clean.out))

    env.pop("TRIAGE_FAULT_INJECT")
    proc = _start(["--resume", str(out), "-q"], env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.HITS, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["resumed"]
    assert core(records(out)) == core(records(clean.out))
    assert summary["totals"] == clean.summary["totals"]
    assert summary["categories"] == clean.summary["categories"]


def test_resume_refuses_a_complete_run(tmp_path: Path) -> None:
    run_scan(config(tmp_path / "o"))
    proc = subprocess.run([sys.executable, "-m", "triage", "scan", "--resume", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == ExitCode.USAGE
    assert "already complete" in proc.stderr and "Traceback" not in proc.stderr


def test_torn_tail_is_cut_on_resume(tmp_path: Path) -> None:
    """A kill -9 can leave half a line after the last journalled task: resume removes it."""
    clean = run_scan(config(tmp_path / "clean"))
    out = tmp_path / "o"
    run_scan(config(out))
    summary = json.loads((out / "summary.json").read_text())
    summary["complete"] = False
    (out / "summary.json").write_text(json.dumps(summary))
    journal = (out / ".triage-journal.jsonl").read_text().splitlines()
    (out / ".triage-journal.jsonl").write_text("\n".join(journal[:1]) + "\n")
    with open(out / "files.jsonl", "a") as fh:
        fh.write('{"evidence": "half a li')
    outcome = run_scan(config(out, resume=True))
    assert core(records(out)) == core(records(clean.out))
    assert outcome.summary["totals"] == clean.summary["totals"]


def test_max_orphans_bounds_and_says_so(tmp_path: Path, corpus: Path) -> None:
    """dfir_ntfs/ntfs3.raw has 8 orphan files (TSK truth); a bound of 3 lists 3 and says so."""
    image = corpus / "dfir_ntfs" / "ntfs3.raw"
    outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "o", max_orphans=3))
    orphans = [r for r in records(outcome.out) if r["path"].startswith("/$OrphanFiles/")]
    assert len(orphans) == 3 and all(r["orphan"] and r["deleted"] for r in orphans)
    volume = outcome.summary["evidence"][0]["volumes"][0]
    assert volume["status"] == "incomplete"
    assert any("--max-orphans 3" in n for n in volume["notes"])
    assert outcome.exit_code == ExitCode.INCOMPLETE
    outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "n", include_orphans=False))
    assert not [r for r in records(outcome.out) if r["path"].startswith("/$OrphanFiles/")]
