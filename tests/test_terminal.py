"""The terminal as an examiner watches it: the CLI driven in a pseudo-terminal.

The progress line of the default walk order must show a total, a rate and an ETA; Ctrl-C (the
terminal's ^C, so SIGINT to the whole foreground group, as a user's key press) must say the scan
was interrupted, that the outputs are valid, and the exact command that resumes it; the resume
must say how much was already done. A worker made to hang (TRIAGE_FAULT_INJECT) keeps the scan
running for as long as the test needs, whatever the speed of the machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import random
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import needs_tool

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
UNIT = r"(?:bytes|kB|MB|GB|TB)"
# rich: "scanning ━━━━╸━━━ 37.7/67.1 MB 120.3 MB/s ETA 0:00:01"
LINE = re.compile(rf"(?P<done>[\d.]+)/(?P<total>[\d.]+) (?P<unit>{UNIT})\s+"
                  rf"(?P<rate>[\d.]+ {UNIT}/s)\s+ETA (?P<eta>\d+:\d\d:\d\d)")


def build_image(tmp: Path) -> Path:
    """ext4, 8 directories of 4 files of 2 MiB each (seeded pseudo-random: no holes)."""
    needs_tool("mke2fs")
    src = tmp / "src"
    rng = random.Random(15)
    for d in range(8):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(4):
            (src / f"d{d}" / f"f{f}.bin").write_bytes(rng.randbytes(2 << 20))
    image = tmp / "disk.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "96M"],
                   check=True, capture_output=True)
    return image


def run_in_pty(argv: list[str], env: dict[str, str], until, timeout: float = 120
               ) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal (120 columns); once ``until(text so far)`` is true,
    type ^C. Returns the exit code and everything the terminal showed (ANSI removed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin/stdout/stderr are the terminal
        os.execve(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    raw = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            raw += data
        if not sent and until is not None and until(ANSI.sub("", raw.decode("utf-8", "replace"))):
            os.write(fd, b"\x03")  # the terminal's interrupt character
            sent = True
    else:
        os.kill(pid, 9)
        pytest.fail("the scan did not end within the timeout")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), ANSI.sub("", raw.decode("utf-8", "replace"))


def progress_frames(text: str) -> list[re.Match]:
    return [m for part in re.split(r"[\r\n]", text) if (m := LINE.search(part))]


def good_frame(text: str) -> bool:
    """A frame with a total, a measured rate and an ETA, after some bytes were hashed."""
    return any(float(m["done"]) > 0 for m in progress_frames(text))


def test_walk_progress_has_total_rate_eta_and_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    image = build_image(tmp_path)
    out = tmp_path / "run dir"  # a space: the printed command must be quoted to be exact
    env = dict(os.environ, TRIAGE_FAULT_INJECT="hang:/d3/f2.bin", COLUMNS="120")
    argv = [sys.executable, "-m", "triage", "scan", str(image), "--out", str(out),
            "--workers", "2", "--read-timeout", "600"]
    code, shown = run_in_pty(argv, env, until=good_frame)
    frames = progress_frames(shown)
    assert frames, shown[-2000:]
    m = next(m for m in frames if float(m["done"]) > 0)
    # the total is known from the start (ext4 superblock: allocated bytes), at least what is
    # stored; the rate was measured; the ETA is a time, not "-:--:--"
    total = float(m["total"]) * {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[m["unit"]]
    assert 64 * 2**20 <= total <= 96 * 2**20, m.group(0)
    assert float(m["done"]) <= float(m["total"])
    assert re.fullmatch(rf"[\d.]+ {UNIT}/s", m["rate"]), m.group(0)
    assert re.fullmatch(r"\d+:\d\d:\d\d", m["eta"]), m.group(0)

    assert code == 130, shown[-2000:]
    tail = shown[shown.rindex(m.group(0)) + len(m.group(0)):]
    assert "Traceback" not in tail
    assert "interrupted" in tail and "are valid" in tail
    assert f"triage scan --resume {shlex.quote(str(out))}" in tail
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["interrupted"] is True
    kept = [json.loads(x) for x in (out / "files.jsonl").read_text().splitlines()]
    assert 0 < len(kept) < 32

    # the resume line, run exactly as printed, continues the run and says what it starts from
    env.pop("TRIAGE_FAULT_INJECT")
    resume = shlex.split(tail[tail.index("triage scan --resume"):].splitlines()[0])
    proc = subprocess.run([sys.executable, "-m", "triage", *resume[1:]], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    said = re.search(r"resuming .*: ([\d,]+) records kept \(([\d,]+) bytes hashed\); left to "
                     r"do: ([\d,]+) directories to list and ([\d,]+) files to hash", proc.stderr)
    assert said, proc.stderr
    assert int(said[1].replace(",", "")) == len(kept)
    assert int(said[2].replace(",", "")) == sum(r["size"] for r in kept if r["md5"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["totals"]["files"] == 32
    assert summary["command"][1:] == argv[3:]  # what started the run (argv[0]: the module)
    assert [c[1:] for c in summary["resume_commands"]] == [resume[1:]]  # what continued it


def _open(path: Path):
    from triage.evidence.containers import identify, open_image
    from triage.evidence.volumes import find_volumes, open_fs

    img = open_image(identify(str(path)))
    _, volumes = find_volumes(img)
    return img, volumes[0], open_fs(img, volumes[0])


def test_allocated_bytes_match_the_file_systems_own_tools() -> None:
    """The bar's first total: ext from dumpe2fs, FAT from fsstat's FAT contents, NTFS from
    ntfs-3g's ntfscluster (tools that share no code with the reader)."""
    from conftest import TESTIMAGES

    from triage.filesystems.allocated import allocated_bytes

    needs_tool("dumpe2fs")
    needs_tool("fsstat")
    needs_tool("ntfscluster")
    ext4 = TESTIMAGES / "ext4.img"
    head = subprocess.run(["dumpe2fs", "-h", str(ext4)], capture_output=True, text=True).stdout
    field = {k.strip(): v.strip() for k, _, v in (x.partition(":") for x in head.splitlines())}
    truth = (int(field["Block count"]) - int(field["Free blocks"])) * int(field["Block size"])
    img, v, fs = _open(ext4)
    assert allocated_bytes(img, v.offset, fs) == truth

    fat = TESTIMAGES / "fat.img"
    listing = subprocess.run(["fsstat", str(fat)], capture_output=True, text=True).stdout
    sectors = sum(int(n) for n in re.findall(r"^\d+-\d+ \((\d+)\)", listing.split(
        "FAT CONTENTS")[1], re.MULTILINE))
    img, v, fs = _open(fat)
    assert allocated_bytes(img, v.offset, fs) == sectors * 512

    ntfs = TESTIMAGES / "ntfs.img"
    info = subprocess.run(["ntfscluster", "-i", str(ntfs)], capture_output=True, text=True).stdout
    field = {k.strip(): v.strip() for k, _, v in (x.partition(":") for x in info.splitlines())}
    truth = int(field["bytes per volume"]) - int(field["bytes of free space"])
    img, v, fs = _open(ntfs)
    got = allocated_bytes(img, v.offset, fs)
    cluster = int(field["bytes per cluster"])
    assert abs(got - truth) <= cluster  # the partial last cluster (backup boot sector)


