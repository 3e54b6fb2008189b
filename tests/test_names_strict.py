"""Names that are not UTF-8, end to end: mke2fs -d builds an ext4 image from a folder whose
names hold raw bytes 0x80-0xFF. files.jsonl must be strict UTF-8 JSON (no lone surrogate, which
I-JSON / RFC 7493 parsers reject) with the exact bytes in ``path_bytes``; every report shows the
same bytes; --resume keeps working. Truth: the bytes this test wrote, hashed with hashlib."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from triage.records import record_path
from triage.reports import render_all
from triage.reports._escape import raw_bytes
from triage.reports.dfxml import DFXML_NS
from triage.reports.schema import file_schema, summary_schema
from triage.run.scan import ScanConfig, resume_config, run_scan

# raw path (without the leading /) -> content
FILES = {
    b"bad\xffname.bin": b"one\n",
    b"lat\xe9.txt": b"latin-1 name\n",
    b"dir\x80/inner\xfe.bin": b"three\n",
    b"dir\x80/plain.txt": b"plain name in a bad folder\n",
    b"caf\xc3\xa9.txt": b"valid UTF-8 name\n",
}


def _walk_strings(value: Any) -> None:
    """Every string must encode as strict UTF-8 (a lone surrogate raises)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, list):
        for v in value:
            _walk_strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk_strings(k)
            _walk_strings(v)


def strict_records(out: Path) -> list[dict[str, Any]]:
    """files.jsonl read by strict parsers: UTF-8 decode, json, msgspec (rejects \\udcXX)."""
    recs = []
    for line in (out / "files.jsonl").read_bytes().splitlines():
        data = json.loads(line.decode("utf-8"))
        _walk_strings(data)
        assert msgspec.json.decode(line) == data
        recs.append(data)
    return recs


def _image(tmp_path: Path) -> Path:
    if shutil.which("mke2fs") is None:
        pytest.skip("mke2fs (e2fsprogs) not installed")
    src = os.fsencode(tmp_path / "src")
    for name, body in FILES.items():
        path = os.path.join(src, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(body)
    image = tmp_path / "names.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", os.fsdecode(src), str(image), "4M"],
                   check=True, capture_output=True)
    return image


def _config(image: Path, sets: Path, out: Path, **kw: Any) -> ScanConfig:
    return ScanConfig(evidence=[str(image)], hashsets=[str(sets)], out=out, workers=2, **kw)


@pytest.fixture()
def named(tmp_path: Path) -> tuple[Path, Path]:
    image = _image(tmp_path)
    sets = tmp_path / "bad.md5"  # every file is a hit, so every name reaches every report
    sets.write_text("".join(f"{hashlib.md5(b).hexdigest()}  f{i}\n"
                            for i, b in enumerate(FILES.values())))
    return image, sets


