"""report.html: self-contained, escaped, honest about what was not examined, capped lists."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from test_reports_support import (
    HOSTILE_NAMES,
    fake_run,
    record,
    records_of,
    scanned_run,
    summary_of,
)

from triage.matching.categories import is_known_bad
from triage.reports import render_all
from triage.reports._escape import escape
from triage.reports._html_collect import ERROR_CAP, HIT_CAP
from triage.reports.schema import summary_schema

__all__ = ["scanned_run"]


def page(run: Path) -> str:
    return (run / "report.html").read_text(encoding="utf-8")


ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "section", "footer",
                "h1", "h2", "h3", "p", "div", "span", "b", "br", "ul", "li", "table", "thead",
                "tbody", "tr", "th", "td", "code"}
ALLOWED_ATTRS = {"lang", "charset", "http-equiv", "content", "name", "class", "id"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


def assert_inert(text: str) -> None:
    """Only the report's own markup: no script, link, image or any URL-bearing attribute, as a
    browser's parser sees it (escaped names stay text)."""
    parser = _Tags()
    parser.feed(text)
    parser.close()
    for tag, attrs in parser.seen:
        assert tag in ALLOWED_TAGS, tag
        for name, _ in attrs:
            assert name in ALLOWED_ATTRS, (tag, name)
    assert "url(" not in text and "@import" not in text


def test_real_report_sections(scanned_run: Path) -> None:
    text = page(scanned_run)
    summary = summary_of(scanned_run)
    assert_inert(text)
    assert "@media print" in text and "Content-Security-Policy" in text
    for needle in ("CASE-&lt;1&gt;", "J. O&#x27;Examiner &amp; co", "EX&quot;1&quot;",
                   "Hash sets used", "exit code"):
        assert needle.lower() in text.lower(), needle
    # category labels: from the set's profile in summary.json when it names the code
    profiled = {code: label for h in summary["hashsets"] if h.get("profile")
                for code, label in h["profile"]["labels"].items()}
    for code, builtin in (("A", "UK Category A"), ("2", "Project VIC 2")):
        assert html.escape(profiled.get(code, builtin)).lower() in text.lower(), code
    for h in summary["hashsets"]:
        assert h["sha256"] in text
    for ev in summary["evidence"]:
        assert html.escape(ev["path"]) in text
        for digest in (ev.get("stored_hashes") or {}).values():
            assert digest in text
    # every hit listed (fewer than the cap here), with its hashes
    hits = [r for r in records_of(scanned_run) if is_known_bad(r["category"])]
    for r in hits:
        assert html.escape(escape(r["path"])) in text and r["sha256"] in text
    # the MBR image has a partition TSK cannot read: flagged at the top
    top = text.split("<h2>Evidence</h2>")[0]
    assert 'id="not-examined"' in top and "17,825,792" in top and "no-filesystem" in top
    assert "triage scan --case" in text  # the exact command


def test_hostile_names_are_escaped(tmp_path: Path) -> None:
    recs = [record(name, "A", i) for i, name in enumerate(HOSTILE_NAMES, 1)]
    recs.append(record("/<script>unread</script>", None, 99))  # listed under errors
    run = fake_run(tmp_path / "run", recs,
                   case={"case": "<script>alert('case')</script>", "examiner": "<b>x</b>",
                         "exhibit": None})
    render_all(run, ["html"])
    text = page(run)
    assert_inert(text)
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in text
    assert "&lt;script&gt;unread&lt;/script&gt;" in text
    assert r"/a\nb" in text and r"\u202egpj.exe" in text and r"bad\xffbyte\x80" in text
    assert "\u202e" not in text and "\x00" not in text and "\x1b" not in text
    text.encode("utf-8")  # no lone surrogate reached the page