def test_allocated_bytes_exfat_and_hfsplus_from_the_corpus(tmp_path: Path) -> None:
    """exFAT: bits set in the allocation bitmap as icat extracts it (clusters from fsstat);
    HFS+: fsstat's block range and free-block count."""
    import gzip
    import shutil as _shutil

    from conftest import corpus_source
    from triage.filesystems.allocated import allocated_bytes

    src = corpus_source()
    if src is None:
        pytest.skip("public corpus ../shared/corpus not present")
    needs_tool("fsstat")
    needs_tool("icat")
    needs_tool("fls")
    exfat = tmp_path / "exfat.raw"
    with gzip.open(src / "dfir_ntfs" / "exfat_win.raw.gz") as f, open(exfat, "wb") as out:
        _shutil.copyfileobj(f, out)
    stat = subprocess.run(["fsstat", str(exfat)], capture_output=True, text=True).stdout
    first, last = map(int, re.search(r"Cluster Range: (\d+) - (\d+)", stat).groups())
    cluster = int(re.search(r"Cluster Size: (\d+)", stat)[1])
    listing = subprocess.run(["fls", str(exfat)], capture_output=True, text=True).stdout
    inode = re.search(r"(\d+):\s+\$ALLOC_BITMAP", listing)[1]
    bitmap = subprocess.run(["icat", str(exfat), inode], capture_output=True).stdout
    bits = "".join(f"{b:08b}"[::-1] for b in bitmap)[: last - first + 1]
    img, v, fs = _open(exfat)
    assert allocated_bytes(img, v.offset, fs) == bits.count("1") * cluster > 0

    hfs = src / "dfvfs" / "hfsplus.raw"
    stat = subprocess.run(["fsstat", str(hfs)], capture_output=True, text=True).stdout
    first, last = map(int, re.search(r"Block Range: (\d+) - (\d+)", stat).groups())
    free = int(re.search(r"Number of Free Blocks: (\d+)", stat)[1])
    block = int(re.search(r"Allocation Block Size: (\d+)", stat)[1])
    img, v, fs = _open(hfs)
    assert allocated_bytes(img, v.offset, fs) == (last - first + 1 - free) * block > 0
