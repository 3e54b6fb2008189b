"""One volume discovery (issue 16): ``triage scan`` and ``triage info`` classify every volume the
same way, because both ask ``triage.filesystems.discovery.discover``. Checked over every test image, every
corpus image and the built encrypted disks: per volume offset, the statuses (and file-system
types) the scan records equal what info reports. Scan's word for a volume it reads is
"scanned" (or "incomplete" when the file system is truncated), info's is "readable"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TESTIMAGES, corpus_index
from test_backends_encrypted import bitlocker_to_go_image, build_disk

from triage.config import ScanConfig
from triage.run.progress import ProgressSink
from triage.errors import EvidenceError
from triage.filesystems.info import evidence_info
from triage.run.scheduler import Scan

MANIFEST = json.loads((TESTIMAGES / "manifest.json").read_text())
CORPUS = [e for e in corpus_index() if e["status"] != "reject"]
READABLE = {"scanned": "readable", "incomplete": "readable"}


def scan_view(path: str, tmp: Path) -> dict[int, list[tuple[str, str | None]]] | str:
    """What a scan decides about each volume when it opens the evidence (no file is read)."""
    scan = Scan(ScanConfig(evidence=[path], out=tmp), None, ("md5",), tmp, ProgressSink())
    scan.open_evidence(path)
    [entry] = scan.evidence
    if "format" not in entry:  # could not be opened at all
        return "unopenable"
    out: dict[int, list[tuple[str, str | None]]] = {}
    for i in entry["volume_indexes"]:
        v = scan.volumes[i].volume
        out.setdefault(v.offset, []).append((READABLE.get(v.status, v.status), v.fs_type))
    return {k: sorted(set(x)) for k, x in out.items()}


def info_view(path: str) -> dict[int, list[tuple[str, str | None]]] | str:
    try:
        d = evidence_info(path)
    except EvidenceError:
        return "unopenable"
    out: dict[int, list[tuple[str, str | None]]] = {}
    for v in d["volumes"]:
        out.setdefault(v["offset"], []).append((v["status"], v["fs_type"]))
    return {k: sorted(set(x)) for k, x in out.items()}


@pytest.mark.parametrize("image", [im["image"] for im in MANIFEST["images"]])
def test_testimages_scan_and_info_agree(image: str, tmp_path: Path) -> None:
    path = str(TESTIMAGES / image)
    got = scan_view(path, tmp_path)
    assert got == info_view(path)
    assert isinstance(got, dict) and any(s == "readable" for x in got.values() for s, _ in x)


@pytest.mark.parametrize("entry", CORPUS, ids=[e["file"] for e in CORPUS])
def test_corpus_scan_and_info_agree(corpus: Path, entry: dict, tmp_path: Path) -> None:
    path = str(corpus / entry.get("unpacked_file", entry["file"]))
    assert scan_view(path, tmp_path) == info_view(path)


def test_encrypted_disk_scan_and_info_agree(tmp_path: Path) -> None:
    disk = str(build_disk(tmp_path))
    got = scan_view(disk, tmp_path)
    assert got == info_view(disk)
    assert sorted(s for x in got.values() for s, _ in x) == [
        "empty", "encrypted", "encrypted", "encrypted"]


def test_bitlocker_to_go_scan_and_info_agree(tmp_path: Path) -> None:
    image = str(bitlocker_to_go_image(tmp_path))
    assert scan_view(image, tmp_path) == info_view(image) == {0: [("encrypted", "fat16")]}


def test_folder_scan_and_info_agree(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    got = scan_view(str(tmp_path), tmp_path / "out")
    assert got == info_view(str(tmp_path)) == {0: [("readable", "logical")]}


def test_discover_does_not_change_the_volume_it_is_given() -> None:
    """Probers and discovery return what they found; the table entry stays as listed."""
    from dataclasses import asdict

    from triage.filesystems.discovery import discover
    from triage.evidence.containers import identify, open_image
    from triage.evidence.volumes import find_volumes

    spec = identify(str(TESTIMAGES / "mbr.img"))
    img = open_image(spec)
    _, volumes = find_volumes(img)
    before = [asdict(v) for v in volumes]
    verdicts = [discover(img, spec, v) for v in volumes]
    assert [asdict(v) for v in volumes] == before
    assert {v.volume.status for v in verdicts} >= {"scanned", "no-filesystem"}
