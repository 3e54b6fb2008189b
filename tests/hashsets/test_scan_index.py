"""A scan with compiled indexes gives exactly the verdicts of the raw sets (scan.py unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

from triage.hashsets import import_hashsets
from triage.run.scan import ScanConfig, run_scan

TESTIMAGES = Path(__file__).resolve().parents[2] / "testimages"
SETS = TESTIMAGES / "hashsets"


def _scan(out: Path, bad: list[Path], good: list[Path]) -> tuple[dict, list[dict]]:
    outcome = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "ext4.img")], hashsets=[str(p) for p in bad],
                                  known_good=[str(p) for p in good], out=out, workers=2))
    records = [json.loads(line) for line in (outcome.out / "files.jsonl").open()]
    return outcome.summary, records


def test_scan_with_indexes_equals_raw_sets(tmp_path: Path) -> None:
    raw_bad, raw_good = [SETS / "caid.csv", SETS / "projectvic.json"], [SETS / "known-good.md5"]
    compiled_bad = []
    for source in raw_bad:
        target = tmp_path / f"{source.stem}.tdb"
        import_hashsets([source], target)
        compiled_bad.append(target)
    good = tmp_path / "known-good.tdb"
    import_hashsets(raw_good, good, kind="known-good")

    raw_summary, raw_records = _scan(tmp_path / "raw", raw_bad, raw_good)
    summary, records = _scan(tmp_path / "tdb", compiled_bad, [good])

    def verdicts(rs: list[dict]) -> dict:
        return {r["path"]: (r["category"], sorted(map(json.dumps, r["matches"]))) for r in rs}

    assert verdicts(records) == verdicts(raw_records)
    assert summary["categories"] == raw_summary["categories"]
    assert summary["exit_code"] == raw_summary["exit_code"] == 1
    assert [h["format"] for h in summary["hashsets"]] == ["tdb", "tdb", "tdb"]
    assert [h["entries"] for h in summary["hashsets"]] == [h["entries"] for h in raw_summary["hashsets"]]
