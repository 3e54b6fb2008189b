"""The walk's truth on NTFS and ext, and its limits (issue 13, part B).

Every volume is built here: NTFS by libntfs-3g (``tests/ntfs3g.py``: the calls the ntfs-3g
driver makes for write and unlink, without a FUSE mount), ext4 by ``mke2fs -d`` and ``debugfs``.
Truth comes from outside triage: hashlib over the bytes written, TSK's ``fls``/``istat``, and
dissect's parsers (``dissect.ntfs``, ``dissect.extfs``), which share no code with TSK.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import ntfs3g
import pytest
from dissect.extfs import ExtFS
from dissect.ntfs import NTFS

from triage.errors import ExitCode
from triage.run.scan import ScanConfig, run_scan

needs_ntfs = pytest.mark.skipif(not ntfs3g.available() or shutil.which("fls") is None,
                                reason="mkntfs/libntfs-3g or sleuthkit not installed")
needs_ext = pytest.mark.skipif(shutil.which("mke2fs") is None or shutil.which("debugfs") is None,
                               reason="e2fsprogs not installed")

FLS_RE = re.compile(r"^(\S)/(\S) (\* )?([^:\s(]+)(\(realloc\))?:\t(.*)$")


def _scan(image: Path, out: Path, **kw) -> tuple[object, list[dict]]:
    config = ScanConfig(evidence=[str(image)], out=out, workers=1, algorithms=("md5", "sha1"),
                        **kw)
    outcome = run_scan(config)
    return outcome, [json.loads(line) for line in (out / "files.jsonl").open()]


def _fls(image: Path) -> dict[tuple[str, str], bool]:
    """fls -r -p: the regular files TSK's own walk lists, (inode, path) -> deleted."""
    out = subprocess.run(["fls", "-r", "-p", str(image)], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        m = FLS_RE.match(line)
        assert m, line
        ntype, mtype, star, inode, _realloc, path = m.groups()
        if "r" in (ntype, mtype):
            found[(inode, "/" + path)] = bool(star)
    return found


def _istat_error(image: Path, inode: int) -> str:
    r = subprocess.run(["istat", str(image), str(inode)], capture_output=True, text=True,
                       check=False)
    return " ".join(r.stderr.split())


# -- 1. deleted NTFS files ---------------------------------------------------------------------


@needs_ntfs
def test_deleted_ntfs_files_listed_as_fls_lists_them(tmp_path: Path) -> None:
    image = tmp_path / "deleted.img"
    ntfs3g.mkntfs(image, 16 << 20)
    rng = random.Random(13)
    written = {
        "/gone.bin": rng.randbytes(300_000),  # non-resident, content stays on disk
        "/docs/note.txt": b"a small resident deleted file\n",
        "/docs/deep/sub.bin": rng.randbytes(70_000),  # inside a directory deleted after it
        "/keep.bin": rng.randbytes(50_000),
        "/kept/empty.txt": b"",
    }
    with ntfs3g.Volume(image) as v:
        for d in ("/docs", "/docs/deep", "/kept"):
            v.mkdir(d)
        for path, data in written.items():
            v.write(path, [(0, data)])
        for path in ("/gone.bin", "/docs/note.txt", "/docs/deep/sub.bin"):
            v.delete(path)
        v.delete("/docs/deep")
    # the truth: fls lists the deleted files with their MFT entries
    fls = _fls(image)
    deleted = {p: i for (i, p), star in fls.items() if star and "$OrphanFiles" not in p}
    assert set(deleted) == {"/gone.bin", "/docs/note.txt", "/docs/deep/sub.bin"}

    outcome, records = _scan(image, tmp_path / "out")
    assert outcome.exit_code == ExitCode.OK, outcome.summary["evidence"]
    ours = {(r["inode"], r["path"]): r for r in records}
    assert len(ours) == len(records)
    assert set(ours) == set(fls), "the walk lists exactly what fls -r -p lists"
    for key, star in fls.items():
        assert ours[key]["deleted"] == star, key
    # content still on disk: hashed, equal to the bytes written and to what dissect reads
    ntfs = NTFS(image.open("rb"))
    for path, data in written.items():
        r = next(r for r in records if r["path"] == path)
        assert r["error"] is None, r
        assert r["md5"] == hashlib.md5(data).hexdigest(), path
        assert r["size"] == len(data)
        entry = ntfs.mft.get(int(r["inode"].split("-")[0]))
        assert hashlib.md5(entry.open().read()).hexdigest() == r["md5"], path
        assert bool(entry.header.Flags & 1) != r["deleted"], path  # dissect: in-use flag
    # and ntfs-3g's ntfsundelete recovers the deleted ones in full (it writes whole clusters)
    if shutil.which("ntfsundelete"):
        for n, path in enumerate(("/gone.bin", "/docs/note.txt", "/docs/deep/sub.bin")):
            r = next(r for r in records if r["path"] == path)
            subprocess.run(["ntfsundelete", str(image), "-u", "-i", r["inode"].split("-")[0],
                            "-d", str(tmp_path), "-o", f"undeleted{n}"],
                           check=True, capture_output=True)
            recovered = (tmp_path / f"undeleted{n}").read_bytes()[:r["size"]]
            assert hashlib.md5(recovered).hexdigest() == r["md5"], path
    assert outcome.summary["totals"]["deleted"] >= 3
    assert outcome.summary["totals"]["errors"] == 0


@needs_ntfs
def test_reused_mft_entry_is_not_the_deleted_file(tmp_path: Path) -> None:
    """Once a deleted file's MFT entry holds another file, the deleted name is not given that
    file's content: listed as fls lists it (TSK's sequence check), content only under the new
    name. libntfs-3g reuses the lowest free entry after a remount."""
    image = tmp_path / "reuse.img"
    ntfs3g.mkntfs(image, 16 << 20)
    old, new = b"old content " * 1000, b"new content " * 2000
    with ntfs3g.Volume(image) as v:
        v.mkdir("/a")
        v.write("/a/old.bin", [(0, old)])
    entry = int(next(i for (i, p) in _fls(image) if p == "/a/old.bin").split("-")[0])
    with ntfs3g.Volume(image) as v:
        v.delete("/a/old.bin")
    with ntfs3g.Volume(image) as v:
        v.write("/new.bin", [(0, new)])
    assert NTFS(image.open("rb")).mft.get(entry).filename == "new.bin"  # dissect: reused
    fls = _fls(image)
    outcome, records = _scan(image, tmp_path / "out")
    assert {(r["inode"], r["path"]) for r in records} == set(fls)
    for r in records:
        if r["md5"] == hashlib.md5(new).hexdigest():
            assert r["path"] == "/new.bin" and not r["deleted"], r
        if r["path"] == "/a/old.bin":
            assert r["md5"] is None and r["deleted"], r
    assert outcome.exit_code == ExitCode.OK


@needs_ntfs
def test_deleted_file_whose_clusters_were_reused_is_not_hashed(tmp_path: Path) -> None:
    """The MFT entry survives but most clusters went to a later file: what icat would read is
    mostly another file's bytes, so the deleted file gets no hash, only the reason. Truth:
    hashlib of the bytes written differs from what dissect reads there now, and
    ntfsundelete's recovery percentage matches the share of clusters still free."""
    image = tmp_path / "overwritten.img"
    ntfs3g.mkntfs(image, 8 << 20)
    rng = random.Random(7)
    gone, kept, new = rng.randbytes(3 << 20), rng.randbytes(100_000), rng.randbytes(5 << 20)
    with ntfs3g.Volume(image) as v:
        v.write("/gone.bin", [(0, gone)])
        v.write("/kept.bin", [(0, kept)])
        v.delete("/gone.bin")
        v.write("/new.bin", [(0, new)])  # 8 MiB volume: must take gone.bin's clusters
    entry = int(next(i for (i, p) in _fls(image) if p == "/gone.bin").split("-")[0])
    now = NTFS(image.open("rb")).mft.get(entry).open().read()
    assert len(now) == len(gone) and now != gone  # dissect: the entry is there, the bytes not
    outcome, records = _scan(image, tmp_path / "out")
    r = next(r for r in records if r["path"] == "/gone.bin")
    assert r["deleted"] and r["md5"] is None and r["size"] == len(gone), r
    m = re.match(r"content overwritten: ([\d,]+) of ([\d,]+) clusters", r["error"])
    assert m, r["error"]
    taken, stored = (int(x.replace(",", "")) for x in m.groups())
    assert stored == len(gone) // 4096 and 0 < taken < stored  # partly overwritten
    if shutil.which("ntfsundelete"):
        listing = subprocess.run(["ntfsundelete", str(image), "-s"], capture_output=True,
                                 text=True, check=False).stdout  # exit 1: none recoverable
        line = next(x for x in listing.splitlines() if x.split()[:1] == [str(entry)])
        percent = int(line.split()[2].rstrip("%"))
        assert abs(percent - 100 * (stored - taken) / stored) < 1.5, (line, taken, stored)
    by_path = {r["path"]: r for r in records}
    assert by_path["/new.bin"]["md5"] == hashlib.md5(new).hexdigest()
    assert by_path["/kept.bin"]["md5"] == hashlib.md5(kept).hexdigest()
    assert outcome.summary["totals"]["errors"] == 0 and outcome.exit_code == ExitCode.OK


# -- 2. a sparse NTFS file larger than its volume ------------------------------------------------


@needs_ntfs
def test_ntfs_sparse_file_larger_than_volume_is_read(tmp_path: Path) -> None:
    """64 KiB of data at 16 MiB on an 8 MiB volume (the issue's 1 MiB at 4.5 GiB on 64 MiB,
    scaled down: the same TSK refusal, a sparse run longer than the volume). TSK refuses the
    entry; triage reads the runs itself and the hash is that of the bytes written."""
    image = tmp_path / "sparse.img"
    ntfs3g.mkntfs(image, 8 << 20)
    data = random.Random(2).randbytes(65536)
    with ntfs3g.Volume(image) as v:
        v.write("/big.bin", [(16 << 20, data)])
        v.write("/small.bin", [(0, b"readable")])
    expected = hashlib.md5(bytes(16 << 20) + data).hexdigest()
    # outside truth: dissect and ntfs-3g's ntfscat read zeros then the data; TSK refuses it
    entry = NTFS(image.open("rb")).mft.get("big.bin")
    assert entry.size() == (16 << 20) + len(data)
    assert hashlib.md5(entry.open().read()).hexdigest() == expected
    if shutil.which("ntfscat"):
        cat = subprocess.run(["ntfscat", str(image), "/big.bin"], capture_output=True, check=True)
        assert hashlib.md5(cat.stdout).hexdigest() == expected
    assert "Run length is larger than file system" in _istat_error(image, entry.segment)

    outcome, records = _scan(image, tmp_path / "out")
    big = next(r for r in records if r["path"] == "/big.bin")
    assert big["error"] is None, big
    assert big["md5"] == expected and big["size"] == (16 << 20) + len(data)
    assert big["inode"] == f"{entry.segment}-128-{entry.attributes.DATA[0].header.header.Instance}"
    small = next(r for r in records if r["path"] == "/small.bin")
    assert small["md5"] == hashlib.md5(b"readable").hexdigest()
    assert outcome.summary["totals"]["errors"] == 0
    assert outcome.exit_code == ExitCode.OK


@needs_ntfs
def test_ntfs_sparse_run_outside_the_volume_is_an_error(tmp_path: Path) -> None:
    """The same file with its stored run moved past the volume's end: not the plain case, so
    TSK's refusal stands as the record's error (exit 4), never "no data attribute"."""
    image = tmp_path / "sparse.img"
    ntfs3g.mkntfs(image, 8 << 20)
    with ntfs3g.Volume(image) as v:
        v.write("/big.bin", [(16 << 20, b"x" * 65536)])
    entry = int(next(i for (i, p) in _fls(image) if p == "/big.bin").split("-")[0])
    raw = bytearray(image.read_bytes())
    a = _data_attr(raw, _mft_offset(raw, entry))
    runs = a + struct.unpack_from("<H", raw, a + 0x20)[0]
    # mapping pairs: a sparse run (header 0x0N: no offset) then the stored one; make the
    # stored run's offset field (its header's high nibble bytes) point far past the volume
    pos = runs + 1 + (raw[runs] & 0x0F)
    nlen, noff = raw[pos] & 0x0F, raw[pos] >> 4
    assert noff >= 2
    raw[pos + 1 + nlen:pos + 1 + nlen + noff] = b"\xff" * (noff - 1) + b"\x7f"  # +32767 or more
    image.write_bytes(raw)
    outcome, records = _scan(image, tmp_path / "out")
    big = next(r for r in records if r["path"] == "/big.bin")
    assert big["md5"] is None and big["error"].startswith("cannot read metadata"), big
    assert "Run length is larger than file system" in big["error"]
    assert outcome.summary["totals"]["errors"] == 1
    assert outcome.exit_code == ExitCode.INCOMPLETE


# -- 3. damaged MFT records ----------------------------------------------------------------------


def _mft_offset(raw: bytes, entry: int) -> int:
    cluster = struct.unpack_from("<H", raw, 11)[0] * raw[13]
    off = struct.unpack_from("<q", raw, 0x30)[0] * cluster + entry * 1024
    assert raw[off:off + 4] == b"FILE" and struct.unpack_from("<I", raw, off + 0x2C)[0] == entry
    return off


def _data_attr(raw: bytes, rec: int) -> int:
    pos = rec + struct.unpack_from("<H", raw, rec + 0x14)[0]
    while struct.unpack_from("<I", raw, pos)[0] != 0x80:
        pos += struct.unpack_from("<I", raw, pos + 4)[0]
    return pos


@needs_ntfs
def test_damaged_mft_records_are_errors(tmp_path: Path) -> None:
    image = tmp_path / "damaged.img"
    ntfs3g.mkntfs(image, 8 << 20)
    rng = random.Random(3)
    names = ["fixup", "zero", "huge", "size", "ressize", "ok"]
    with ntfs3g.Volume(image) as v:
        for n in names:
            v.write(f"/{n}.bin", [(0, b"resident" if n in ("ressize", "ok") else
                                   rng.randbytes(5000))])
    entries = {p.lstrip("/").removesuffix(".bin"): int(i.split("-")[0])
               for (i, p) in _fls(image) if p.endswith(".bin")}
    raw = bytearray(image.read_bytes())
    rec = {n: _mft_offset(raw, entries[n]) for n in names}
    raw[rec["fixup"] + 510] ^= 0xFF  # update sequence number of sector 1 no longer matches
    struct.pack_into("<I", raw, _data_attr(raw, rec["zero"]) + 4, 0)  # attribute length 0
    struct.pack_into("<I", raw, _data_attr(raw, rec["huge"]) + 4, 0x10000000)  # past the record
    struct.pack_into("<q", raw, _data_attr(raw, rec["size"]) + 0x30, 1 << 60)  # size > allocated
    struct.pack_into("<I", raw, _data_attr(raw, rec["ressize"]) + 0x10, 0x7FFFFFFF)
    image.write_bytes(raw)

    # outside truth: dissect refuses or sees an impossible size; TSK's istat errors
    ntfs = NTFS(image.open("rb"))
    with pytest.raises(Exception, match="Fixup"):
        _ = ntfs.mft.get(entries["fixup"]).filename
    with pytest.raises(Exception, match="RecordLength is 0"):
        ntfs.mft.get(entries["zero"]).size()
    assert ntfs.mft.get(entries["size"]).size() == 1 << 60
    assert ntfs.mft.get(entries["ressize"]).size() == 0x7FFFFFFF
    assert "Incorrect update sequence value" in _istat_error(image, entries["fixup"])
    assert "alloc_size" in _istat_error(image, entries["size"])

    outcome, records = _scan(image, tmp_path / "out")
    by_name = {r["path"].lstrip("/").removesuffix(".bin"): r for r in records
               if r["path"].endswith(".bin")}
    assert by_name["ok"]["md5"] == hashlib.md5(b"resident").hexdigest()
    for n in ("fixup", "zero", "huge", "size", "ressize"):
        r = by_name[n]
        assert r["md5"] is None and not r["deleted"], r
        assert r["error"].startswith(("cannot read metadata", "read error")), r
    assert "Incorrect update sequence value" in by_name["fixup"]["error"]
    assert "alloc_size" in by_name["size"]["error"]
    assert "has length 0" in by_name["zero"]["error"]
    assert "has length 268435456" in by_name["huge"]["error"]
    assert outcome.summary["totals"]["errors"] == 5
    assert outcome.exit_code == ExitCode.INCOMPLETE


# -- 4. depth --------------------------------------------------------------------------------------


def _deep_ext4(tmp_path: Path, depths: list[int]) -> tuple[Path, dict[str, bytes]]:
    src = tmp_path / "src"
    files = {}
    for n, depth in enumerate(depths):
        rel = "/".join([f"t{n}"] + ["d"] * (depth - 1))
        d = str(src)
        for part in rel.split("/"):  # one level at a time: pathlib recurses per level
            d = f"{d}/{part}"
            os.makedirs(d, exist_ok=True)
        data = f"known-bad stand-in at depth {depth}\n".encode() * 50
        Path(d, "deep.bin").write_bytes(data)
        files[f"/{rel}/deep.bin"] = data
    image = tmp_path / "deep.img"
    try:
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-N", "4096", "-d", str(src),
                        str(image), "32M"], check=True, capture_output=True)
    finally:
        for path in files:  # bottom up, level by level: shutil.rmtree would recurse too deep
            os.remove(f"{src}{path}")
            d = os.path.dirname(f"{src}{path}")
            while d != str(src):
                os.rmdir(d)
                d = os.path.dirname(d)
    return image, files


