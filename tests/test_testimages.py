"""Check the committed disk-image fixtures in ``testimages/`` against The Sleuth Kit's command-line tools.

The fixtures are built by ``testimages/build.py`` (see ``testimages/README.md``): it writes
generated, benign files (text, tiny PNG / JPEG-like files, seeded random bytes, an empty file)
into ext4 / ext2 (mke2fs -d, debugfs rm), FAT16 (mkfs.vfat, mmd, mcopy, mdel), NTFS (mkntfs,
libntfs-3g mkdir, ntfscp incl. a named stream), MBR and GPT disks (sfdisk + dd), an ISO9660
image (genisoimage -R -J), an EnCase 6 E01 (ewfacquire) and a split raw copy (split), and records
in ``testimages/manifest.json`` the hashlib digests of the bytes it wrote.

These tests prove that manifest is true as seen by an independent reader: ``mmls`` finds every
partition at the recorded offset, ``fls -r -p`` lists every recorded path (allocated and deleted,
NTFS named streams included) and ``icat`` returns content with the recorded MD5 for every file whose
``content_expected`` is true.  They skip when the TSK tools are not installed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TESTIMAGES = Path(__file__).resolve().parent.parent / "testimages"
MANIFEST: dict[str, Any] = json.loads((TESTIMAGES / "manifest.json").read_text(encoding="utf-8"))
IMAGES: list[dict[str, Any]] = MANIFEST["images"]
SECTOR = 512


def _volume_cases() -> list[Any]:
    return [
        pytest.param(img, vol, id=f"{img['image']}@{vol['offset']}")
        for img in IMAGES
        for vol in img["volumes"]
        if vol["files"]
    ]


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"The Sleuth Kit tool {tool!r} is not installed")


def _image_args(img: dict[str, Any]) -> list[str]:
    """All segments for split raw, the first segment (.E01) for EWF, else the single file."""
    segments = [str(TESTIMAGES / s) for s in img["segments"]]
    return segments if img["format"] == "split-raw" else segments[:1]


def _tsk(tool: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    _require(tool)
    return subprocess.run([tool, *args], capture_output=True, timeout=120)


def _fls(img: dict[str, Any], vol: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Map path -> (metadata address, deleted) from ``fls -r -p``."""
    proc = _tsk("fls", "-r", "-p", "-o", str(vol["offset"] // SECTOR), *_image_args(img))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    listing: dict[str, tuple[str, bool]] = {}
    for line in proc.stdout.decode("utf-8", errors="replace").splitlines():
        meta, sep, path = line.partition(":\t")
        if not sep:
            continue
        fields = meta.split()
        deleted = "*" in fields
        address = fields[-1].split("(")[0]  # "14" or "14(realloc)"; NTFS "67-128-4"
        key = "/" + path
        if key not in listing or listing[key][1]:  # prefer an allocated entry
            listing[key] = (address, deleted)
    return listing


def test_manifest_segments_exist() -> None:
    for img in IMAGES:
        for name, size in zip(img["segments"], img["segment_sizes"], strict=True):
            assert (TESTIMAGES / name).stat().st_size == size, name


def test_raw_media_hashes() -> None:
    """Raw images (and the concatenated split segments) hash to the recorded media digest."""
    for img in IMAGES:
        if img["format"] not in ("raw", "split-raw"):
            continue
        md5 = hashlib.md5()
        for name in img["segments"]:
            md5.update((TESTIMAGES / name).read_bytes())
        assert md5.hexdigest() == img["media_md5"], img["image"]


def test_hashset_files_match_manifest() -> None:
    sets = MANIFEST["hashsets"]
    rows = list(csv.DictReader(io.StringIO((TESTIMAGES / "hashsets/caid.csv").read_text("ascii"))))
    assert [(r["MD5"].lower(), r["SHA1"].lower(), r["Category"]) for r in rows] == [
        (e["md5"], e["sha1"], e["category"]) for e in sets["caid.csv"]["entries"]
    ]
    vics = json.loads((TESTIMAGES / "hashsets/projectvic.json").read_text("utf-8"))
    assert [(v["MD5"].lower(), v["SHA1"].lower(), str(v["Category"]), v["MediaSize"]) for v in vics["value"]] == [
        (e["md5"], e["sha1"], e["category"], e["size"]) for e in sets["projectvic.json"]["entries"]
    ]
    good = [line.split("  ", 1)[0] for line in (TESTIMAGES / "hashsets/known-good.md5").read_text().splitlines()]
    assert good == [e["md5"] for e in sets["known-good.md5"]["entries"]]


def test_expected_categories_cover_every_case() -> None:
    seen = {f["expected_category"] for img in IMAGES for vol in img["volumes"] for f in vol["files"]}
    assert {"A", "B", "C", "1", "2", "4", "known-good", "unknown"} <= seen
    for img in IMAGES:
        for vol in img["volumes"]:
            for f in vol["files"]:
                if f["size"] == 0:
                    assert f["expected_category"] == "unknown", f["path"]


@pytest.mark.parametrize("img", [i for i in IMAGES if i["partition_table"]], ids=lambda i: i["image"])
def test_mmls_offsets(img: dict[str, Any]) -> None:
    proc = _tsk("mmls", *_image_args(img))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    partitions: set[tuple[int, int]] = set()
    for line in proc.stdout.decode(errors="replace").splitlines():
        fields = line.split()
        # "002:  000:000   0000002048   0000018431   0000016384   DOS FAT16 (0x06)"
        if len(fields) >= 5 and fields[0].endswith(":") and fields[1] not in ("Meta", "-------"):
            partitions.add((int(fields[2]), int(fields[4])))
    for vol in img["volumes"]:
        assert (vol["offset"] // SECTOR, vol["length"] // SECTOR) in partitions, vol


@pytest.mark.parametrize(("img", "vol"), _volume_cases())
def test_fls_lists_every_path(img: dict[str, Any], vol: dict[str, Any]) -> None:
    listing = _fls(img, vol)
    for f in vol["files"]:
        assert f["path"] in listing, f"{f['path']} missing from fls of {img['image']}@{vol['offset']}"
        assert listing[f["path"]][1] == f["deleted"], f["path"]
    for d in vol["directories"]:
        assert d in listing, d


@pytest.mark.parametrize(("img", "vol"), _volume_cases())
def test_icat_content(img: dict[str, Any], vol: dict[str, Any]) -> None:
    listing = _fls(img, vol)
    sector = str(vol["offset"] // SECTOR)
    for f in vol["files"]:
        if not f["content_expected"]:
            continue
        address, _ = listing[f["path"]]
        proc = _tsk("icat", "-o", sector, *_image_args(img), address)
        assert proc.returncode == 0, (f["path"], proc.stderr.decode(errors="replace"))
        assert len(proc.stdout) == f["size"], f["path"]
        assert hashlib.md5(proc.stdout).hexdigest() == f["md5"], f["path"]


@pytest.mark.parametrize(
    ("img", "vol"),
    [pytest.param(i, v, id=f"{i['image']}@{v['offset']}") for i in IMAGES for v in i["volumes"]
     if v["fs_type"] == "none"],
)
def test_non_file_system_volume_is_unreadable(img: dict[str, Any], vol: dict[str, Any]) -> None:
    proc = _tsk("fsstat", "-o", str(vol["offset"] // SECTOR), *_image_args(img))
    assert proc.returncode != 0
