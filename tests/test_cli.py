"""The command line as a user and a lab script meet it: exit codes, one-line errors, outputs.

Runs the installed entry point in a subprocess (``python -m triage``) so that what is checked is
exactly what a shell sees, tracebacks included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TESTIMAGES, one_line_error, triage

SETS = TESTIMAGES / "hashsets"



def test_scan_with_hits_exits_1_and_writes_reports(tmp_path: Path) -> None:
    out = tmp_path / "run1"
    proc = triage("scan", str(TESTIMAGES / "ntfs.img"), "--hashset", str(SETS / "caid.csv"),
                  "--hashset", str(SETS / "projectvic.json"), "--known-good",
                  str(SETS / "known-good.md5"), "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["exit_code"] == 1
    assert [h["format"] for h in summary["hashsets"]] == ["csv", "vics", "md5sum"]
    for h in summary["hashsets"]:
        import hashlib

        assert h["sha256"] == hashlib.sha256(Path(h["path"]).read_bytes()).hexdigest()
    lines = (out / "files.jsonl").read_text().splitlines()
    assert len(lines) == summary["totals"]["files"]
    stream = [json.loads(x) for x in lines if ":summary" in x]
    assert stream and stream[0]["category"] == "1" and "-128-" in stream[0]["inode"]
    assert "known-bad hits" in proc.stdout  # the terminal summary table


def test_no_hits_exits_0(tmp_path: Path) -> None:
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--known-good",
                  str(SETS / "known-good.md5"), "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_json_summary_on_stdout(tmp_path: Path) -> None:
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--out", str(tmp_path / "o"), "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["totals"]["files"] >= 1


def test_existing_out_refused_unless_force(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--out", str(out))
    assert proc.returncode == 2
    assert "--force" in one_line_error(proc)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--out", str(out), "--force", "-q")
    assert proc.returncode == 0
    assert (out / "summary.json").exists() and (out / "keep.txt").exists()


def test_default_out_folder_named_after_evidence(tmp_path: Path) -> None:
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "-q", cwd=tmp_path)
    assert proc.returncode == 0
    (folder,) = list(tmp_path.iterdir())
    assert folder.name.startswith("triage-iso.iso-") and folder.name.endswith("Z")
    assert (folder / "files.jsonl").exists()


@pytest.mark.parametrize("args,needle", [
    (["scan", "--no-such-option", "x"], "No such option"),
    (["scan", "/definitely/missing.E01"], "no such file"),
    (["scan", str(TESTIMAGES / "iso.iso"), "--algorithms", "md5,crc32"], "crc32"),
    (["scan", str(TESTIMAGES / "iso.iso"), "--workers", "0"], "--workers"),
    (["scan", str(TESTIMAGES / "iso.iso"), "--hashset", "/missing/set.csv"], "set.csv"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = triage(*args, "--out", str(tmp_path / "o")) if "--no-such-option" not in args else triage(*args)
    assert proc.returncode == 2, proc.stderr
    assert needle in one_line_error(proc)


def test_bad_hash_set_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md5"
    bad.write_text("d8e8fca2dc0f896fd7cb4cb0031ba249  a\nnot-a-hash  b\n")
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--hashset", str(bad), "--out",
                  str(tmp_path / "o"))
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "bad.md5:2" in line
    assert not (tmp_path / "o").exists()  # refused before anything was written
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--hashset", str(bad), "--lenient",
                  "--out", str(tmp_path / "o"), "-q")
    assert proc.returncode == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["hashsets"][0]["skipped_lines"] == 1


def test_unopenable_evidence_exits_3_with_reason(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 400)
    proc = triage("scan", str(junk), "--out", str(tmp_path / "o"), "-q")
    assert proc.returncode == 3
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "no partition table" in summary["evidence"][0]["error"]


def test_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dd"
    empty.write_bytes(b"")
    proc = triage("scan", str(empty), "--out", str(tmp_path / "o"), "-q")
    assert proc.returncode == 3, proc.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "empty file" in summary["evidence"][0]["error"]


def test_unreadable_volume_exits_4(tmp_path: Path) -> None:
    """mbr.img holds a partition of random bytes: finished, but not everything was examined."""
    proc = triage("scan", str(TESTIMAGES / "mbr.img"), "--out", str(tmp_path / "o"), "-q")
    assert proc.returncode == 4, proc.stderr


def test_help_documents_exit_codes() -> None:
    proc = triage("scan", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for code in ("0 finished", "1 finished with known-bad", "2 usage", "3 evidence", "4 finished but"):
        assert code in text
