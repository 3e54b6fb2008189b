"""report.html's first lines must not mislead: the banner is coloured by outcome and
completeness (hits red; not fully examined amber; clean and complete green) and the top box
"Not (fully) examined" lists everything that was not examined, unread files included.
Also: the page printed on A4 by Chromium keeps paths readable and numbers whole."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import TESTIMAGES, needs_tool

from triage.errors import ExitCode
from triage.run.scan import ScanConfig, run_scan

SETS = TESTIMAGES / "hashsets"


def page(out: Path) -> tuple[str, str, str]:
    """(banner class, banner text, top box html or '')"""
    html = (out / "report.html").read_text()
    m = re.search(r'<div class="banner (\w+)" id="verdict">(.*?)</div>', html)
    assert m, html[:2000]
    head = html[:html.index("</header>")]
    box = head[head.index('id="not-examined"'):] if 'id="not-examined"' in head else ""
    return m[1], m[2], box


def nothing_set(tmp: Path) -> str:
    """A known-bad set that matches nothing on the test images."""
    p = tmp / "nothing.md5"
    p.write_text("0123456789abcdef0123456789abcdef  not-on-any-image\n")
    return str(p)


def scan(tmp: Path, name: str, evidence: Path, sets: list[str], **kw) -> tuple[Path, int]:
    outcome = run_scan(ScanConfig(evidence=[str(evidence)], hashsets=sets, out=tmp / name,
                                  workers=1, **kw))
    return outcome.out, int(outcome.exit_code)


def test_hits_red_and_unexamined_volume_in_top_box(tmp_path: Path) -> None:
    out, code = scan(tmp_path, "hits", TESTIMAGES / "mbr.E01", [str(SETS / "caid.csv")])
    assert code == ExitCode.HITS
    cls, text, box = page(out)
    assert cls == "bad" and "9 known-bad file(s)" in text
    # mbr.E01 has a partition without a file system: hits or not, the box says so, in words
    assert "no-filesystem" in box and "no file system that triage can read" in box


def test_clean_complete_run_green_without_box(tmp_path: Path) -> None:
    out, code = scan(tmp_path, "clean", TESTIMAGES / "ext4.img", [nothing_set(tmp_path)])
    assert code == ExitCode.OK
    cls, text, box = page(out)
    assert cls == "ok" and "Every volume was examined" in text and box == ""
    html = (out / "report.html").read_text()
    assert "formats: all (csv, html, dfxml)" in html  # not "formats: —"


def test_unexamined_volumes_amber(tmp_path: Path) -> None:
    out, code = scan(tmp_path, "vols", TESTIMAGES / "mbr.img", [nothing_set(tmp_path)])
    assert code == ExitCode.INCOMPLETE
    cls, text, box = page(out)
    assert cls == "warn" and "Not fully examined" in text
    assert "17,825,792" in box and "no file system that triage can read" in box
    assert box.index("no file system that triage can read") < box.index("FS_Info_Con")


def test_exit_3_amber(tmp_path: Path) -> None:
    evidence = tmp_path / "notes.txt"
    evidence.write_text("not a disk image\n" * 40000)
    out, code = scan(tmp_path, "e3", evidence, [nothing_set(tmp_path)])
    assert code == ExitCode.EVIDENCE
    cls, text, box = page(out)
    assert cls == "warn" and "Exit code 3" in text
    assert "not examined" in box and "notes.txt" in box


def test_all_zero_image_amber(tmp_path: Path) -> None:
    evidence = tmp_path / "zero.img"
    evidence.write_bytes(b"\0" * (4 << 20))
    out, code = scan(tmp_path, "zero", evidence, [nothing_set(tmp_path)])
    cls, text, box = page(out)
    assert cls == "warn" and "only zero bytes" in box


def test_unread_file_listed_in_top_box(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_FAULT_INJECT", "hang:/docs/notes.txt")  # a limit, not a defect
    out, code = scan(tmp_path, "unread", TESTIMAGES / "ext4.img", [nothing_set(tmp_path)],
                     read_timeout=2, fs_timeout=2)
    assert code == ExitCode.INCOMPLETE
    cls, text, box = page(out)
    assert cls == "warn"
    assert "1 file(s) whose content was not read" in box and "/docs/notes.txt" in box


def test_interrupted_run_amber(tmp_path: Path) -> None:
    out = tmp_path / "int"
    env = dict(os.environ, TRIAGE_FAULT_INJECT="hang:/docs/notes.txt")
    proc = subprocess.Popen([sys.executable, "-m", "triage", "scan", str(TESTIMAGES / "ext4.img"),
                             "--hashset", nothing_set(tmp_path), "--out", str(out), "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
            (out / "files.jsonl").exists() and (out / "files.jsonl").stat().st_size):
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED
    cls, text, box = page(out)
    assert cls == "warn" and "interrupted" in text.lower()
    assert "<b>interrupted</b>" in box and "--resume" in box
    # the volume the interruption left half-walked is not "scanned"
    import json

    volume = json.loads((out / "summary.json").read_text())["evidence"][0]["volumes"][0]
    assert volume["status"] == "stopped", volume
    assert any("interrupted (Ctrl-C or SIGTERM)" in n for n in volume["notes"])
    assert "<b>stopped</b>" in box


# -- print -----------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-pdf-header-footer"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    pytest.skip("chromium not installed")


def print_pdf(html: Path, pdf: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--print-to-pdf={pdf}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    assert pdf.stat().st_size > 1000


def test_a4_print_keeps_paths_readable_and_numbers_whole(tmp_path: Path) -> None:
    needs_tool("pdftotext")
    needs_tool("pdftoppm")
    out, _ = scan(tmp_path, "hits", TESTIMAGES / "mbr.E01", [str(SETS / "caid.csv")])
    pdf = tmp_path / "report.pdf"
    print_pdf(out / "report.html", pdf)
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert "(A4)" in info, info
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    hits = text[text.index("Known-bad files"):]
    # offsets whole: each volume offset of a hit appears unbroken
    for offset in ("1,048,576", "9,437,184", "19,922,944"):
        assert re.search(rf"@\s+{re.escape(offset)}\b", hits), offset
    # the Path column is wide enough for a real path: 20+ characters on one line
    path = "/pictures/holiday/photo-001.jpg"
    longest = max(len(m) for m in re.findall(r"[/\w.-]+", hits) if path.startswith(m))
    assert longest >= 20, longest
    # digests may wrap but none is lost: each sha256 of a hit is there once its breaks go
    flat = re.sub(r"\s+", "", hits)
    import json

    recs = [json.loads(x) for x in (out / "files.jsonl").read_text().splitlines()]
    for r in recs:
        if r["category"] in ("A", "B", "C"):
            assert r["sha256"] in flat.replace("|", "")
    # the pages render (and are kept for a person to look at)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")],
                   check=True)
    assert sorted(tmp_path.glob("page-*.png"))
