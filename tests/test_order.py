"""Triage modes: whatever --order and --workers, the same records with the same hashes come
out (order aside); --stop-on-first-hit answers yes/no early and says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.errors import ExitCode
from triage.scan import ScanConfig, run_scan

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
