"""End-to-end scans of the committed fixtures in ``testimages/``.

The fixtures were built by ``testimages/build.py`` with real tools (mke2fs -d, mkfs.vfat + mcopy
+ mdel, mkntfs + ntfscp, sfdisk, ewfacquire, split, genisoimage); ``manifest.json`` holds the
hashlib digests of the bytes that script wrote and the category each file must get under the
example hash sets. Nothing here is derived from triage's own output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.errors import ExitCode
from triage.run.scan import ScanConfig, run_scan

from conftest import TESTIMAGES

MANIFEST = json.loads((TESTIMAGES / "manifest.json").read_text())
SETS = TESTIMAGES / "hashsets"


def scan(tmp_path: Path, image: str, workers: int = 2, **kw):
    config = ScanConfig(
        evidence=[str(TESTIMAGES / image)],
        hashsets=[str(SETS / "caid.csv"), str(SETS / "projectvic.json")],
        known_good=[str(SETS / "known-good.md5")],
        out=tmp_path / "out", workers=workers, **kw,
    )
    outcome = run_scan(config)
    records = [json.loads(line) for line in (outcome.out / "files.jsonl").open()]
    return outcome, records


@pytest.mark.parametrize("image", MANIFEST["images"], ids=lambda im: im["image"])
def test_every_file_hashed_and_categorised(tmp_path: Path, image: dict) -> None:
    outcome, records = scan(tmp_path, image["image"])
    by_key = {(r["volume_offset"], r["path"]): r for r in records}
    expected_files = 0
    for volume in image["volumes"]:
        for f in volume["files"]:
            expected_files += 1
            r = by_key.get((volume["offset"], f["path"]))
            assert r is not None, f"{image['image']}: {f['path']} not found"
            assert r["deleted"] == f["deleted"], f["path"]
            assert r["size"] == f["size"], f["path"]
            if f["content_expected"]:
                assert (r["md5"], r["sha1"], r["sha256"]) == (f["md5"], f["sha1"], f["sha256"])
                assert r["category"] == f["expected_category"], f["path"]
    assert outcome.summary["totals"]["files"] >= expected_files
    # every fixture holds at least one known-bad file: scripts branch on exit code 1
    assert outcome.exit_code == ExitCode.HITS
    assert outcome.summary["categories"].get("A", 0) + outcome.summary["categories"].get("B", 0) > 0


def test_partition_without_file_system_is_reported(tmp_path: Path) -> None:
    image = next(im for im in MANIFEST["images"] if im["image"] == "mbr.img")
    outcome, _ = scan(tmp_path, "mbr.img")
    volumes = outcome.summary["evidence"][0]["volumes"]
    assert outcome.summary["evidence"][0]["volume_system"] == "dos"
    expected = {v["offset"]: v["fs_type"] for v in image["volumes"]}
    got = {v["offset"]: v for v in volumes}
    assert set(expected) <= set(got)
    for offset, fs_type in expected.items():
        if fs_type == "none":
            assert got[offset]["status"] == "no-filesystem" and got[offset]["error"]
        else:
            assert got[offset]["fs_type"] == fs_type and got[offset]["status"] == "scanned"


def test_matches_name_each_set(tmp_path: Path) -> None:
    """Precedence: a file in CAID (B) and VICS (1) is B and lists both matches; a file in CAID
    (A) and the known-good list is A; a zero-length file matches nothing."""
    _, records = scan(tmp_path, "ext4.img")
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in records}
    photo = by_name["photo-001.jpg"]
    assert photo["category"] == "B"
    assert {(m["hashset"], m["category"]) for m in photo["matches"]} >= {("caid", "B"), ("projectvic", "1")}
    red = by_name["red dot.png"]
    assert red["category"] == "A"
    assert "known-good" in {m["category"] for m in red["matches"]}
    empty = by_name["empty.dat"]
    assert empty["size"] == 0 and empty["matches"] == [] and empty["category"] == "unknown"


def test_same_results_whatever_the_worker_count(tmp_path: Path) -> None:
    _, one = scan(tmp_path / "w1", "gpt.img", workers=1)
    _, three = scan(tmp_path / "w3", "gpt.img", workers=3)
    key = lambda r: (r["volume_offset"], r["inode"], r["path"])  # noqa: E731
    assert sorted(one, key=key) == sorted(three, key=key)


def test_split_raw_and_e01_equal_their_raw_media(tmp_path: Path) -> None:
    def core(records):
        return sorted((r["volume_offset"], r["path"], r["md5"]) for r in records)

    _, raw = scan(tmp_path / "raw", "gpt.img")
    _, split = scan(tmp_path / "split", "gpt.img.001")
    assert core(raw) == core(split)
    _, mbr = scan(tmp_path / "mbr", "mbr.img")
    outcome, ewf = scan(tmp_path / "ewf", "mbr.E01")
    assert core(mbr) == core(ewf)
    media = next(im for im in MANIFEST["images"] if im["image"] == "mbr.E01")
    assert outcome.summary["evidence"][0]["stored_hashes"]["md5"] == media["media_md5"]


def test_xxh128_on_request(tmp_path: Path) -> None:
    import xxhash

    outcome, records = scan(tmp_path, "fat.img", algorithms=("md5", "xxh128"))
    files = {f["path"]: f for f in MANIFEST["images"][1]["volumes"][0]["files"]}
    readme = next(r for r in records if r["path"] == "/README.txt")
    data_md5 = files["/README.txt"]["md5"]
    assert readme["md5"] == data_md5 and len(readme["xxh128"]) == 32
    # the CAID set carries SHA-1 too: algorithms a set needs are added, never silently missed
    assert "sha1" in outcome.summary["options"]["algorithms"]
    assert xxhash.xxh3_128(b"").hexdigest() == next(r for r in records if r["size"] == 0)["xxh128"]
