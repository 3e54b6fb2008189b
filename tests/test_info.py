"""``triage info``: checked against ``testimages/manifest.json`` (offsets, file systems and
labels build.py gave mkfs) and the public corpus (index.json, made with TSK's mmls/fsstat)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from conftest import TESTIMAGES, corpus_index, needs_tool

import triage.cli
import triage.content.hashing
from triage.cli import Environment
from triage.cli.info import info
from triage.filesystems.info import evidence_info, info_many

MANIFEST = json.loads((TESTIMAGES / "manifest.json").read_text())
VS_NAMES = {None: "none", "dos": "dos", "gpt": "gpt"}


@pytest.fixture(autouse=True)
def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """info must not hash anything: every hasher raises."""
    def refuse():
        raise AssertionError("triage info hashed something")

    monkeypatch.setattr(triage.content.hashing, "HASHERS", {a: refuse for a in triage.content.hashing.HASHERS})


@pytest.mark.parametrize("image", MANIFEST["images"], ids=lambda im: im["image"])
def test_testimages(image: dict) -> None:
    d = evidence_info(str(TESTIMAGES / image["image"]))
    assert d["format"] == image["format"]
    assert d["size"] == image["media_size"]
    assert [Path(s["path"]).name for s in d["segments"]] == image["segments"]
    assert [s["size"] for s in d["segments"]] == image["segment_sizes"]
    assert d["volume_system"] == VS_NAMES[image["partition_table"]]
    got = {v["offset"]: v for v in d["volumes"]}
    for vol in image["volumes"]:
        v = got[vol["offset"]]
        assert v["length"] == vol["length"]
        if vol["fs_type"] == "none":
            assert v["fs_type"] is None and v["status"] == "no-filesystem" and v["error"]
        else:
            assert (v["fs_type"], v["label"], v["status"]) == (vol["fs_type"], vol["label"],
                                                               "readable")
            assert 0 < v["fs_size"] <= vol["length"]
        assert v["encryption"] is None
    allocated = {p["offset"] for p in d["partitions"] if p["kind"] == "allocated"}
    # a partitioned image lists each volume as a partition; a bare file system lists none
    assert allocated == ({v["offset"] for v in image["volumes"]} if image["partition_table"]
                         else set())
    # only an E01 stores an acquisition hash
    assert (d["stored_hashes"].get("md5") == image["media_md5"] if image["format"] == "ewf"
            else d["stored_hashes"] == {})
    assert d["warnings"] == []


CORPUS = [e for e in corpus_index() if e["status"] not in ("reject",)]


@pytest.mark.parametrize("entry", CORPUS, ids=[e["file"] for e in CORPUS])
def test_corpus(corpus: Path, entry: dict) -> None:
    path = corpus / entry.get("unpacked_file", entry["file"])
    d = evidence_info(str(path))
    # index.json gives the media size (mmls/fsstat); where it does not, the raw file's size is it
    assert entry["format"] == "raw" or "media_size" in entry
    assert d["size"] == entry.get("media_size", path.stat().st_size)
    readable = {(v["offset"], v["fs_type"]) for v in d["volumes"] if v["status"] == "readable"}
    assert readable == {(v["volume_offset"], v["fs_type"]) for v in entry.get("volumes", [])}
    # only an E01 stores an acquisition hash
    assert (d["stored_hashes"].get("md5") == entry["media_md5"] if entry["format"] == "ewf"
            else d["stored_hashes"] == {})


def test_apfs_volume_name(corpus: Path) -> None:
    [v] = evidence_info(str(corpus / "dfvfs/apfs.raw"))["volumes"]
    assert (v["fs_type"], v["label"], v["apfs_volume"], v["encryption"]) == ("apfs", "apfs_test", 0, None)


def test_4096_byte_sectors_are_detected(corpus: Path) -> None:
    """The layout ``mmls -b 4096`` prints (index.json notes: without -b 4096 it is wrong)."""
    d = evidence_info(str(corpus / "dfir_ntfs/mbr-4096-p1e0.bin"))
    assert d["sector_size"] == 4096 and any("4096-byte sectors" in w for w in d["warnings"])
    table = [(p["kind"], p["start_sector"], p["sectors"], p["description"]) for p in d["partitions"]]
    assert ("allocated", 1, 125, "Linux (0x83)") in table
    assert ("meta", 126, 1, "Extended Table (#1)") in table
    assert [(v["offset"], v["length"], v["status"]) for v in d["volumes"]] == [
        (4096, 125 * 4096, "empty")]
    plain = evidence_info(str(corpus / "dfir_ntfs/gpt-512-3p.raw"))
    assert plain["warnings"] == [] and (plain["volume_system"], plain["sector_size"]) == ("gpt", 512)


def test_refused_evidence_is_an_entry_not_a_crash(corpus: Path) -> None:
    entries, ok = info_many([str(corpus / "dfvfs/fat-differential.vhd"),
                             str(TESTIMAGES / "fat.img")])
    assert ok is False
    assert "parent" in entries[0]["error"] and entries[1]["format"] == "raw"


def test_encrypted_volumes(tmp_path: Path) -> None:
    from test_backends_encrypted import SECTOR, build_disk

    d = evidence_info(str(build_disk(tmp_path)))
    got = {v["offset"] // SECTOR: (v["status"], v["encryption"]) for v in d["volumes"]}
    assert got == {2048: ("encrypted", "LUKS1"), 10240: ("encrypted", "BitLocker"),
                   14336: ("encrypted", "VeraCrypt-like or wiped: random data, "
                                        "indistinguishable from encryption or wiping"),
                   22528: ("empty", None)}


def test_logical_folder(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    d = evidence_info(str(tmp_path))
    assert d["format"] == "logical" and d["volumes"][0]["fs_type"] == "logical"


def _run(args: list[str]) -> tuple[int, str]:
    app = typer.Typer()
    app.command("info")(info)
    app.command("other")(lambda: None)  # two commands: typer keeps "info" as a subcommand
    out = io.StringIO()
    saved = triage.cli.env.current
    triage.cli.env.current = Environment(stdout=out, stderr=io.StringIO(), interactive=False)
    try:
        rv = app(args=["info", *args], standalone_mode=False)
    finally:
        triage.cli.env.current = saved
    return rv, out.getvalue()


def test_cli_json_and_table(corpus: Path) -> None:
    rv, text = _run([str(TESTIMAGES / "mbr.E01"), "--json"])
    assert rv == 0
    [entry] = json.loads(text)["evidence"]
    assert entry["format"] == "ewf" and entry["volume_system"] == "dos"
    rv, text = _run([str(TESTIMAGES / "gpt.img"), str(corpus / "dfvfs/apfs.raw")])
    assert rv == 0
    for word in ("gpt", "GPT-P1-EXT4", "GPT P2 FAT", "ext4", "fat16", "apfs_test", "readable"):
        assert word in text
    rv, text = _run([str(corpus / "dfvfs/bogus.001"), str(corpus / "dfvfs/fat-differential.vhd")])
    assert rv == 3 and "missing" in text


def _disk_4096(tmp_path: Path, kind: str, fs_image: str) -> tuple[Path, int]:
    """A 4096-byte-sector disk (as a 4Kn drive writes it) holding one fixture file system at
    LBA 256: MBR entries or a GPT (header CRCs per UEFI), both in 4096-byte units."""
    import struct
    import uuid
    import zlib

    ss, start = 4096, 256
    fs = (TESTIMAGES / fs_image).read_bytes()
    count = len(fs) // ss
    total = start + count + 16
    disk = bytearray(total * ss)
    disk[start * ss:start * ss + len(fs)] = fs
    mbr_type, mbr_start, mbr_count = (0x83, start, count) if kind == "mbr" else (0xEE, 1, total - 1)
    disk[446:462] = bytes([0, 0, 0, 0, mbr_type, 0, 0, 0]) + struct.pack("<II", mbr_start, mbr_count)
    disk[510:512] = b"\x55\xaa"
    if kind == "gpt":
        entry = (uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4").bytes_le + uuid.uuid4().bytes_le
                 + struct.pack("<QQQ", start, start + count - 1, 0) + "data".encode("utf-16-le"))
        entries = entry.ljust(128, b"\0").ljust(128 * 128, b"\0")
        disk[2 * ss:2 * ss + len(entries)] = entries
        header = bytearray(struct.pack(
            "<8sIIIIQQQQ16sQIII", b"EFI PART", 0x00010000, 92, 0, 0, 1, total - 1, 6,
            total - 6, uuid.uuid4().bytes_le, 2, 128, 128, zlib.crc32(entries)))
        header[16:20] = struct.pack("<I", zlib.crc32(bytes(header)))
        disk[ss:ss + 92] = header
    path = tmp_path / f"{kind}-4096.img"
    path.write_bytes(bytes(disk))
    return path, start * ss


@pytest.mark.parametrize("kind,fs_image,fs_type,label", [
    ("mbr", "fat.img", "fat16", "TRIAGE FAT"), ("gpt", "ext4.img", "ext4", "TRIAGE-EXT4")])
def test_4096_byte_sector_disk_read_with_the_right_sector_size(tmp_path: Path, kind: str,
                                                                fs_image: str, fs_type: str,
                                                                label: str) -> None:
    disk, offset = _disk_4096(tmp_path, kind, fs_image)
    d = evidence_info(str(disk))
    assert (d["volume_system"], d["sector_size"]) == (kind if kind == "gpt" else "dos", 4096)
    assert [(v["offset"], v["fs_type"], v["label"]) for v in d["volumes"]] == [
        (offset, fs_type, label)]


def _ewf_with_header(tmp_path: Path) -> Path:
    """An E01 of fat.img with every header field ewfacquire sets (benign text; one field
    carries an ANSI escape, which must reach the terminal escaped)."""
    needs_tool("ewfacquire")
    target = tmp_path / "case"
    subprocess.run(["ewfacquire", "-u", "-q", "-t", str(target), "-f", "encase6", "-c", "fast",
                    "-C", "CASE-2026-015", "-D", "seized laptop (test)", "-e", "J. Examiner",
                    "-E", "EV-7/b", "-N", "bagged \x1b[31mred\x1b[0m", "-m", "fixed",
                    "-M", "physical", str(TESTIMAGES / "fat.img")],
                   check=True, capture_output=True)
    return tmp_path / "case.E01"


def _ewfinfo(path: Path) -> dict[str, str]:
    text = subprocess.run(["ewfinfo", str(path)], capture_output=True, text=True).stdout
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


@pytest.mark.parametrize("native", [True, False])
def test_e01_acquisition_header_shown(tmp_path: Path, monkeypatch, native: bool) -> None:
    """Truth: ewfinfo (libewf's own tool). Both readers: the system libewf and pyewf."""
    from triage.evidence import ewf_native

    image = _ewf_with_header(tmp_path)
    truth = _ewfinfo(image)
    if not native:
        monkeypatch.setattr(ewf_native, "available", lambda: False)
    head = evidence_info(str(image))["acquisition"]
    assert head["case_number"] == truth["Case number"] == "CASE-2026-015"
    assert head["description"] == truth["Description"]
    assert head["examiner_name"] == truth["Examiner name"] == "J. Examiner"
    assert head["evidence_number"] == truth["Evidence number"] == "EV-7/b"
    assert head["notes"] == "bagged \x1b[31mred\x1b[0m"
    assert head["acquiry_date"] == truth["Acquisition date"]


def test_e01_acquisition_header_on_the_terminal(tmp_path: Path) -> None:
    image = _ewf_with_header(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "triage", "info", str(image)],
                          capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr
    for label, value in (("case number", "CASE-2026-015"), ("examiner", "J. Examiner"),
                         ("evidence number", "EV-7/b"), ("description", "seized laptop"),
                         ("acquisition date", _ewfinfo(image)["Acquisition date"])):
        line = next(x for x in proc.stdout.splitlines() if f" {label} " in x)
        assert value in line, line
    assert "\x1b" not in proc.stdout and r"bagged \x1b[31mred" in proc.stdout