@needs_ext
def test_deep_trees_are_walked_to_the_bottom(tmp_path: Path) -> None:
    image, files = _deep_ext4(tmp_path, [131, 1000])
    outcome, records = _scan(image, tmp_path / "out")
    assert outcome.exit_code == ExitCode.OK, outcome.summary["evidence"]
    ext = ExtFS(image.open("rb"))
    for path, data in files.items():
        r = next(r for r in records if r["path"] == path)
        assert r["md5"] == hashlib.md5(data).hexdigest()
        assert hashlib.md5(ext.get(path).open().read()).hexdigest() == r["md5"]  # dissect
    vol = outcome.summary["evidence"][0]["volumes"][0]
    assert vol["status"] == "scanned" and vol["notes"] == []


@needs_ext
def test_depth_limit_is_noted_and_makes_exit_4(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_MAX_DEPTH", "100")  # read by the (spawned) workers
    image, files = _deep_ext4(tmp_path, [131])
    outcome, records = _scan(image, tmp_path / "out")
    assert not any(r["path"] in files for r in records)
    vol = outcome.summary["evidence"][0]["volumes"][0]
    assert vol["status"] == "incomplete"
    assert any("deeper than 100 levels" in n for n in vol["notes"]), vol
    assert outcome.exit_code == ExitCode.INCOMPLETE


# -- 5. absurd sizes and the per-file time budget -----------------------------------------------


def _ext4(tmp_path: Path, files: dict[str, bytes | int], size: str = "16M") -> Path:
    """ext4 by ``mke2fs -d``; an int value is a sparse file of that size (data at both ends)."""
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        with open(src / name, "wb") as f:
            if isinstance(data, int):
                f.write(b"head")
                f.seek(data - 4)
                f.write(b"tail")
            else:
                f.write(data)
    image = tmp_path / "ext4.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), size],
                   check=True, capture_output=True)
    return image


