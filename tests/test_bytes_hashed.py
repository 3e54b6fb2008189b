"""``totals.bytes_hashed`` counts only content that was hashed (issue 13): a file whose read
failed - here on an EWF chunk checksum error, where libewf hands back the bytes anyway - adds
nothing. The invariant, checked on a damaged and a clean run: bytes_hashed is the sum of the
sizes of the records that carry hashes."""

from __future__ import annotations

import json
from pathlib import Path

from triage.evidence import ewf_native
from triage.run.scan import ScanConfig, run_scan

from conftest import TESTIMAGES


def hashed_bytes(out: Path) -> tuple[int, list[dict]]:
    recs = [json.loads(x) for x in (out / "files.jsonl").read_text().splitlines()]
    return sum(r["size"] for r in recs if r["md5"] is not None), recs


def test_bytes_hashed_skips_a_file_whose_read_failed(tmp_path: Path) -> None:
    assert ewf_native.available(), "the system libewf (Debian libewf2) is a CI dependency"
    data = bytearray((TESTIMAGES / "mbr.E01").read_bytes())
    for i in range(400_000, 400_064):  # inside the chunk that holds /data/archive/blob.bin
        data[i] ^= 0xFF
    image = tmp_path / "badchunk.E01"
    image.write_bytes(bytes(data))
    bad = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "bad", workers=1))
    clean = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "mbr.E01")], out=tmp_path / "clean",
                                workers=1))
    want_bad, recs = hashed_bytes(tmp_path / "bad")
    failed = [r for r in recs if r["error"] and "checksum" in r["error"]]
    assert len(failed) == 1 and failed[0]["size"] == 300_000
    assert bad.summary["totals"]["bytes_hashed"] == want_bad
    want_clean, _ = hashed_bytes(tmp_path / "clean")
    assert clean.summary["totals"]["bytes_hashed"] == want_clean == want_bad + 300_000
