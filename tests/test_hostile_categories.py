"""Category codes from a hash set are escaped wherever shown (issue 14, item 6).

A generated set gives its entries category codes holding an ANSI escape, control characters,
bidi overrides and rich markup. The terminal (summary table, census, ``--json``, ``hashset
info``/``lookup``) and report.html must show them in the one escaped form, never raw, and
never obey them ("[red]x" must stay text, not turn the rest red and vanish).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from triage.hashsets import import_hashsets
from triage.reports._escape import escape

CODES = ["\x1b[31mA", "B\x07\rx\x08", "\u202eC\u2066", "[red]x", "[bold]y[/bold]", "D\x85E"]
RAW = ("\x1b", "\x07", "\x08", "\u202e", "\u2066", "\x85")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True,
                          text=True, timeout=120)


def _assert_escaped(text: str, where: str) -> None:
    for raw in RAW:
        assert raw not in text, (where, raw)
    assert "\r" not in text.replace("\r\n", "\n"), where


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    evidence = root / "evidence"
    evidence.mkdir()
    rows = ["md5,category"]
    for n, code in enumerate(CODES):
        data = f"hostile-category-file-{n}".encode()
        (evidence / f"f{n}.bin").write_bytes(data)
        rows.append(f"{hashlib.md5(data).hexdigest()},\"{code}\"")
    source = root / "set.csv"
    source.write_bytes(("\n".join(rows) + "\n").encode())
    index = root / "set.tdb"
    import_hashsets([source], index)
    return {"root": root, "evidence": evidence, "source": source, "index": index}


@pytest.mark.parametrize("set_kind", ["source", "index"])
def test_terminal_and_report(material: dict[str, Path], set_kind: str) -> None:
    out = material["root"] / f"run-{set_kind}"
    proc = _run("scan", str(material["evidence"]), "--hashset", str(material[set_kind]),
                "--out", str(out), "--workers", "1")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["categories"]) == set(CODES)  # the data keeps the codes exactly
    _assert_escaped(proc.stdout + proc.stderr, "terminal")
    for code in CODES:
        assert escape(code) in proc.stdout, code  # shown, in the escaped form
    assert "[red]x" in proc.stdout and "[bold]y[/bold]" in proc.stdout  # text, not markup
    page = (out / "report.html").read_text()
    _assert_escaped(page, "report.html")
    census = page[page.index("Content census"):]
    census = census[:census.index("</table>")]
    assert "\\x1b[31mA" in census and "\\u202eC\\u2066" in census and "[red]x" in census


def test_scan_json_output(material: dict[str, Path]) -> None:
    proc = _run("scan", str(material["evidence"]), "--hashset", str(material["index"]),
                "--out", str(material["root"] / "run-json"), "--workers", "1", "--json")
    assert proc.returncode == 1, proc.stderr
    _assert_escaped(proc.stdout, "scan --json")
    assert set(json.loads(proc.stdout)["categories"]) == set(CODES)


def test_hashset_info_and_lookup(material: dict[str, Path]) -> None:
    info = _run("hashset", "info", str(material["index"]))
    assert info.returncode == 0, info.stderr
    _assert_escaped(info.stdout, "hashset info")
    assert escape(CODES[0]) in info.stdout and "[red]x" in info.stdout
    as_json = _run("hashset", "info", str(material["index"]), "--json")
    _assert_escaped(as_json.stdout, "hashset info --json")
    assert set(json.loads(as_json.stdout)["algorithms"]["md5"]["categories"]) == set(CODES)
    digest = hashlib.md5(b"hostile-category-file-0").hexdigest()
    lookup = _run("hashset", "lookup", str(material["index"]), digest)
    assert lookup.returncode == 0 and escape(CODES[0]) in lookup.stdout
    _assert_escaped(lookup.stdout, "hashset lookup")
    lookup = _run("hashset", "lookup", str(material["index"]), digest, "--json")
    _assert_escaped(lookup.stdout, "hashset lookup --json")
    assert json.loads(lookup.stdout)["categories"] == [CODES[0]]