@needs_ext
def test_ext4_inode_with_absurd_size_is_an_error_at_once(tmp_path: Path) -> None:
    image = _ext4(tmp_path, {"f.bin": random.Random(5).randbytes(10_000), "ok.txt": b"fine\n"})
    subprocess.run(["debugfs", "-w", "-R", "sif /f.bin size 0x0FFFFFFFFFFFFFF0", str(image)],
                   check=True, capture_output=True)
    # outside truth: debugfs and dissect see the damaged size; 10 KiB are allocated
    stat = subprocess.run(["debugfs", "-R", "stat /f.bin", str(image)], capture_output=True,
                          text=True, check=True).stdout
    assert "Size: 1152921504606846960" in stat
    inode = ExtFS(image.open("rb")).get("/f.bin")
    assert inode.size == 0x0FFFFFFFFFFFFFF0

    outcome, records = _scan(image, tmp_path / "out")
    assert outcome.summary["elapsed_seconds"] < 60
    f = next(r for r in records if r["path"] == "/f.bin")
    assert f["size"] == 0x0FFFFFFFFFFFFFF0 and f["md5"] is None and not f["deleted"]
    assert "larger than ext4 allows" in f["error"], f
    ok = next(r for r in records if r["path"] == "/ok.txt")
    assert ok["md5"] == hashlib.md5(b"fine\n").hexdigest()
    assert outcome.summary["totals"]["errors"] == 1
    assert outcome.exit_code == ExitCode.INCOMPLETE