def test_long_lists_are_capped(tmp_path: Path) -> None:
    n_hits, n_err = HIT_CAP + 7, ERROR_CAP + 3
    recs = [record(f"/hit{i}", "B", i) for i in range(n_hits)]
    recs += [record(f"/err{i}", None, 10_000 + i) for i in range(n_err)]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["html"])
    text = page(run)
    assert f"/hit{HIT_CAP - 1}<" in text and f"/hit{HIT_CAP}<" not in text
    assert "7 more, see hits.csv or files.jsonl." in text
    assert "3 more, see files.jsonl" in text
    assert f"{n_hits:,} file(s)" in text


def test_profile_labels_from_summary_win(tmp_path: Path) -> None:
    base = fake_run(tmp_path / "base", [])
    sets = json.loads((base / "summary.json").read_text())["hashsets"]
    sets[0]["profile"] = {"name": "lab", "labels": {"7": "Lab grade <7>", "A": "Lab A"}}
    run = fake_run(tmp_path / "run", [record("/a", "7", 1), record("/b", "A", 2),
                                      record("/c", "B", 3)], hashsets=sets)
    render_all(run, ["html", "csv"])
    text = page(run)
    assert "Lab grade &lt;7&gt;" in text and "Lab A" in text and "UK Category B" in text
    labels = [row.split(",")[1] for row in
              (run / "hits.csv").read_text(encoding="utf-8-sig").splitlines()[1:]]
    assert labels == ["Lab A", "UK Category B", "Lab grade <7>"]  # most severe first


def test_image_verification_shown_and_mismatch_flagged(tmp_path: Path) -> None:
    base = fake_run(tmp_path / "base", [])
    evidence = json.loads((base / "summary.json").read_text())["evidence"]
    evidence[0]["stored_hashes"] = {"md5": "a" * 32}
    evidence[0]["verification"] = {"status": "mismatch", "computed": {"md5": "b" * 32},
                                   "stored": {"md5": "a" * 32}, "error": None}
    run = fake_run(tmp_path / "run", [record("/a", "A", 1)], evidence=evidence)
    Draft202012Validator(summary_schema()).validate(summary_of(run))
    render_all(run, ["html"])
    top = page(run).split("<h2>Evidence</h2>")[0]
    assert "image verification <b>mismatch</b>" in top
    assert "b" * 32 in page(run) and "a" * 32 in page(run)


def test_incomplete_run_is_flagged(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", [record("/a", "A", 1)], complete=False, interrupted=True,
                   exit_code=130)
    render_all(run, ["html"])
    top = page(run).split("<h2>Evidence</h2>")[0]
    assert "interrupted" in top and "partial" in top


def test_crashed_run_without_end_keys_still_renders(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", [record("/a", "C", 1), record("/b", None, 2)])
    summary = json.loads((run / "summary.json").read_text())
    for k in ("interrupted", "elapsed_seconds", "evidence", "totals", "categories",
              "first_hit_seconds", "exit_code"):
        summary.pop(k)
    summary.update(complete=False, finished=None)
    (run / "summary.json").write_text(json.dumps(summary))
    render_all(run)
    text = page(run)
    assert "did not finish" in text and "counted from files.jsonl" in text and "/a" in text


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)),
                None)


def chromium(tmp_path: Path, *args: str) -> None:
    assert CHROMIUM is not None
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-extensions",
                    f"--user-data-dir={tmp_path / 'profile'}", *args],
                   check=True, capture_output=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_renders_in_headless_chromium(scanned_run: Path, tmp_path: Path) -> None:
    url = (scanned_run / "report.html").resolve().as_uri()
    png, pdf = tmp_path / "report.png", tmp_path / "report.pdf"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,1600", url)
    chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", url)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 20_000
    # A4 pages from the print stylesheet: several pages for this report
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 2


def test_census_table_in_report(scanned_run: Path) -> None:
    """The kind x category census of summary.json is shown with its headline."""
    text = page(scanned_run)
    census = summary_of(scanned_run).get("census")
    assert census and census["headline"]
    assert "Content census" in text and html.escape(census["headline"]) in text
    for kind in census["kinds"]:
        assert f"<td>{html.escape(kind)}</td>" in text
