"""The scan against the public corpus (dfvfs and dfir_ntfs test data, written by others) whose
truth files were made by TSK's command-line tools (fls/istat/icat), never by triage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from triage.errors import ExitCode
from triage.run.scan import ScanConfig, run_scan

from conftest import corpus_index

SUPPORTED = {"scan", "scan-apfs", "needs-vhd", "needs-vmdk", "needs-qcow"}
ENTRIES = corpus_index()
EMPTY = (hashlib.md5(b"").hexdigest(), hashlib.sha1(b"").hexdigest())


def _scan(corpus: Path, entry: dict, tmp_path: Path, workers: int = 2):
    image = corpus / entry.get("unpacked_file", entry["file"])
    config = ScanConfig(evidence=[str(image)], out=tmp_path / "out", workers=workers,
                        algorithms=("md5", "sha1"))
    outcome = run_scan(config)
    records = [json.loads(line) for line in (outcome.out / "files.jsonl").open()]
    return outcome, records


def _ids(entries):
    return [e["file"] for e in entries]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["status"] in SUPPORTED],
                         ids=_ids([e for e in ENTRIES if e["status"] in SUPPORTED]))
def test_matches_tsk_truth(corpus: Path, entry: dict, tmp_path: Path) -> None:
    outcome, records = _scan(corpus, entry, tmp_path)
    truth = [json.loads(line) for line in (corpus / entry["truth"]).open()]
    found = {(r["volume_offset"], r["inode"], r["path"]): r for r in records}
    assert len(found) == len(records), "records must be unique by (volume_offset, inode, path)"
    for t in truth:
        key = (t["volume_offset"], t["inode"], t["path"])
        assert key in found, f"missing {key}"
        r = found[key]
        assert r["fs_type"] == t["fs_type"]
        assert r["deleted"] == t["deleted"], key
        if t.get("icat_length") is not None:
            assert r["size"] == t["size"], key  # fully sparse stream: compare on size only
        elif t["md5"] is not None:
            assert (r["md5"], r["sha1"]) == (t["md5"], t["sha1"]), key
            assert r["size"] == t["size"], key
        elif t["size"] == 0 and "Attribute not found" in (t.get("error") or ""):
            # an empty APFS data fork: TSK's APFS code finds no data attribute (icat fails),
            # libfsapfs and dissect.apfs read zero bytes; the empty-file digests, as on HFS+
            assert (r["md5"], r["sha1"]) == EMPTY and r["size"] == 0 and not r["error"], key
        else:
            assert r["md5"] is None and r["error"], key  # reported as unreadable
    summary = outcome.summary
    assert summary["complete"] is True
    assert summary["totals"]["files"] == len(records)
    assert outcome.exit_code in (ExitCode.OK, ExitCode.INCOMPLETE)
    assert outcome.exit_code == ExitCode.OK, summary["evidence"]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["status"] in ("reject", "unsupported-fs")],
                         ids=_ids([e for e in ENTRIES if e["status"] in ("reject", "unsupported-fs")]))
def test_refused_with_reason(corpus: Path, entry: dict, tmp_path: Path) -> None:
    """Garbage, a differential VHD without its parent, a FAT TSK cannot open: never a crash,
    never a silent '0 files, 0 hits'."""
    outcome, records = _scan(corpus, entry, tmp_path)
    assert outcome.exit_code in (ExitCode.EVIDENCE, ExitCode.INCOMPLETE)
    ev = outcome.summary["evidence"][0]
    reason = ev.get("error") or " ".join(v["error"] or "" for v in ev.get("volumes", []))
    assert reason.strip()
    assert records == []


def test_every_truth_file_is_covered() -> None:
    """Each truth file belongs to a status one of the tests above handles."""
    handled = SUPPORTED | {"reject", "unsupported-fs"}
    assert all(e["status"] in handled for e in ENTRIES)


def test_split_raw_finds_its_segments(corpus: Path, tmp_path: Path) -> None:
    entry = next(e for e in ENTRIES if e["format"] == "split-raw")
    outcome, _ = _scan(corpus, entry, tmp_path)
    ev = outcome.summary["evidence"][0]
    assert ev["format"] == "split-raw"
    assert [Path(s).name for s in ev["segments"]] == [Path(s).name for s in entry["segments"]]
    assert ev["size"] == entry["media_size"]


def test_ewf_stored_hash_reported(corpus: Path, tmp_path: Path) -> None:
    entry = next(e for e in ENTRIES if e["format"] == "ewf")
    outcome, _ = _scan(corpus, entry, tmp_path)
    ev = outcome.summary["evidence"][0]
    assert ev["format"] == "ewf"
    assert ev["stored_hashes"].get("md5") == entry["media_md5"]