@needs_ext
def test_per_file_time_budget_stops_a_read_whose_bytes_keep_coming(tmp_path: Path) -> None:
    """A 3 GiB sparse file under a 0.3 s budget: TSK keeps handing back zeros (so
    --read-timeout never fires); the budget stops it and the record is still written."""
    image = _ext4(tmp_path, {"sparse.bin": 3 << 30, "ok.txt": b"fine\n"})
    inode = ExtFS(image.open("rb")).get("/sparse.bin")  # dissect: the sparse size is real
    assert inode.size == 3 << 30
    outcome, records = _scan(image, tmp_path / "out", file_timeout=0.3)
    f = next(r for r in records if r["path"] == "/sparse.bin")
    assert f["md5"] is None and f["error"].startswith("not read: over the per-file time budget")
    assert outcome.summary["options"]["file_timeout"] == 0.3
    assert outcome.summary["totals"]["errors"] == 1
    assert outcome.exit_code == ExitCode.INCOMPLETE
    ok = next(r for r in records if r["path"] == "/ok.txt")
    assert ok["md5"] == hashlib.md5(b"fine\n").hexdigest()


def test_derived_file_budget() -> None:
    """Default (--file-timeout 0): --read-timeout plus one second per MiB of the size."""
    from triage.content import hashing

    saved = hashing._budget
    try:
        hashing.set_file_budget(0.0, 120.0)
        assert hashing.file_budget(0) == 120.0
        assert hashing.file_budget(10 << 30) == 120.0 + 10 * 1024
        hashing.set_file_budget(5.0, 120.0)
        assert hashing.file_budget(10 << 30) == 5.0
    finally:
        hashing._budget = saved


