"""APFS through libfsapfs: the corpus image ``dfvfs/apfs.raw`` (truth made by TSK's fls/istat/
icat with ``-B 107``), the same container inside a partition, and the locked-volume rules."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from dissect.apfs import APFS

from triage.filesystems.backends import Found, VolumeRef, backend
from triage.filesystems.backends import apfs as apfs_mod
from triage.filesystems.backends.apfs import RESOURCE_FORK, ApfsVolumeInfo, probe_apfs
from triage.errors import ExitCode
from triage.evidence.containers import identify, open_image
from triage.records import ReadTarget
from triage.run.scan import ScanConfig, run_scan
from triage.evidence.volumes import Volume
from triage.filesystems.walk import VolumeContext, WalkOptions, WalkStats

MIB = 1 << 20


def _scan(evidence: Path, out: Path):
    outcome = run_scan(ScanConfig(evidence=[str(evidence)], out=out, workers=2))
    return outcome, {r["path"]: r for r in map(json.loads, (outcome.out / "files.jsonl").open())}


def test_apfs_records(corpus: Path, tmp_path: Path) -> None:
    outcome, by_path = _scan(corpus / "dfvfs/apfs.raw", tmp_path / "out")
    assert outcome.exit_code == ExitCode.OK
    ev = outcome.summary["evidence"][0]
    assert "error" not in ev
    [vol] = ev["volumes"]
    assert (vol["fs_type"], vol["status"]) == ("apfs", "scanned")
    assert "apfs_test" in vol["description"]
    # the resource fork is its own record, read through libfsapfs
    fork = by_path["/a_directory/a_resourcefork:com.apple.ResourceFork"]
    assert fork["md5"] == hashlib.md5(b"My resource fork\n").hexdigest() and fork["size"] == 17
    # TSK finds no data attribute for that inode; it is an empty data fork: the empty-file
    # digests, as on HFS+ (dissect.apfs, sharing no code with libfsapfs or TSK, agrees)
    data = by_path["/a_directory/a_resourcefork"]
    with open(corpus / "dfvfs/apfs.raw", "rb") as fh:
        inode = APFS(fh).volumes[0].get("/a_directory/a_resourcefork")
        content, fork = inode.open().read(), inode.xattr[RESOURCE_FORK].open().read()
    assert data["size"] == inode.size == 0 and data["error"] is None
    assert data["md5"] == hashlib.md5(content).hexdigest() == hashlib.md5(b"").hexdigest()
    assert fork == b"My resource fork\n"
    assert outcome.summary["totals"]["errors"] == 0
    # symbolic links and directories are not records, as in fls -r -p
    assert "/a_link" not in by_path and "/a_directory" not in by_path
    # times as istat -B 107 prints them (Apple's create_time/mod_time order, not libfsapfs')
    pw = by_path["/passwords.txt"]
    assert pw["crtime"] == "2022-01-14T07:19:41.213333494Z"
    assert pw["mtime"] == "2022-01-14T07:19:41.216184416Z"
    assert pw["ctime"] == "2022-01-14T07:19:41.216184416Z"
    assert pw["atime"] == "2022-01-14T07:19:41.213333494Z"
    assert all(r["deleted"] is False and r["fs_type"] == "apfs" for r in by_path.values())


def test_apfs_container_inside_a_partition(corpus: Path, tmp_path: Path) -> None:
    """The container read at a volume offset: records carry that offset, hashes are the same."""
    raw = (corpus / "dfvfs/apfs.raw").read_bytes()
    disk = tmp_path / "disk.img"
    size = MIB + len(raw) + MIB
    mbr = bytearray(512)
    mbr[446:462] = bytes([0, 0, 0, 0, 0xAF, 0, 0, 0]) + (MIB // 512).to_bytes(4, "little") + \
        (len(raw) // 512).to_bytes(4, "little")  # type 0xAF: Apple HFS/APFS
    mbr[510:512] = b"\x55\xaa"
    with open(disk, "wb") as fh:
        fh.write(mbr)
        fh.seek(MIB)
        fh.write(raw)
        fh.truncate(size)
    _, whole = _scan(corpus / "dfvfs/apfs.raw", tmp_path / "a")
    outcome, inner = _scan(disk, tmp_path / "b")
    assert outcome.exit_code == ExitCode.OK, outcome.summary["evidence"]
    assert {p: r["md5"] for p, r in inner.items()} == {p: r["md5"] for p, r in whole.items()}
    assert {r["volume_offset"] for r in inner.values()} == {MIB}


def test_short_read_is_an_error(corpus: Path) -> None:
    spec = identify(str(corpus / "dfvfs/apfs.raw"))
    b = backend("apfs")
    h = b.open(VolumeRef(spec, 0, "apfs", 0, "apfs", 0))
    read = b.hash_content(h, ReadTarget(18), 116, ("md5",))
    hashes, error, n = read.hashes, read.error, read.nbytes
    assert error is None and n == 116
    read = b.hash_content(h, ReadTarget(18), 200, ("md5",))  # more than there is
    hashes, error, n = read.hashes, read.error, read.nbytes
    assert hashes is None and error == "short read: got 116 of 200 bytes"


@pytest.fixture()
def fake_container(monkeypatch: pytest.MonkeyPatch):
    """Locked volumes cannot be made here (no macOS): the prober's rules on a described
    container."""
    def use(infos: list[ApfsVolumeInfo]) -> None:
        monkeypatch.setattr(apfs_mod, "is_container", lambda img, offset: True)
        monkeypatch.setattr(apfs_mod, "describe_container", lambda img, offset, size=None: infos)

    return use


def _volume() -> Volume:
    v = Volume(0, 10 * MIB, "whole image (no partition table)")
    v.status, v.error = "no-filesystem", "no file system TSK can open: ..."
    return v


def test_all_volumes_locked_is_an_encrypted_volume(fake_container) -> None:
    fake_container([ApfsVolumeInfo(0, "Macintosh HD - Data", "u1", None, True),
                    ApfsVolumeInfo(1, "Macintosh HD", "u2", None, True)])
    v = _volume()
    p = probe_apfs(object(), None, v)
    assert p.status == "encrypted" and p.fs_type == "apfs"
    assert p.error == "encrypted (APFS: 2 of 2 volumes locked), not scanned"
    assert any("Macintosh HD - Data" in n and "locked" in n for n in p.notes)
    assert [f.status for f in p.found] == ["encrypted", "encrypted"]
    assert v.status == "no-filesystem"  # the prober returns what it found, changes nothing


def test_mixed_container_reports_the_locked_volume(fake_container) -> None:
    fake_container([ApfsVolumeInfo(0, "Preboot", "u1", None, False),
                    ApfsVolumeInfo(1, "Data", "u2", None, True)])
    v = _volume()
    found = probe_apfs(object(), None, v).found
    assert [f.sub for f in found] == [0, 1] and all(isinstance(f, Found) for f in found)
    assert "encrypted" in found[1].description and "Data" in found[1].description
    assert "encrypted" not in found[0].description
    assert [f.status for f in found] == ["scanned", "encrypted"]
    # listing the locked one yields no file and a note: the volume ends "incomplete" (exit 4)
    h = apfs_mod.ApfsHandle(None, None, None, None, True, "Data")
    stats = WalkStats()
    records = list(backend("apfs").list_directory(
        h, found[1].root, VolumeContext("e", 0, "apfs"), WalkOptions(), stats, [], 0, None))
    assert records == []
    assert stats.errors == ["APFS volume 'Data' is encrypted (locked): not scanned"]


def test_not_a_container_is_left_alone(corpus: Path) -> None:
    spec = identify(str(corpus / "dfvfs/ext2.splitraw.000"))
    img = open_image(spec)
    v = _volume()
    assert probe_apfs(img, spec, v) is None and v.status == "no-filesystem"


def test_ewf_checksum_error_in_a_file_is_an_error(corpus: Path) -> None:
    """As the TSK backend: a chunk libewf reports corrupt makes the files on it errors."""
    spec = identify(str(corpus / "dfvfs/apfs.raw"))
    b = backend("apfs")
    h = b.open(VolumeRef(spec, 0, "apfs", 0, "apfs", 0))
    offset = b.location(h, ReadTarget(18))

    class Corrupt:
        def checksum_errors(self) -> list[tuple[int, int]]:
            return [(offset // 512, 8)]

    h.image = Corrupt()
    read = b.hash_content(h, ReadTarget(18), 116, ("md5",))
    hashes, error = read.hashes, read.error
    assert hashes is None and error.startswith("EWF chunk checksum error")
    read = b.hash_content(h, ReadTarget(19), 22, ("md5",))  # another extent
    hashes, error = read.hashes, read.error
    assert error is None and hashes


def test_hfs_resource_forks_listed_like_apfs(corpus: Path, tmp_path: Path) -> None:
    """The dfvfs HFS+ and APFS images hold the same files (made on macOS by dfvfs' authors):
    both list the resource fork as ``path:com.apple.ResourceFork`` and the empty data fork with
    the empty-file digests. Truth: TSK's icat for the HFS+ fork attribute (4353), dissect.apfs
    for the APFS one; the two readers and the two images must agree."""
    _, hfs = _scan(corpus / "dfvfs/hfsplus.raw", tmp_path / "hfs")
    _, apfs = _scan(corpus / "dfvfs/apfs.raw", tmp_path / "apfs")
    fork_path = "/a_directory/a_resourcefork:" + RESOURCE_FORK
    fork = hfs[fork_path]
    assert fork["inode"] == "25-4353-1" and fork["error"] is None
    icat = subprocess.run(["icat", str(corpus / "dfvfs/hfsplus.raw"), "25-4353-1"],
                          check=True, capture_output=True).stdout
    with open(corpus / "dfvfs/apfs.raw", "rb") as fh:
        inode = APFS(fh).volumes[0].get("/a_directory/a_resourcefork")
        apfs_fork = inode.xattr[RESOURCE_FORK].open().read()
    assert icat == apfs_fork == b"My resource fork\n"
    assert fork["md5"] == hashlib.md5(icat).hexdigest() and fork["size"] == len(icat)
    # the same files, the same digests on both file systems, forks included
    shared = [p for p in apfs if p in hfs and not p.startswith("/.fseventsd/")]  # logs differ
    assert fork_path in shared and "/a_directory/a_resourcefork" in shared
    assert "/passwords.txt" in shared
    for p in shared:
        assert (hfs[p]["size"], hfs[p]["md5"]) == (apfs[p]["size"], apfs[p]["md5"]), p
    forks = {p for p in hfs if p.endswith(":" + RESOURCE_FORK)}
    assert forks == {p for p in apfs if p.endswith(":" + RESOURCE_FORK)} == {fork_path}
