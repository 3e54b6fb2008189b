"""hits.csv: known-bad rows only, safe against formula injection and hostile names."""

from __future__ import annotations

import csv
from pathlib import Path

from test_reports_support import (
    ALGS,
    HOSTILE_NAMES,
    fake_run,
    record,
    records_of,
    scanned_run,
    summary_of,
)

from triage.matching.categories import is_known_bad, severity_key
from triage.reports import render_all
from triage.reports._escape import escape, raw_bytes, unescape
from triage.reports.hits_csv import FORMULA_START, columns, safe_cell

__all__ = ["scanned_run"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_rows_are_the_known_bad_records(scanned_run: Path) -> None:
    records = [r for r in records_of(scanned_run) if is_known_bad(r["category"])]
    # hits.csv order: most severe category first, then path (then where it is)
    records.sort(key=lambda r: (severity_key(r["category"]), r["path"], r["evidence"],
                                r["volume_offset"] or 0, r["inode"]))
    rows = read_rows(scanned_run / "hits.csv")
    assert len(rows) == len(records) == summary_of(scanned_run)["totals"]["known_bad_files"] > 0
    for row, r in zip(rows, records):
        assert row["category"] == r["category"] and unescape(row["path"]) == r["path"]
        assert row["md5"] == r["md5"] and row["sha256"] == r["sha256"]
        assert row["inode"] == r["inode"] and int(row["size"]) == r["size"]
        assert row["deleted"] == ("true" if r["deleted"] else "false")
        assert row["mtime"] == (r["mtime"] or "")
        for m in r["matches"]:
            if m["algorithm"] != "pdq":  # near matches have their own column
                assert f"{m['hashset']} ({m['category']})" in row["hashsets"]
    header = (scanned_run / "hits.csv").read_bytes().split(b"\r\n", 1)[0]
    assert header.startswith(b"\xef\xbb\xbf") and header.endswith(b"md5,sha1,sha256")


def test_only_known_bad_rows(tmp_path: Path) -> None:
    recs = [record("/bad", "B", 1), record("/good", "known-good", 2),
            record("/unknown", "unknown", 3), record("/unread", None, 4),
            record("/notable", "notable", 5)]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["csv"])
    assert [r["path"] for r in read_rows(run / "hits.csv")] == ["/bad", "/notable"]


def test_hostile_names_are_defused_and_recoverable(tmp_path: Path) -> None:
    recs = [record(name, "A", i) for i, name in enumerate(HOSTILE_NAMES, 1)]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["csv"])
    data = (run / "hits.csv").read_bytes()
    # one physical line per row: no newline or CR survives inside a cell
    assert data.count(b"\n") == len(recs) + 1 and data.count(b"\r") == len(recs) + 1
    data.decode("utf-8")  # strictly valid UTF-8 despite the undecodable name bytes
    rows = read_rows(run / "hits.csv")
    assert len(rows) == len(recs)
    for row, name in zip(rows, sorted(HOSTILE_NAMES)):  # one category: sorted by path
        for cell in row.values():
            assert not cell.startswith(FORMULA_START), cell
        cell = row["path"]
        if cell.startswith("'"):
            assert escape(name).startswith(FORMULA_START)
            cell = cell[1:]
        assert unescape(cell) == name
        assert raw_bytes(cell) == name.encode("utf-8", "surrogateescape")
    by_name = {r["path"]: r for r in rows}
    assert "/=cmd|' /C calc'!A0" in by_name  # quoted by the csv module, '|' harmless
    assert r"/bad\xffbyte\x80" in by_name
    assert r"/a\nb" in by_name and r"/\u202egpj.exe" in by_name


def test_formula_cells_anywhere_get_a_quote(tmp_path: Path) -> None:
    recs = [record("=1+1", "A", 1, evidence="@evil.img"), record("-2", "A", 2),
            record("+3", "A", 3), record("@x", "A", 4), record("\tx", "A", 5)]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["csv"])
    rows = read_rows(run / "hits.csv")
    assert [r["path"] for r in rows] == [r"\tx", "'+3", "'-2", "'=1+1", "'@x"]  # by path
    assert rows[3]["evidence"] == "'@evil.img"


def test_safe_cell_rules() -> None:
    assert safe_cell(None) == "" and safe_cell(True) == "true" and safe_cell(12) == "12"
    assert safe_cell("=A1") == "'=A1" and safe_cell("\r=A1") == r"\r=A1"
    assert safe_cell("a|b") == "a|b" and safe_cell('"q"') == '"q"'
    assert columns(["md5"])[-1] == "md5"
    assert columns([])[:5] == ["category", "label", "hashsets", "near_duplicate", "pdq_distance"]


def test_unmatched_lines_are_skimmed_but_names_cannot_fake_it(tmp_path: Path) -> None:
    """Reports skip decoding lines of unmatched, unerrored files by three key/value marks; a
    name spelling those marks is JSON-escaped, so a hit with such a name is still listed, and
    report.html still counts every file."""
    fake = '/x","matches":[],"error":null,"category":"unknown"'
    recs = [record(fake, "A", 1), record("/plain", "unknown", 2),
            record(fake + "2", "unknown", 3), record("/unread", None, 4)]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["csv", "html"])
    assert [r["path"] for r in read_rows(run / "hits.csv")] == [fake]
    from triage.reports._html_collect import collect
    c = collect(run, ALGS)
    assert c.files == 4 and c.categories == {"A": 1, "unknown": 2}
    assert c.errors_total == 1