def test_apfs_depth_limit_is_noted(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    """The APFS walk (libfsapfs) follows the same rule: with the limit at 1 level, the corpus
    image's /a_directory is noted, not silently dropped."""
    monkeypatch.setenv("TRIAGE_MAX_DEPTH", "1")
    outcome, records = _scan(corpus / "dfvfs/apfs.raw", tmp_path / "out")
    assert not any(r["path"].startswith("/a_directory/") for r in records)
    [vol] = outcome.summary["evidence"][0]["volumes"]
    assert vol["status"] == "incomplete"
    assert any("/a_directory is deeper than 1 levels" in n for n in vol["notes"]), vol
    assert outcome.exit_code == ExitCode.INCOMPLETE


def test_journal_rebuilds_ancestors_instead_of_storing_them(tmp_path: Path) -> None:
    """With 4,096 levels allowed, writing every directory's ancestors made the resume journal
    grow with the square of the depth (111 MB for one 4,096-deep chain); replay rebuilds them
    from the parent, so --resume still cuts loops."""
    from triage.run.journal import JOURNAL, Journal, replay
    from triage.run.results import Tally
    from triage.filesystems.walk import DirRef

    (tmp_path / "files.jsonl").write_bytes(b"")
    root = DirRef(5, "", frozenset([5]))
    a = DirRef(64, "/a", frozenset([5, 64]))
    b = DirRef(65, "/a/b", frozenset([5, 64, 65]))
    journal = Journal(tmp_path, append=False)
    journal.dir_done(0, root, 0, 0, [a], None, [], Tally(), [])
    journal.dir_done(0, a, 0, 0, [b], 7, [], Tally(), [])  # /a continues at entry 7
    journal.close()
    lines = [json.loads(line) for line in (tmp_path / JOURNAL).open()]
    assert all(x["d"][2] is None and all(s[2] is None for s in x["sub"]) for x in lines)
    pending = {(d.addr, d.path, start): d.ancestors
               for _, d, start in replay(tmp_path).pending_dirs()}
    assert pending == {(65, "/a/b", 0): {5, 64, 65}, (64, "/a", 7): {5, 64}}
    # a journal written before (ancestors listed) still replays
    old = {"k": "dir", "v": 0, "d": [5, "", [5], False], "s": 0, "end": 0,
           "sub": [[64, "/a", [5, 64], False]], "more": None, "def": [],
           "t": lines[0]["t"], "notes": []}
    (tmp_path / JOURNAL).write_text(json.dumps(old) + "\n")
    [(_, d, _)] = replay(tmp_path).pending_dirs()
    assert (d.addr, d.ancestors) == (64, {5, 64})
