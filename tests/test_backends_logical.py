"""Logical folders: ``triage scan DIRECTORY``. The expected hashes are computed here with
hashlib over the bytes the test wrote; symbolic links are recorded and never followed."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from triage.filesystems.backends import VolumeRef, backend
from triage.errors import ExitCode
from triage.evidence.containers import identify
from triage.records import ReadTarget, iso_time, record_path
from triage.run.scan import ScanConfig, run_scan

BIG = random.Random(7).randbytes(9 << 20)  # above tasks.BIG_FILE: hashed in its own task


def _write(root: Path, rel: str | bytes, data: bytes) -> bytes:
    path = os.path.join(os.fsencode(root), os.fsencode(rel))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return data


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "evidence"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"must never be read\n")
    files = {
        "/a.txt": _write(root, "a.txt", b"alpha\n"),
        "/empty.bin": _write(root, "empty.bin", b""),
        "/big.bin": _write(root, "big.bin", BIG),
        "/café/naïve.txt": _write(root, "café/naïve.txt", "ünïcödé\n".encode()),
        "/sub/deep/x.bin": _write(root, "sub/deep/x.bin", bytes(range(256)) * 10),
    }
    raw = _write(root, b"raw\xff.bin", b"undecodable name\n")
    files["/" + os.fsdecode(b"raw\xff.bin")] = raw
    os.symlink("a.txt", root / "link_in")
    os.symlink("/etc/passwd", root / "link_out")
    os.symlink(str(outside), root / "link_dir_out")
    os.symlink("..", root / "sub" / "loop")
    os.mkfifo(root / "fifo")  # never opened: reading it would block forever
    return root, files


def _scan(evidence: Path, out: Path, workers: int = 2):
    outcome = run_scan(ScanConfig(evidence=[str(evidence)], out=out, workers=workers))
    records = [json.loads(line) for line in (outcome.out / "files.jsonl").open()]
    return outcome, records


def test_folder_hashes_match_hashlib(tree, tmp_path: Path) -> None:
    root, files = tree
    assert identify(str(root)).format == "logical"
    outcome, records = _scan(root, tmp_path / "out")
    assert outcome.exit_code == ExitCode.OK, outcome.summary["evidence"]
    ev = outcome.summary["evidence"][0]
    assert ev["format"] == "logical" and ev["volumes"][0]["status"] == "scanned"
    by_path = {record_path(r): r for r in records}
    for path, data in files.items():
        r = by_path[path]
        assert r["md5"] == hashlib.md5(data).hexdigest(), path
        assert r["sha1"] == hashlib.sha1(data).hexdigest(), path
        assert r["sha256"] == hashlib.sha256(data).hexdigest(), path
        st = os.lstat(os.path.join(os.fsencode(root), os.fsencode(path[1:])))
        assert r["size"] == len(data) and r["inode"] == str(st.st_ino)
        assert r["fs_type"] == "logical" and r["deleted"] is False and r["volume_offset"] == 0
        assert r["mtime"] == iso_time(st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9)
        assert r["error"] is None
    assert outcome.summary["totals"]["errors"] == 0


def test_symlinks_recorded_not_followed(tree, tmp_path: Path) -> None:
    root, files = tree
    _, records = _scan(root, tmp_path / "out")
    by_path = {record_path(r): r for r in records}
    for link, target in [("/link_in", "a.txt"), ("/link_out", "/etc/passwd"),
                         ("/link_dir_out", str(tmp_path / "outside")), ("/sub/loop", "..")]:
        r = by_path[link]
        assert r["md5"] is None and "symbolic link" in r["error"] and target in r["error"]
    assert not any("secret" in p or p.startswith("/sub/loop/") for p in by_path)
    assert "/fifo" not in by_path
    assert set(by_path) == set(files) | {"/link_in", "/link_out", "/link_dir_out", "/sub/loop"}


def test_one_worker_same_result(tree, tmp_path: Path) -> None:
    root, _ = tree
    _, two = _scan(root, tmp_path / "a")
    _, one = _scan(root, tmp_path / "b", workers=1)
    assert sorted((r["path"], r["md5"]) for r in one) == sorted((r["path"], r["md5"]) for r in two)


def _handle(root: Path):
    spec = identify(str(root))
    b = backend("logical")
    return b, b.open(VolumeRef(spec, 0, "logical", 0, "logical", 0))


def test_changed_or_swapped_file_is_an_error_not_a_wrong_hash(tree) -> None:
    root, _ = tree
    b, h = _handle(root)
    st = os.lstat(root / "a.txt")
    target = ReadTarget("/a.txt", None, st.st_ino)
    read = b.hash_content(h, target, 6, ("md5",))
    hashes, error = read.hashes, read.error
    assert error is None and hashes == {"md5": hashlib.md5(b"alpha\n").hexdigest()}
    read = b.hash_content(h, target, 3, ("md5",))  # listed size differs
    error = read.error
    assert error and "changed size" in error
    os.rename(root / "a.txt", root / "a.old")
    os.symlink("a.old", root / "a.txt")  # a link put where the file was: never followed
    read = b.hash_content(h, target, 6, ("md5",))
    hashes, error = read.hashes, read.error
    assert hashes is None and error.startswith("read error")
    read = b.hash_content(h, ReadTarget("/link_dir_out/secret.txt", None, None), 19,
                          ("md5",))
    error = read.error
    assert error and "symbolic link" in error


def _unprivileged() -> list[str]:
    """Command prefix under which chmod 000 really denies reading (root ignores it)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_unreadable_file_and_directory_are_errors_not_crashes(tree, tmp_path: Path) -> None:
    root, _ = tree
    (root / "a.txt").chmod(0)
    (root / "sub" / "deep").chmod(0)
    out = tmp_path / "out"
    try:
        proc = subprocess.run(
            [*_unprivileged(), sys.executable, "-m", "triage", "scan", str(root), "--out",
             str(out), "--workers", "1", "--quiet"],
            check=False, capture_output=True, text=True, timeout=300)
    finally:
        (root / "a.txt").chmod(stat.S_IRUSR | stat.S_IWUSR)
        (root / "sub" / "deep").chmod(stat.S_IRWXU)
    assert proc.returncode == ExitCode.INCOMPLETE, proc.stderr
    assert "Traceback" not in proc.stderr
    records = {json.loads(line)["path"]: json.loads(line) for line in (out / "files.jsonl").open()}
    assert records["/a.txt"]["md5"] is None and "Permission denied" in records["/a.txt"]["error"]
    assert records["/big.bin"]["md5"] == hashlib.md5(BIG).hexdigest()
    volume = json.loads((out / "summary.json").read_text())["evidence"][0]["volumes"][0]
    assert volume["status"] == "incomplete"
    assert any("/sub/deep" in n and "Permission denied" in n for n in volume["notes"])
