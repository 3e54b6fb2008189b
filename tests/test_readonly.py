"""Evidence is opened read-only and never modified: every image file's bytes (SHA-256) and
mtime are the same after a scan with every output and --verify-image on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from triage.run.scan import ScanConfig, run_scan

from conftest import TESTIMAGES


def fingerprint(paths: list[Path]) -> dict[str, tuple[str, int, int]]:
    out = {}
    for p in paths:
        st = os.stat(p)
        out[p.name] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size)
    return out


def test_scan_leaves_evidence_untouched(tmp_path: Path) -> None:
    evidence = [TESTIMAGES / "mbr.E01", TESTIMAGES / "gpt.img.001", TESTIMAGES / "ntfs.img"]
    files = [TESTIMAGES / "mbr.E01", TESTIMAGES / "ntfs.img",
             *sorted(TESTIMAGES.glob("gpt.img.0*"))]
    before = fingerprint(files)
    outcome = run_scan(ScanConfig(evidence=[str(e) for e in evidence], out=tmp_path / "o",
                                  hashsets=[str(TESTIMAGES / "hashsets" / "caid.csv")],
                                  verify_image=True))
    assert outcome.summary["complete"] is True
    assert fingerprint(files) == before
    assert sorted(p.name for p in TESTIMAGES.glob("mbr.E0*")) == ["mbr.E01"]  # nothing added
