"""Triage modes: whatever --order and --workers, the same records with the same hashes come
out (order aside); --stop-on-first-hit answers yes/no early and says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.errors import ExitCode
from triage.run.scan import ScanConfig, run_scan

from conftest import TESTIMAGES

SETS = TESTIMAGES / "hashsets"


def run(out: Path, image: str = "mbr.img", **kw):
    outcome = run_scan(ScanConfig(evidence=[str(TESTIMAGES / image)], out=out,
                                  hashsets=[str(SETS / "caid.csv"), str(SETS / "projectvic.json")],
                                  known_good=[str(SETS / "known-good.md5")], **kw))
    lines = (out / "files.jsonl").read_text().splitlines()
    return outcome, [json.loads(x) for x in lines]


def key(r: dict) -> tuple:
    return (r["volume_offset"], r["inode"], r["path"])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> list[dict]:
    _, recs = run(tmp_path_factory.mktemp("base") / "o", workers=2)
    return sorted(recs, key=key)


@pytest.mark.parametrize("order,workers", [("smallest", 1), ("physical", 2),
                                           ("pictures-first", 3), ("walk", 1)])
def test_same_records_whatever_order_and_workers(tmp_path: Path, baseline, order, workers) -> None:
    outcome, recs = run(tmp_path / "o", order=order, workers=workers)
    assert sorted(recs, key=key) == baseline
    assert outcome.summary["options"]["order"] == order
    assert outcome.summary["complete"] is True


def test_smallest_order_hashes_smallest_first(tmp_path: Path) -> None:
    _, recs = run(tmp_path / "o", order="smallest", workers=1)
    sizes = [r["size"] for r in recs if r["md5"] and r["size"]]
    assert sizes == sorted(sizes)


def test_physical_order_follows_the_disk(tmp_path: Path) -> None:
    """One worker, physical order: volumes in offset order, and within the ext4 volume the
    files come in the order of their first block (checked with TSK's istat-free view: the
    volume offsets must be non-decreasing)."""
    _, recs = run(tmp_path / "o", order="physical", workers=1)
    offsets = [r["volume_offset"] for r in recs if r["md5"] and r["size"]]
    assert offsets == sorted(offsets)


def test_stop_on_first_hit(tmp_path: Path) -> None:
    outcome, recs = run(tmp_path / "o", stop_on_first_hit=True, workers=1)
    assert outcome.exit_code == ExitCode.HITS
    s = outcome.summary
    assert s["stopped_early"] is True and s["complete"] is False
    assert s["totals"]["known_bad_files"] >= 1 and s["first_hit_seconds"] is not None
    assert any(r["category"] in ("A", "B", "C", "1", "2", "4") for r in recs)


def _vics_with_sizes(path: Path, files: list[tuple[str, int]]) -> Path:
    """A VICS set whose entries all declare MediaSize (hashes from the fixture manifest)."""
    value = [{"MediaID": i, "Category": 1, "MD5": md5.upper(), "MediaSize": size}
             for i, (md5, size) in enumerate(files, 1)]
    path.write_text(json.dumps({"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/"
                                "DataModels/2.0.xml/US/$metadata#Media", "value": value}))
    return path


def test_size_filter_skips_only_sizes_no_set_holds(tmp_path: Path) -> None:
    manifest = json.loads((TESTIMAGES / "manifest.json").read_text())
    files = next(im for im in manifest["images"] if im["image"] == "ext4.img")["volumes"][0]["files"]
    target = next(f for f in files if f["path"].endswith("photo-001.jpg"))
    sized = _vics_with_sizes(tmp_path / "sized.json", [(target["md5"], target["size"])])
    outcome = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "ext4.img")], out=tmp_path / "o",
                                  hashsets=[str(sized)], size_filter=True))
    recs = [json.loads(x) for x in (tmp_path / "o" / "files.jsonl").read_text().splitlines()]
    hit = next(r for r in recs if r["path"].endswith("photo-001.jpg"))
    assert hit["category"] == "1" and hit["md5"] == target["md5"]
    skipped = [r for r in recs if r["error"] == "skipped: size-not-in-set"]
    assert skipped and all(r["md5"] is None and r["size"] != target["size"] for r in skipped)
    hashed = [r for r in recs if r["md5"] and r["size"]]
    assert all(r["size"] == target["size"] for r in hashed)
    t = outcome.summary["totals"]
    assert t["skipped_size_filter"] == len(skipped)
    assert t["skipped_bytes"] == sum(r["size"] for r in skipped)
    assert outcome.summary["options"]["size_filter"] is True
    assert outcome.exit_code == ExitCode.HITS


def test_size_filter_refused_when_a_set_lacks_sizes(tmp_path: Path) -> None:
    from triage.errors import UsageError

    with pytest.raises(UsageError, match="size"):
        run_scan(ScanConfig(evidence=[str(TESTIMAGES / "ext4.img")], out=tmp_path / "o",
                            hashsets=[str(SETS / "caid.csv")], size_filter=True))
