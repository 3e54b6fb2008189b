"""PDQ near-duplicates in hits.csv and report.html: own columns and section, never a hit.

Hand-made runs check the layout and the bounds; one scan of an ext4 image (``mke2fs -d``) of
drawn pictures checks the end-to-end numbers against distances computed here with the
reference ``pdqhash`` and bit counting, never with the code under test.
"""

from __future__ import annotations

import csv
import hashlib
import html
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_pdq import drawing, encode, originals, pdq_off, reference, variants
from test_reports_support import fake_run, record

from triage.reports import render_all
from triage.reports._near import NEAR_LABEL
from triage.reports.hits_csv import FORMULA_START

__all__ = ["originals", "pdq_off"]
THRESHOLD = 31


def bits_apart(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def near(hashset: str, category: str, distance: int) -> dict:
    return {"hashset": hashset, "algorithm": "pdq", "distance": distance, "category": category}


def near_section(text: str) -> str:
    start = text.index("<h2>Near-duplicates (PDQ) &mdash; needs review</h2>")
    return text[start:text.index("</section>", start)]


def near_rows(section: str) -> list[tuple[str, int]]:
    """(path as shown, distance) of every row of the near-duplicate table, in order."""
    return [(html.unescape(p), int(d.replace(",", ""))) for p, d in re.findall(
        r"<tr[^>]*><td class=n>\d+</td><td class=\"?wrap[^>]*><b>(.*?)</b>.*?</td>"
        r"<td class=n>([\d,]+)</td>", section)]


# ---------------------------------------------------------------------------------------------
# Hand-made runs


def test_exact_outranks_near_and_near_only_rows_are_marked(tmp_path: Path) -> None:
    recs = [
        record("/near-only.jpg", "unknown", 1, pdq_quality=90, pdq_distance=7,
               matches=[near("pv", "1", 7), near("=evil", "2", 12)]),
        record("/exact.jpg", "A", 2, pdq_quality=80, pdq_distance=3,
               matches=[{"hashset": "caid", "algorithm": "md5", "category": "A"},
                        near("pv", "1", 3)]),
        record("/plain.jpg", "unknown", 3),
        record("/good-but-near.jpg", "known-good", 4, pdq_quality=70, pdq_distance=20,
               matches=[{"hashset": "nsrl", "algorithm": "sha1", "category": "known-good"},
                        near("pv", "3", 20)]),
        record("/bad.bin", "B", 5),
    ]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["csv", "html"])
    rows = read_rows(run / "hits.csv")
    # exact hits first (files.jsonl order), then the near-only files
    assert [r["path"] for r in rows] == ["/exact.jpg", "/bad.bin", "/near-only.jpg",
                                         "/good-but-near.jpg"]
    exact, bad, near_only, good = rows
    assert (exact["category"], exact["hashsets"]) == ("A", "caid (A)")  # no pdq set there
    assert exact["label"] == "UK Category A"
    assert exact["near_duplicate"] == "needs review: PDQ distance 3 to pv (1)"
    assert exact["pdq_distance"] == "3"
    assert (bad["near_duplicate"], bad["pdq_distance"]) == ("", "")
    assert near_only["category"] == "unknown" and near_only["label"] == NEAR_LABEL
    assert near_only["hashsets"] == ""
    assert near_only["near_duplicate"] == ("needs review: PDQ distance 7 to pv (1); "
                                           "needs review: PDQ distance 12 to =evil (2)")
    assert near_only["pdq_distance"] == "7"
    assert good["category"] == "known-good" and good["label"] == NEAR_LABEL
    assert good["hashsets"] == "nsrl (known-good)"
    for r in rows:
        assert not any(cell.startswith(FORMULA_START) for cell in r.values())
    header = (run / "hits.csv").read_bytes().split(b"\r\n", 1)[0].decode("utf-8-sig")
    assert header.startswith("category,label,hashsets,near_duplicate,pdq_distance,"
                             "video_near_duplicate,vpdq_share,path,")

    text = (run / "report.html").read_text(encoding="utf-8")
    section = near_section(text)
    assert near_rows(section) == [("/exact.jpg", 3), ("/near-only.jpg", 7),
                                  ("/good-but-near.jpg", 20)]
    assert "3 file(s) have a PDQ perceptual hash" in section
    assert "2 of them have no exact known-bad match" in section
    assert "=evil: 2" in section and "none: needs review" in section
    assert "<td class=n>90</td>" in section  # PDQ quality
    start = text.index("<h2>Known-bad files</h2>")
    hits = text[start:text.index("</section>", start)]
    assert "pv: 1" not in hits and "(pdq)" not in hits  # near matches never read as a hit
    assert "also a PDQ near-duplicate (distance 3)" in hits
    assert "/near-only.jpg" not in hits


