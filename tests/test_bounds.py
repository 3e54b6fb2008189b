"""Bounded resources, as the README says (issue 14, item 5).

Duplicates do not grow memory; a line is not read past the 64 KiB limit (a zip bomb is refused
after 64 KiB of it); a FIFO or a character device is not evidence (exit 3, one line, at once).

Peak RSS is the child's own ``VmHWM`` (/proc/self/status), not ``getrusage(RUSAGE_CHILDREN)``:
Linux keeps, across ``exec``, the RSS the child had as a copy of its parent, so the children of
a big pytest process would all report at least the parent's size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import load_hashset

SAME = b"0123456789abcdef0123456789abcdef  x.jpg\n"
NSRL_HEADER = (b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode",'
               b'"SpecialCode"\n')
NSRL_ROW = (b'"0123456789ABCDEF0123456789ABCDEF01234567","0123456789ABCDEF0123456789ABCDEF",'
            b'"01234567","x.jpg",1234,1,"1",""\n')

_PEAK = """
import json, sys
from triage.hashsets import import_hashsets, load_hashset
if sys.argv[1] == "import":
    header = import_hashsets([sys.argv[3]], sys.argv[2], force=True)
    entries = sum(t["unique"] for t in header["algorithms"].values())
else:
    entries = load_hashset(sys.argv[2]).entries
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"entries": entries, "peak_mb": int(hwm.split()[1]) / 1024}))
"""


def _peak(*args: str, memory_mib: int) -> dict:
    env = dict(os.environ, TRIAGE_HASHSET_MEMORY=str(memory_mib))
    proc = subprocess.run([sys.executable, "-c", _PEAK, *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json

    return json.loads(proc.stdout)


def test_identical_lines_do_not_grow_memory(tmp_path: Path) -> None:
    """3M identical lines with a 24 MiB row buffer: the runs re-partitioned on every digest byte
    held one buffer per level (459 MB before, 189 MB now; 10M lines: 916 -> 274 MB)."""
    source = tmp_path / "same.md5"
    source.write_bytes(SAME * 3_000_000)
    found = _peak("import", str(tmp_path / "same.tdb"), str(source), memory_mib=24)
    assert found["entries"] == 1
    assert found["peak_mb"] < 300, found


def test_zipped_duplicates_as_hashset(tmp_path: Path) -> None:
    """A zipped NSRL file of one row repeated, loaded for a scan: one entry, flat memory."""
    source = tmp_path / "nsrl.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("NSRLFile.txt", NSRL_HEADER + NSRL_ROW * 200_000)
    found = _peak("load", str(source), memory_mib=1)
    assert found["entries"] == 2  # its SHA-1 and its MD5
    assert found["peak_mb"] < 250, found


def _bomb(path: Path, line: int, after: bytes = b"") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, \
            zf.open("NSRLFile.txt", "w", force_zip64=True) as entry:
        entry.write(NSRL_HEADER)
        block = b"a" * (1 << 20)
        for _ in range(line >> 20):
            entry.write(block)
        entry.write(b"\n" + after)
    return path


def test_long_line_in_zip_is_not_read_past_the_limit(tmp_path: Path, monkeypatch) -> None:
    """A 64 MiB line (64 KiB zipped): refused after reading about the limit, not all of it."""
    bomb = _bomb(tmp_path / "bomb.zip", 64 << 20)
    assert bomb.stat().st_size < 1 << 20
    read = [0]
    original = zipfile.ZipExtFile.read1

    def counting(self, n=-1):
        data = original(self, n)
        read[0] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read1", counting)
    with pytest.raises(HashSetError, match="line 2 is longer than 65536 characters") as caught:
        load_hashset(bomb)
    assert "\n" not in str(caught.value)
    assert 0 < read[0] < 4 << 20  # the limit plus read-ahead, not 64 MiB


def test_lenient_reads_on_after_a_long_line(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.zip", 2 << 20, after=NSRL_ROW)
    hs = load_hashset(bomb, lenient=True)
    assert hs.skipped == 1 and hs.entries == 2


# -- evidence that is not a disk image --------------------------------------------------------


def _triage(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True,
                          text=True, timeout=timeout)
    return proc, time.monotonic() - started


@pytest.mark.parametrize("command", ["scan", "info"])
def test_fifo_is_refused_promptly(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "pipe.img"
    os.mkfifo(fifo)
    extra = ["--out", str(tmp_path / "run"), "--quiet", "--workers", "1"] if command == "scan" else []
    proc, seconds = _triage(command, str(fifo), *extra)  # before: blocked for ever
    assert proc.returncode == 3, proc.stderr
    assert seconds < 30
    assert "is a named pipe (FIFO), not a disk image or block device" in proc.stdout + proc.stderr
    if command == "scan":
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert errors == [f"triage: error: {fifo}: is a named pipe (FIFO), not a disk image or "
                          "block device"]
        assert not (tmp_path / "run").exists()


def test_fifo_as_a_later_split_segment(tmp_path: Path) -> None:
    (tmp_path / "disk.001").write_bytes(bytes(4096))
    os.mkfifo(tmp_path / "disk.002")
    proc, seconds = _triage("info", str(tmp_path / "disk.001"))
    assert proc.returncode == 3 and seconds < 30
    assert "disk.002: is a named pipe (FIFO)" in proc.stdout


@pytest.mark.parametrize("command", ["scan", "info"])
def test_character_device_is_not_evidence(tmp_path: Path, command: str) -> None:
    """/dev/zero was scanned as an empty 0-byte raw image with exit 0."""
    extra = ["--out", str(tmp_path / "run"), "--quiet", "--workers", "1"] if command == "scan" else []
    proc, _ = _triage(command, "/dev/zero", *extra)
    assert proc.returncode == 3, proc.stderr
    assert "/dev/zero: is a character device, not a disk image or block device" in (
        proc.stdout + proc.stderr)


def test_folder_is_still_a_logical_scan_with_its_fifo_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"hello")
    os.mkfifo(folder / "pipe")
    proc, seconds = _triage("scan", str(folder), "--out", str(tmp_path / "run"), "--quiet",
                            "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert seconds < 60
    assert '"path":"/a.txt"' in (tmp_path / "run" / "files.jsonl").read_text()


def test_fifo_as_hashset_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "set.md5")
    proc, seconds = _triage("hashset", "info", str(tmp_path / "set.md5"))
    assert proc.returncode == 2 and seconds < 30
    assert proc.stderr.strip() == f"triage: error: hash set {tmp_path / 'set.md5'}: not a regular file"
