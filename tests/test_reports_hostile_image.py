"""Hostile file names on a real file system, end to end: mke2fs -d builds an ext4 image whose
names hold formula starts, newlines, quotes, bidi overrides, markup and bytes that are not
UTF-8; every name must come out of every report defused and byte-for-byte recoverable."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from triage.reports import render_all
from triage.reports._escape import raw_bytes
from triage.reports.dfxml import DFXML_NS
from triage.reports.hits_csv import FORMULA_START
from triage.run.scan import ScanConfig, run_scan

NAMES = [b"=cmd|' -C calc'!A0", b"+1+1", b"-2", b"@SUM(A1)", b"a\nb", b"tab\there", b'"q"',
         b"pipe|x", b"bad\xffname\x80", b"\xe2\x80\xaegpj.exe", b"<script>alert(1)<.script>.jpg",
         b"back\\slash", b"caf\xc3\xa9"]


@pytest.fixture()
def hostile_run(tmp_path: Path) -> tuple[Path, dict[bytes, str]]:
    if shutil.which("mke2fs") is None:
        pytest.skip("mke2fs (e2fsprogs) not installed")
    src = tmp_path / "src"
    src.mkdir()
    md5s: dict[bytes, str] = {}
    for i, name in enumerate(NAMES):
        body = f"content {i}\n".encode()
        with open(os.path.join(os.fsencode(src), name), "wb") as fh:
            fh.write(body)
        md5s[name] = hashlib.md5(body).hexdigest()
    image = tmp_path / "hostile.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "4M"],
                   check=True, capture_output=True)
    sets = tmp_path / "bad.md5"
    sets.write_text("".join(f"{h}  f{i}\n" for i, h in enumerate(md5s.values())))
    out = tmp_path / "run"
    run_scan(ScanConfig(evidence=[str(image)], hashsets=[str(sets)], out=out, workers=1))
    render_all(out)
    return out, md5s


def test_every_report_keeps_hostile_names_safe(hostile_run) -> None:
    out, md5s = hostile_run
    with open(out / "hits.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = {}
    for row in rows:
        assert not any(cell.startswith(FORMULA_START) for cell in row.values())
        cell = row["path"].removeprefix("'")
        got[raw_bytes(cell).lstrip(b"/")] = row["md5"]
    assert got == md5s
    root = ET.parse(out / "files.dfxml").getroot()
    names = {raw_bytes(fo.findtext(f"{{{DFXML_NS}}}filename") or "")
             for fo in root.iter(f"{{{DFXML_NS}}}fileobject")}
    assert set(md5s) <= names
    page = (out / "report.html").read_text(encoding="utf-8")
    shown = [p.split("</b>")[0] for p in page.split("<td class=\"wrap path\"><b>")[1:]]
    assert len(shown) == len(NAMES)
    assert all("\n" not in p and "<" not in p and "\u202e" not in p for p in shown)
    assert "/bad\\xffname\\x80" in shown and "/\\u202egpj.exe" in shown
    assert "/a\\nb" in shown and "/&lt;script&gt;alert(1)&lt;.script&gt;.jpg" in shown