def test_without_pdq_no_section(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", [record("/bad", "A", 1)])
    render_all(run, ["html"])
    assert "Near-duplicates (PDQ)" not in (run / "report.html").read_text(encoding="utf-8")
    run = fake_run(tmp_path / "run2", [record("/bad", "A", 1)],
                   options={"algorithms": ["md5", "sha1", "sha256"], "pdq": True,
                            "pdq_threshold": 31})
    render_all(run, ["html"])
    text = (run / "report.html").read_text(encoding="utf-8")
    assert "No picture came within the PDQ threshold" in near_section(text)


def test_html_lists_the_closest_first_and_says_how_many_more(tmp_path: Path) -> None:
    rng = random.Random(5)
    distances = [rng.randrange(0, 32) for _ in range(1234)]
    recs = [record(f"/n/{i}.jpg", "unknown", i, pdq_quality=60, pdq_distance=d,
                   matches=[near("pv", "1", d)]) for i, d in enumerate(distances, 1)]
    run = fake_run(tmp_path / "run", recs)
    render_all(run, ["html", "csv"])
    section = near_section((run / "report.html").read_text(encoding="utf-8"))
    shown = near_rows(section)
    assert len(shown) == 1000
    assert [d for _, d in shown] == sorted(distances)[:1000]
    # ties keep files.jsonl order
    want = sorted(((d, i) for i, d in enumerate(distances, 1)))[:1000]
    assert [p for p, _ in shown] == [f"/n/{i}.jpg" for _, i in want]
    assert "234 more, see hits.csv" in section
    assert len(read_rows(run / "hits.csv")) == 1234  # hits.csv lists every one


# ---------------------------------------------------------------------------------------------
# End to end: a scan with --pdq-set


@pytest.mark.skipif(shutil.which("mke2fs") is None, reason="mke2fs not installed")
def test_scan_reports_near_duplicates(originals, tmp_path: Path) -> None:
    from triage.run.scan import ScanConfig, run_scan

    seeds = list(originals)
    set_hash = {s: reference(encode(originals[s], "PNG"))[0] for s in seeds}
    src = tmp_path / "src"
    src.mkdir()
    truth: dict[str, tuple[int, str]] = {}  # path -> (distance, category)
    for s in seeds[:4]:
        for name, data in variants(originals[s]).items():
            if name == "cropped":
                continue
            path = f"/p{s}-{name}.{'jpg' if name == 'jpeg50' else 'png'}"
            (src / path[1:]).write_bytes(data)
            truth[path] = (bits_apart(reference(data)[0], set_hash[s]), f"C{s}")
    (src / "unrelated.jpg").write_bytes(encode(drawing(4242), "JPEG", quality=80))
    exact_path = f"/p{seeds[0]}-jpeg50.jpg"
    md5 = hashlib.md5((src / exact_path[1:]).read_bytes()).hexdigest()
    (tmp_path / "bad.md5").write_text(f"{md5}  known.jpg\n")
    (tmp_path / "set.csv").write_text("pdq,category\n" + "".join(
        f"{set_hash[s]},C{s}\n" for s in seeds))
    image = tmp_path / "pictures.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "16M"],
                   check=True, capture_output=True,
                   env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"))
    outcome = run_scan(ScanConfig(evidence=[str(image)], hashsets=[str(tmp_path / "bad.md5")],
                                  out=tmp_path / "out", workers=2, pdq=True,
                                  pdq_threshold=THRESHOLD, pdq_sets=[str(tmp_path / "set.csv")]))
    assert all(d <= THRESHOLD for d, _ in truth.values())  # the premise
    rows = read_rows(outcome.out / "hits.csv")
    assert rows[0]["path"] == exact_path and rows[0]["category"] == "notable"
    assert rows[0]["hashsets"] == "bad (notable)"
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == set(truth)  # every near-duplicate, nothing unrelated
    for path, (distance, category) in truth.items():
        r = by_path[path]
        assert r["near_duplicate"] == f"needs review: PDQ distance {distance} to set.csv ({category})"
        assert r["pdq_distance"] == str(distance)
        if path != exact_path:
            assert r["category"] == "unknown" and r["label"] == NEAR_LABEL
    assert [r["path"] for r in rows[1:]] and all(r["label"] == NEAR_LABEL for r in rows[1:])

    text = (outcome.out / "report.html").read_text(encoding="utf-8")
    shown = near_rows(near_section(text))
    assert sorted(shown) == sorted((p, d) for p, (d, _) in truth.items())
    assert [d for _, d in shown] == sorted(d for d, _ in truth.values())
    assert f"{len(truth) - 1} of them have no exact known-bad match" in text
    assert "<img" not in text.lower() and "data:" not in text
