"""Encrypted volumes are reported per volume as "encrypted ..., not scanned" with exit code 4,
never as "0 files, 0 hits". Images are built here: sfdisk for the MBR, ``cryptsetup
luksFormat`` on a file for LUKS (a synthetic header when cryptsetup is absent), a synthetic
BitLocker boot sector, seeded random bytes for a VeraCrypt-like partition."""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import needs_tool

from triage.filesystems.backends.encrypted import (
    BITLOCKER_GUID,
    corestorage_encrypted,
    detect,
    entropy,
    from_header,
    looks_random,
)
from triage.cli import Environment, main
from triage.errors import ExitCode
from triage.run.scan import ScanConfig, run_scan

MIB = 1 << 20
SECTOR = 512


class Bytes:
    """The two methods of a pytsk3 image that the detectors use, over bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length]

    def get_size(self) -> int:
        return len(self.data)


def luks_volume(tmp: Path, size: int, version: int) -> bytes:
    """A LUKS container as cryptsetup writes it, or a synthetic header without cryptsetup."""
    path = tmp / f"luks{version}.img"
    with open(path, "wb") as fh:
        fh.truncate(size)
    if shutil.which("cryptsetup"):
        kdf = ["--pbkdf", "pbkdf2"] if version == 2 else []
        subprocess.run(["cryptsetup", "luksFormat", "-q", "--type", f"luks{version}", *kdf,
                        "--pbkdf-force-iterations", "1000", "--key-file", "-", str(path)],
                       input=b"test-passphrase", check=True, capture_output=True)
    else:
        head = bytearray(4096)
        head[0:8] = b"LUKS\xba\xbe" + struct.pack(">H", version)
        head[168:204] = str(uuid.UUID(int=version)).encode()
        with open(path, "r+b") as fh:
            fh.write(head)
    return path.read_bytes()


def bitlocker_volume(size: int) -> bytes:
    """Boot sector with the BitLocker signature (Windows 7+ GUID), then ciphertext-like bytes."""
    data = bytearray(random.Random("bitlocker").randbytes(size))
    data[0:11] = b"\xeb\x58\x90-FVE-FS-"
    data[11:13] = struct.pack("<H", SECTOR)
    data[160:176] = BITLOCKER_GUID.bytes_le
    data[510:512] = b"\x55\xaa"
    return bytes(data)


def build_disk(tmp: Path) -> Path:
    """MBR: p1 LUKS1 4 MiB, p2 BitLocker 2 MiB, p3 random 4 MiB, p4 zeros 1 MiB."""
    needs_tool("sfdisk")
    disk = tmp / "encrypted.img"
    with open(disk, "wb") as fh:
        fh.truncate(12 * MIB)
    table = ("label: dos\nstart=2048, size=8192, type=83\nstart=10240, size=4096, type=7\n"
             "start=14336, size=8192, type=83\nstart=22528, size=2048, type=83\n")
    subprocess.run(["sfdisk", "-q", str(disk)], input=table.encode(), check=True,
                   capture_output=True)
    with open(disk, "r+b") as fh:
        for start, data in [(2048, luks_volume(tmp, 4 * MIB, 1)), (10240, bitlocker_volume(2 * MIB)),
                            (14336, random.Random("veracrypt").randbytes(4 * MIB))]:
            fh.seek(start * SECTOR)
            fh.write(data)
    return disk


EXPECTED = {  # volume offset -> (status, error)
    2048 * SECTOR: ("encrypted", "encrypted (LUKS1), not scanned"),
    10240 * SECTOR: ("encrypted", "encrypted (BitLocker), not scanned"),
    14336 * SECTOR: ("encrypted", ("encrypted (VeraCrypt-like or wiped: random data, indistinguishable from encryption or wiping), "
                          "not scanned")),
    22528 * SECTOR: ("empty", None),
}


def test_encrypted_partitions_reported_per_volume(tmp_path: Path) -> None:
    disk = build_disk(tmp_path)
    outcome = run_scan(ScanConfig(evidence=[str(disk)], out=tmp_path / "out", workers=1))
    assert outcome.exit_code == ExitCode.INCOMPLETE
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    ev = summary["evidence"][0]
    assert "error" not in ev and ev["volume_system"] == "dos"
    got = {v["offset"]: (v["status"], v["error"]) for v in ev["volumes"]}
    assert got == EXPECTED
    assert summary["exit_code"] == ExitCode.INCOMPLETE
    luks = next(v for v in ev["volumes"] if v["offset"] == 2048 * SECTOR)
    assert any(n.startswith("LUKS1 ") and "UUID" in n for n in luks["notes"])


def test_terminal_summary_names_each_encrypted_volume(tmp_path: Path) -> None:
    disk = build_disk(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(disk), "--out", str(tmp_path / "out"), "--workers", "1"],
             Environment(stdout=out, stderr=err, interactive=False))
    assert exit_info.value.code == ExitCode.INCOMPLETE
    text = " ".join(out.getvalue().split())
    for offset, (status, error) in EXPECTED.items():
        if status == "encrypted":
            assert f"volume at offset {offset:,} (" in text and error in text
            line = text[text.index(f"volume at offset {offset:,} ("):]
            assert line.index("encrypted:") < line.index("cannot be read without a key")


def test_whole_disk_luks2_without_partition_table(tmp_path: Path) -> None:
    image = tmp_path / "whole.img"
    image.write_bytes(luks_volume(tmp_path, 20 * MIB, 2))
    outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "out", workers=1))
    ev = outcome.summary["evidence"][0]
    assert outcome.exit_code == ExitCode.INCOMPLETE  # examined nothing, but it is not garbage
    assert "error" not in ev
    assert [(v["status"], v["error"]) for v in ev["volumes"]] == [
        ("encrypted", "encrypted (LUKS2), not scanned")]


def test_headers() -> None:
    assert from_header(bitlocker_volume(4096)).scheme == "BitLocker"
    vista = bytearray(bitlocker_volume(4096))
    vista[160:176] = bytes(16)
    assert "Vista" in from_header(bytes(vista)).notes[0]
    luks2 = b"LUKS\xba\xbe\x00\x02" + bytes(16) + b"evidence-label" + bytes(300)
    enc = from_header(luks2)
    assert enc.scheme == "LUKS2" and "label 'evidence-label'" in enc.notes[0]
    # FileVault 2: CoreStorage physical volume header, key data size 16, cipher 2 (AES-XTS)
    cs = bytearray(512)
    cs[8:12] = struct.pack("<HH", 1, 0x10)
    cs[88:94] = b"CS" + struct.pack("<I", 1)
    cs[168:176] = struct.pack("<II", 16, 2)
    assert corestorage_encrypted(bytes(cs)) and from_header(bytes(cs)).scheme == "FileVault 2"
    cs[172:176] = struct.pack("<I", 0)
    assert from_header(bytes(cs)) is None
    assert from_header(bytes(512)) is None


def test_entropy_rule_does_not_call_structured_data_encrypted() -> None:
    """testimages/mbr.img partition 3 is a 4 KiB random block repeated: high byte entropy
    (~7.95) yet compressible and not a cipher; it must stay "no file system"."""
    block = random.Random("not-a-file-system").randbytes(4096)
    repeated = block * 256
    assert entropy(repeated) > 7.9
    assert looks_random(Bytes(repeated), 0, len(repeated))[0] is False
    assert detect(Bytes(repeated), 0, len(repeated)) is None
    noise = random.Random(1).randbytes(2 * MIB)
    assert looks_random(Bytes(noise), 0, len(noise))[0] is True
    half = noise[:MIB] + bytes(MIB)  # data then zeros: a partly written volume
    assert detect(Bytes(half), 0, len(half)) is None
    assert detect(Bytes(noise[:16 << 10]), 0, 16 << 10) is None  # too small to call


def test_mbr_fixture_partition_without_file_system_stays_unclassified(tmp_path: Path) -> None:
    from conftest import TESTIMAGES

    outcome = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "mbr.img")], out=tmp_path / "o",
                                  workers=1))
    p3 = next(v for v in outcome.summary["evidence"][0]["volumes"] if v["offset"] == 17825792)
    assert p3["status"] == "no-filesystem"


def bitlocker_to_go_image(tmp: Path) -> Path:
    """A BitLocker To Go stick as Windows writes it: a FAT "discovery volume" whose boot sector
    has OEM name ``MSWIN4.1`` and the BitLocker GUID at 424 (docs/evidence.md), built from the
    test FAT image; its files are the reader program, the data behind it is encrypted."""
    from conftest import TESTIMAGES

    fat = bytearray((TESTIMAGES / "fat.img").read_bytes())
    fat[3:11] = b"MSWIN4.1"
    fat[424:440] = BITLOCKER_GUID.bytes_le
    image = tmp / "togo.img"
    image.write_bytes(bytes(fat))
    return image


def test_bitlocker_to_go_is_encrypted_in_scan_and_info(tmp_path: Path) -> None:
    """The false clean of issue 16: TSK opens the discovery FAT, so scan used to list its files
    and end "complete, 0 hits, exit 0" for a stick whose data it never examined. Now scan and
    info say the same: encrypted (BitLocker To Go), not scanned, exit 4."""
    from triage.filesystems.info import evidence_info

    image = bitlocker_to_go_image(tmp_path)
    [v] = evidence_info(str(image))["volumes"]
    assert (v["status"], v["encryption"], v["fs_type"]) == ("encrypted", "BitLocker To Go",
                                                             "fat16")
    assert "discovery volume" in " ".join(v["notes"])
    outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "out", workers=1))
    assert outcome.exit_code == ExitCode.INCOMPLETE
    [sv] = outcome.summary["evidence"][0]["volumes"]
    assert (sv["status"], sv["error"], sv["fs_type"]) == (
        "encrypted", "encrypted (BitLocker To Go), not scanned", "fat16")
    assert sv["files"] == 0
    assert outcome.summary["exit_code"] == ExitCode.INCOMPLETE
    # the same FAT without the signature is an ordinary readable volume, scanned
    plain = tmp_path / "plain.img"
    data = bytearray(image.read_bytes())
    data[424:440] = bytes(16)
    plain.write_bytes(bytes(data))
    outcome = run_scan(ScanConfig(evidence=[str(plain)], out=tmp_path / "out2", workers=1))
    [sv] = outcome.summary["evidence"][0]["volumes"]
    assert sv["status"] == "scanned" and sv["files"] > 0
    assert outcome.exit_code == ExitCode.OK


def test_block_hit_on_bitlocker_to_go_is_not_owned_by_a_discovery_file(tmp_path: Path) -> None:
    """A block hit is mapped with the same volume discovery as scan and info: inside a To Go
    stick it lies in a volume that was not examined, never in a file of the reader program."""
    import pytsk3

    from triage.blocks.locate import locate
    from triage.blocks.media import Media

    image = bitlocker_to_go_image(tmp_path)
    plain = tmp_path / "plain.img"
    plain.write_bytes((Path(__file__).parents[1] / "testimages" / "fat.img").read_bytes())
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(plain)))
    # the first data cluster of a regular file of the plain FAT: owned by that file there
    owned = None
    for entry in fs.open_dir("/"):
        meta = entry.info.meta
        if meta is not None and meta.type == pytsk3.TSK_FS_META_TYPE_REG and meta.size > 0:
            for attr in entry:
                for run in attr:
                    if run.len:
                        owned = run.addr * fs.info.block_size
                        break
                if owned is not None:
                    break
        if owned is not None:
            break
    assert owned is not None
    media = Media(str(plain))
    assert locate(media.img, media.spec, [owned])[owned].where == "file"
    media.close()
    media = Media(str(image))
    where = locate(media.img, media.spec, [owned])[owned].where
    media.close()
    assert where.startswith("volume not examined") and "BitLocker To Go" in where, where