def test_files_jsonl_is_strict_utf8_with_exact_bytes(named, tmp_path: Path) -> None:
    image, sets = named
    outcome = run_scan(_config(image, sets, tmp_path / "run"))
    recs = strict_records(outcome.out)
    schema = file_schema(("md5", "sha1", "sha256"))
    got = {}
    for r in recs:
        jsonschema.validate(r, schema)
        raw = record_path(r).encode("utf-8", "surrogateescape")
        if r["path_bytes"] is None:
            raw_utf8 = r["path"].encode("utf-8")
            assert raw == raw_utf8
        else:
            assert base64.b64decode(r["path_bytes"], validate=True) == raw
            # the readable form: the same name with U+FFFD where the bytes are not UTF-8
            assert r["path"] == raw.decode("utf-8", "replace")
        got[raw.lstrip(b"/")] = r["md5"]
    assert got == {n: hashlib.md5(b).hexdigest() for n, b in FILES.items()}
    # only names that need it carry path_bytes
    plain = {r["path"] for r in recs if r["path_bytes"] is None}
    assert plain == {"/café.txt"}

    render_all(outcome.out)
    summary = json.loads((outcome.out / "summary.json").read_bytes().decode("utf-8"))
    assert summary["totals"]["known_bad_files"] == len(FILES) == summary["totals"]["files"]
    want = {b"/" + n: hashlib.md5(b).hexdigest() for n, b in FILES.items()}
    with open(outcome.out / "hits.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {raw_bytes(r["path"].removeprefix("'")): r["md5"] for r in rows} == want
    root = ET.parse(outcome.out / "files.dfxml").getroot()
    dfxml = {b"/" + raw_bytes(fo.findtext(f"{{{DFXML_NS}}}filename") or ""):
             fo.findtext(f"{{{DFXML_NS}}}hashdigest[@type='md5']")
             for fo in root.iter(f"{{{DFXML_NS}}}fileobject")}
    assert dfxml == want
    page = (outcome.out / "report.html").read_bytes().decode("utf-8")
    assert "/bad\\xffname.bin" in page and "/dir\\x80/inner\\xfe.bin" in page
    assert "\ufffd" not in page  # reports show the exact bytes, not the lossy readable form


def test_resume_with_names_that_are_not_utf8(named, tmp_path: Path) -> None:
    """The journal and --resume carry such names, also in the evidence path itself: a run cut
    after its first task and resumed ends with the same records as an uninterrupted one, and
    summary.json stays strict UTF-8 JSON with the evidence path's exact bytes."""
    image, sets = named
    raw_image = os.path.join(os.fsencode(tmp_path), b"exhibit \xff1.img")
    os.rename(image, raw_image)
    image = Path(os.fsdecode(raw_image))
    clean = run_scan(_config(image, sets, tmp_path / "clean"))
    out = tmp_path / "cut"
    run_scan(_config(image, sets, out))
    summary = json.loads((out / "summary.json").read_text())
    summary["complete"] = False
    (out / "summary.json").write_text(json.dumps(summary))
    journal = (out / ".triage-journal.jsonl").read_text().splitlines()
    (out / ".triage-journal.jsonl").write_text(journal[0] + "\n")
    first_end = json.loads(journal[0])["end"]
    assert first_end < (out / "files.jsonl").stat().st_size  # something is left to redo
    text = (out / "summary.json").read_bytes().decode("utf-8")
    assert "\\udc" not in text  # no JSON escape of a lone surrogate either
    previous = json.loads(text)
    _walk_strings(previous)
    given = previous["evidence_given"][0]
    assert base64.b64decode(given["path_bytes"]) == raw_image
    assert given["path"] == raw_image.decode("utf-8", "replace")
    jsonschema.validate(previous, summary_schema())
    assert resume_config(out).evidence == [str(image)]  # the exact bytes come back
    outcome = run_scan(_config(image, sets, out, resume=True))

    def core(recs: list[dict[str, Any]]) -> list[tuple]:
        return sorted((r["inode"], r["path"], r["path_bytes"], r["md5"], r["category"])
                      for r in recs)

    assert core(strict_records(out)) == core(strict_records(clean.out))
    assert outcome.summary["totals"] == clean.summary["totals"]


def test_info_and_scan_json_are_strict_for_an_evidence_path_not_utf8(tmp_path: Path) -> None:
    """`triage info --json` and `triage scan --json` print strict UTF-8 JSON whatever the
    evidence path holds; the exact path comes back from path_bytes."""
    image = _image(tmp_path)
    raw = os.path.join(os.fsencode(tmp_path), b"ex\xe9hibit.img")
    os.rename(image, raw)
    for args in (["info", os.fsdecode(raw), "--json"],
                 ["scan", os.fsdecode(raw), "--out", str(tmp_path / "o"), "--json"]):
        proc = subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout.decode("utf-8"))
        _walk_strings(data)
        entry = data["evidence"][0] if args[0] == "info" else data["evidence_given"][0]
        assert base64.b64decode(entry["path_bytes"]) == raw
