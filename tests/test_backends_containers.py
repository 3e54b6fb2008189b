"""Virtual-disk containers built at test time from ``testimages/gpt.img`` with qemu-img (Debian's
qemu-utils): each must be detected by its magic, read through its libyal binding and give the
very files and hashes of the raw image (``testimages/manifest.json``, computed by build.py with
hashlib, never by triage)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TESTIMAGES, needs_tool

from triage.errors import ExitCode
from triage.evidence.containers import identify
from triage.run.scan import ScanConfig, run_scan

MANIFEST = json.loads((TESTIMAGES / "manifest.json").read_text())
GPT = next(im for im in MANIFEST["images"] if im["image"] == "gpt.img")

# (qemu-img output format, extra options, format triage must detect, file name)
CONTAINERS = [
    ("vpc", [], "vhd", "disk.vhd"),  # dynamic VHD: footer copy at offset 0
    ("vpc", ["-o", "subformat=fixed"], "vhd", "fixed.vhd"),  # footer at the end only
    ("vhdx", [], "vhdx", "disk.vhdx"),
    ("vmdk", [], "vmdk", "disk.vmdk"),  # monolithic sparse
    ("vmdk", ["-o", "subformat=twoGbMaxExtentSparse"], "vmdk", "split.vmdk"),  # descriptor + extent
    ("qcow2", [], "qcow", "disk.qcow2"),
]


def _convert(tmp: Path, fmt: str, opts: list[str], name: str) -> Path:
    needs_tool("qemu-img")
    out = tmp / name
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, *opts,
                    str(TESTIMAGES / "gpt.img"), str(out)], check=True, capture_output=True)
    return out


def _scan(evidence: Path, out: Path):
    outcome = run_scan(ScanConfig(evidence=[str(evidence)], out=out, workers=2))
    records = [json.loads(line) for line in (outcome.out / "files.jsonl").open()]
    return outcome, records


@pytest.mark.parametrize("fmt,opts,detected,name", CONTAINERS, ids=[c[3] for c in CONTAINERS])
def test_container_matches_raw_truth(tmp_path: Path, fmt: str, opts: list[str], detected: str,
                                     name: str) -> None:
    image = _convert(tmp_path, fmt, opts, name)
    spec = identify(str(image))
    assert spec.format == detected
    assert spec.size >= GPT["media_size"]  # VHD rounds the geometry up, never down
    outcome, records = _scan(image, tmp_path / "out")
    ev = outcome.summary["evidence"][0]
    assert ev["format"] == detected and ev["volume_system"] == "gpt"
    by_key = {(r["volume_offset"], r["path"]): r for r in records}
    for volume in GPT["volumes"]:
        for f in volume["files"]:
            r = by_key[(volume["offset"], f["path"])]
            assert r["size"] == f["size"] and r["deleted"] == f["deleted"], f["path"]
            if f["content_expected"]:
                assert (r["md5"], r["sha1"], r["sha256"]) == (f["md5"], f["sha1"], f["sha256"])
    assert outcome.exit_code == ExitCode.OK, ev


def test_container_is_detected_by_magic_not_extension(tmp_path: Path) -> None:
    """The pytsk3 trap: a QCOW2 named .raw must still be read as QCOW2, never as raw bytes."""
    image = _convert(tmp_path, "qcow2", [], "disk.qcow2")
    disguised = tmp_path / "disk.raw"
    shutil.move(image, disguised)
    assert identify(str(disguised)).format == "qcow"


def test_qcow2_with_backing_file_is_refused_clearly(tmp_path: Path) -> None:
    base = _convert(tmp_path, "qcow2", [], "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2",
                    str(overlay)], check=True, capture_output=True, cwd=tmp_path)
    outcome = run_scan(ScanConfig(evidence=[str(overlay)], out=tmp_path / "out", workers=1))
    ev = outcome.summary["evidence"][0]
    assert outcome.exit_code == ExitCode.EVIDENCE
    assert "backing file" in ev["error"]
    assert (outcome.out / "files.jsonl").read_text() == ""


def test_differential_vhd_without_parent_is_refused(corpus: Path, tmp_path: Path) -> None:
    """Corpus fat-differential.vhd names a parent that is not there: one clear line."""
    outcome = run_scan(ScanConfig(evidence=[str(corpus / "dfvfs/fat-differential.vhd")],
                                  out=tmp_path / "out", workers=1))
    error = outcome.summary["evidence"][0]["error"]
    assert outcome.exit_code == ExitCode.EVIDENCE
    assert "parent" in error and "fat-parent.vhd" in error and "missing" in error


def test_differential_vhd_with_parent_beside_it(corpus: Path, tmp_path: Path) -> None:
    spec = identify(str(corpus / "dfvfs/image-differential.vhd"))
    assert spec.format == "vhd"
    assert spec.parent is not None and Path(spec.parent).name == "image.vhd"


def test_block_device_is_read_like_a_raw_image(tmp_path: Path) -> None:
    """A read-only loop device over gpt.img: format raw, size from the device, same files."""
    needs_tool("losetup")
    copy = tmp_path / "gpt.img"
    shutil.copyfile(TESTIMAGES / "gpt.img", copy)
    made = subprocess.run(["losetup", "--find", "--show", "--read-only", str(copy)],
                          check=False, capture_output=True, text=True)
    if made.returncode != 0 or not made.stdout.strip().startswith("/dev/"):
        pytest.skip(f"no loop device here: {made.stderr.strip()}")
    device = made.stdout.strip()
    try:
        spec = identify(device)
        assert (spec.format, spec.size) == ("raw", GPT["media_size"])
        outcome, records = _scan(Path(device), tmp_path / "out")
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)
    by_key = {(r["volume_offset"], r["path"]): r for r in records}
    for volume in GPT["volumes"]:
        for f in volume["files"]:
            if f["content_expected"]:
                assert by_key[(volume["offset"], f["path"])]["sha256"] == f["sha256"]
    assert outcome.exit_code == ExitCode.OK
