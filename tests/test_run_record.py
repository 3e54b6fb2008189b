"""A run's own record never lies (issue 14): a full disk or a kill while rendering is not
"complete", a resume checks the evidence itself, one folder holds one scan, and --force
removes only the earlier run's own outputs.

Each test builds its own evidence with mke2fs -d (benign generated content); the truth is
hashlib over the bytes written and a clean, uninterrupted run of the same evidence.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triage.errors import ExitCode
from triage.run.scan import ScanConfig, run_scan

from conftest import needs_tool


def make_ext4(tmp: Path, name: str, files: int, seed: str = "a", size_mb: int = 8) -> tuple[Path, dict[str, str]]:
    """An ext4 image of ``files`` small generated files; returns it and path -> MD5."""
    needs_tool("mke2fs")
    src = tmp / f"{name}-src"
    truth = {}
    for i in range(files):
        d = src / f"d{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        data = f"{seed} generated file {i}\n".encode() * (1 + i % 7)
        (d / f"f{i:04d}.txt").write_bytes(data)
        truth[f"/d{i % 4}/f{i:04d}.txt"] = hashlib.md5(data).hexdigest()
    img = tmp / f"{name}.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(img), f"{size_mb}M"],
                   check=True, capture_output=True)
    return img, truth


def hashset(tmp: Path, md5s: list[str]) -> Path:
    p = tmp / "bad.md5"
    p.write_text("".join(f"{m}  x\n" for m in md5s))
    return p


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "files.jsonl").read_text().splitlines()]


def core(recs: list[dict]) -> list[tuple]:
    return sorted((r["evidence"], r["volume_offset"], r["inode"], r["path"], r["md5"],
                   r["category"], r["error"], json.dumps(r["matches"], sort_keys=True))
                  for r in recs)


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def triage(*args: str, env: dict | None = None, preexec=None, timeout: float = 120
           ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True,
                          text=True, env=env, preexec_fn=preexec, timeout=timeout)


def _small_file_limit() -> None:
    """The child sees a "disk" that takes no file over 48 KiB: writes fail with EFBIG, as a
    full disk fails them with ENOSPC (SIGXFSZ ignored so the write returns the error)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (48 << 10, 48 << 10))


# -- 1. disk full is not complete ---------------------------------------------------------------


def test_disk_full_is_incomplete_and_resume_finishes(tmp_path: Path) -> None:
    img, truth = make_ext4(tmp_path, "many", 400)
    bad = hashset(tmp_path, [truth["/d1/f0005.txt"], truth["/d3/f0399.txt"]])
    clean = run_scan(ScanConfig(evidence=[str(img)], hashsets=[str(bad)], out=tmp_path / "clean",
                                workers=2))
    assert (tmp_path / "clean" / "files.jsonl").stat().st_size > 100 << 10  # over the limit

    out = tmp_path / "full"
    proc = triage("scan", str(img), "--hashset", str(bad), "--out", str(out), "--workers", "2",
                  "-q", preexec=_small_file_limit)
    assert proc.returncode == ExitCode.OUTPUT, proc.stderr
    assert "Traceback" not in proc.stderr and "--resume" in proc.stderr
    s = summary(out)
    assert s["complete"] is False and s["exit_code"] == ExitCode.OUTPUT
    assert "write failed" in s["incomplete_reason"] and "--resume" in s["incomplete_reason"]
    partial = records(out)  # whole lines only
    assert len(partial) < len(clean.summary and records(clean.out))
    report = out / "report.html"
    if report.exists():
        assert "did not finish" in report.read_text()
    assert not list(out.glob(".*.tmp"))

    proc = triage("scan", "--resume", str(out), "-q")  # space freed: no limit now
    assert proc.returncode == ExitCode.HITS, proc.stderr
    s = summary(out)
    assert s["complete"] is True and s["incomplete_reason"] is None and s["resumed"]
    assert core(records(out)) == core(records(clean.out))
    assert {r["path"]: r["md5"] for r in records(out)} == truth
    assert s["totals"] == clean.summary["totals"]
    assert "Complete</th><td>yes" in (out / "report.html").read_text().replace("\n", "")


_KILL_IN_RENDER = """
import os, signal, sys
import triage.reports as reports
def boom(run_dir, summary):
    (run_dir / ".report.html.tmp").write_text("<html>half")
    os.kill(os.getpid(), signal.SIGKILL)
reports.FORMATS["html"] = boom
from triage.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("finisher", ["report", "resume"])
def test_kill_while_rendering_leaves_a_run_that_finishes(tmp_path: Path, finisher: str) -> None:
    img, truth = make_ext4(tmp_path, "small", 20)
    bad = hashset(tmp_path, [truth["/d0/f0004.txt"]])
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-c", _KILL_IN_RENDER, "scan", str(img), "--hashset",
                           str(bad), "--out", str(out), "--workers", "1", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    s = summary(out)
    assert s["complete"] is False and "rendered" in s["incomplete_reason"]
    assert not (out / "report.html").exists() and (out / ".report.html.tmp").exists()

    if finisher == "report":
        proc = triage("report", str(out))
        assert proc.returncode == 0, proc.stderr
    else:
        proc = triage("scan", "--resume", str(out), "-q")
        assert proc.returncode == ExitCode.HITS, proc.stderr
    s = summary(out)
    assert s["complete"] is True and s["incomplete_reason"] is None
    assert not list(out.glob(".*.tmp"))
    html = (out / "report.html").read_text().replace("\n", "")
    assert "Complete</th><td>yes" in html and "did not finish" not in html
    assert {r["path"]: r["md5"] for r in records(out)} == truth
    assert (out / "hits.csv").read_text().count("\n") == 2  # header + the one hit


# -- 4. one folder, one scan --------------------------------------------------------------------


def test_two_scans_racing_for_one_folder(tmp_path: Path) -> None:
    """Started together into one --out, one scan wins and the other is refused (exit 2); the
    folder then holds the winner's records only, and its summary names the winner."""
    a, _ = make_ext4(tmp_path, "a", 6, seed="a")
    b, _ = make_ext4(tmp_path, "b", 6, seed="b")
    cmd = [sys.executable, "-m", "triage", "scan", "--workers", "1", "-q", "--formats", "csv"]
    outcomes = set()
    for trial in range(20):
        out = tmp_path / f"race{trial}"
        procs = {str(img): subprocess.Popen([*cmd, str(img), "--out", str(out)], text=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for img in (a, b)}
        codes = {img: (p.wait(timeout=120), p.stderr.read()) for img, p in procs.items()}
        for p in procs.values():
            p.stdout.close()
            p.stderr.close()
        winners = [img for img, (rc, _) in codes.items() if rc == 0]
        losers = [img for img, (rc, _) in codes.items() if rc == ExitCode.USAGE]
        assert len(winners) == 1 and len(losers) == 1, codes
        err = codes[losers[0]][1]
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "another triage run" in err or "not empty" in err, err
        outcomes.add("locked" if "another triage run" in err else "not empty")
        s = summary(out)
        assert s["complete"] is True and [e["path"] for e in s["evidence_given"]] == winners
        assert {r["evidence"] for r in records(out)} == set(winners)
        assert len(records(out)) == 6 == s["totals"]["files"]
        assert not (out / ".triage.lock").exists()
    print("refusals seen:", outcomes)


def test_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    from triage.run.outdir import FolderLock

    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path;"
                               "from triage.run.outdir import FolderLock;"
                               "l = FolderLock(Path(sys.argv[1])); print('held', flush=True);"
                               "time.sleep(60)", str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    img, _ = make_ext4(tmp_path, "a", 3)
    proc = triage("scan", str(img), "--out", str(out), "--force", "-q")
    assert proc.returncode == ExitCode.USAGE
    assert f"pid {holder.pid}" in proc.stderr and "Traceback" not in proc.stderr
    holder.kill()  # SIGKILL: no cleanup; the kernel drops the flock, the file stays
    holder.wait()
    holder.stdout.close()
    assert (out / ".triage.lock").exists()
    proc = triage("scan", str(img), "--out", str(out), "-q")  # only our stale lock file: empty
    assert proc.returncode == 0, proc.stderr
    assert summary(out)["complete"] is True
    FolderLock(out).release()  # free again after the run


def test_force_removes_only_the_earlier_runs_outputs(tmp_path: Path) -> None:
    hot, truth = make_ext4(tmp_path, "hot", 12, seed="hot")
    cold, cold_truth = make_ext4(tmp_path, "cold", 5, seed="cold")
    bad = hashset(tmp_path, [truth["/d0/f0000.txt"], truth["/d1/f0001.txt"]])
    out = tmp_path / "o"
    proc = triage("scan", str(hot), "--hashset", str(bad), "--out", str(out), "-q")
    assert proc.returncode == ExitCode.HITS, proc.stderr
    assert (out / "hits.csv").read_text().count("\n") == 3 and (out / "files.dfxml").exists()
    mine = {"notes.txt": "examiner's notes", "hits.csv.bak": "kept", ".hidden": "x",
            ".report.html.bak": "y"}
    for name, text in mine.items():
        (out / name).write_text(text)
    (out / "sub").mkdir()
    (out / "sub" / "hits.csv").write_text("not ours to remove")

    proc = triage("scan", str(cold), "--hashset", str(bad), "--out", str(out), "--force",
                  "--formats", "html", "-q")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*mine, "sub", ".triage-journal.jsonl", "files.jsonl",
                            "report.html", "summary.json"])
    for name, text in mine.items():
        assert (out / name).read_text() == text
    assert (out / "sub" / "hits.csv").read_text() == "not ours to remove"
    assert {r["path"]: r["md5"] for r in records(out)} == cold_truth
    assert {r["evidence"] for r in records(out)} == {str(cold)}


# -- 2. resume checks the evidence, not its name ------------------------------------------------


def interrupt_scan(img: Path, out: Path, bad: Path, hang_on: str) -> None:
    """Start a scan, wait until it is stuck on ``hang_on`` (a worker sleeps there), SIGINT."""
    env = dict(os.environ, TRIAGE_FAULT_INJECT=f"hang:{hang_on}")
    proc = subprocess.Popen([sys.executable, "-m", "triage", "scan", str(img), "--hashset",
                             str(bad), "--out", str(out), "--workers", "2", "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if (out / "files.jsonl").exists() and (out / "files.jsonl").stat().st_size > 0:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err


@pytest.mark.parametrize("swap", ["same-size", "other-size"])
def test_resume_refuses_other_evidence_at_the_same_path(tmp_path: Path, swap: str) -> None:
    img, truth = make_ext4(tmp_path, "first", 60, seed="first")
    other, _ = make_ext4(tmp_path, "second", 60, seed="second",
                         size_mb=8 if swap == "same-size" else 12)
    bad = hashset(tmp_path, [truth["/d2/f0010.txt"]])
    out = tmp_path / "o"
    interrupt_scan(img, out, bad, "/d3/f0003.txt")
    before = (out / "summary.json").read_bytes()
    ident = summary(out)["evidence_given"][0]["identity"]
    assert ident["size"] == img.stat().st_size and len(ident["samples"]) == 64
    kept = img.with_suffix(".kept")
    img.rename(kept)
    other.rename(img)  # another image, same path

    proc = triage("scan", "--resume", str(out), "-q")
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"evidence {img} is not the one the interrupted run scanned" in line
    if swap == "other-size":
        assert f"size was {8 << 20:,} bytes, now {12 << 20:,}" in line
    else:
        assert "differs" in line
    assert (out / "summary.json").read_bytes() == before  # the run's record is untouched

    img.unlink()
    kept.rename(img)  # the right evidence back: the resume is accepted and finishes
    proc = triage("scan", "--resume", str(out), "-q")
    assert proc.returncode == ExitCode.HITS, proc.stderr
    assert summary(out)["complete"] is True
    assert {r["path"]: r["md5"] for r in records(out)} == truth


# -- 6. --stop-on-first-hit, then --resume finishes ----------------------------------------------


def test_resume_after_stop_on_first_hit_finishes_the_run(tmp_path: Path) -> None:
    img, truth = make_ext4(tmp_path, "hits", 40)
    bad = hashset(tmp_path, [truth["/d0/f0000.txt"], truth["/d1/f0013.txt"],
                             truth["/d2/f0026.txt"], truth["/d3/f0039.txt"]])
    out = tmp_path / "o"
    proc = triage("scan", str(img), "--hashset", str(bad), "--out", str(out),
                  "--stop-on-first-hit", "--workers", "1", "-q")
    assert proc.returncode == ExitCode.HITS, proc.stderr
    s = summary(out)
    assert s["stopped_early"] is True and s["complete"] is False
    assert "--stop-on-first-hit" in s["incomplete_reason"]
    assert s["totals"]["known_bad_files"] < 4

    proc = triage("scan", "--resume", str(out), "-q")  # once: the whole answer
    assert proc.returncode == ExitCode.HITS, proc.stderr
    s = summary(out)
    assert s["complete"] is True and s["stopped_early"] is False
    assert s["resumed_after_early_stop"] is True and s["options"]["stop_on_first_hit"] is True
    assert s["totals"]["known_bad_files"] == 4
    assert {r["path"]: r["md5"] for r in records(out)} == truth


# -- 6. smaller: workers and a dead parent, deterministic texts, a bad MBR entry -----------------


def test_workers_exit_quietly_when_the_main_process_is_killed(tmp_path: Path) -> None:
    img, truth = make_ext4(tmp_path, "w", 30)
    out = tmp_path / "o"
    env = dict(os.environ, TRIAGE_FAULT_INJECT="hang:/d2/f0010.txt")
    proc = subprocess.Popen([sys.executable, "-m", "triage", "scan", str(img), "--out", str(out),
                             "--workers", "2", "-q"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
            (out / "files.jsonl").exists() and (out / "files.jsonl").stat().st_size):
        time.sleep(0.2)
    time.sleep(1.0)  # one worker sleeps in the hang, the other waits for work
    proc.kill()
    # the workers share stderr: it ends only when every one of them has exited
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGKILL
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert summary(out)["complete"] is False


def test_pdq_reasons_hold_no_object_address() -> None:
    from triage.perceptual import compute as pdq

    junk = b"\x89PNG\r\n\x1a\n" + b"not a picture" * 4
    first, again = pdq.compute(junk), pdq.compute(bytes(junk))
    assert first == again and first[0] is None and "0x" not in first[2]

    class Opaque(Exception):
        pass

    e = Opaque(f"cannot read {object()!r} now")  # an address, as Pillow's BytesIO repr had
    assert pdq.reason_text(e) == "cannot read now"


def _mbr(entries: list[tuple[int, int, int]]) -> bytes:
    import struct

    sector = bytearray(512)
    for i, (typ, start, count) in enumerate(entries):
        sector[446 + 16 * i + 4] = typ
        sector[454 + 16 * i: 462 + 16 * i] = struct.pack("<II", start, count)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def test_mbr_entry_past_the_end_does_not_hide_the_readable_partitions(tmp_path: Path) -> None:
    """Primary 1: ext4; primary 2: starts past the end; primary 3: extended, holding one
    logical ext4. TSK (mmls too) refuses the whole table; triage scans both ext4, notes the
    bad entry, exit 4."""
    p1, truth1 = make_ext4(tmp_path, "p1", 5, seed="one", size_mb=4)
    p5, truth5 = make_ext4(tmp_path, "p5", 4, seed="five", size_mb=2)
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(16384 * 512)  # 8 MiB
        fh.write(_mbr([(0x83, 2048, 8192), (0x83, 50_000, 2048), (0x05, 10240, 6144)]))
        fh.seek(10240 * 512)
        fh.write(_mbr([(0x83, 2048, 4096)]))  # EBR: logical partition at 12288, no next EBR
        fh.seek(2048 * 512)
        fh.write(p1.read_bytes())
        fh.seek(12288 * 512)
        fh.write(p5.read_bytes())
    needs_tool("mmls")
    assert subprocess.run(["mmls", str(disk)], capture_output=True).returncode != 0

    out = tmp_path / "o"
    proc = triage("scan", str(disk), "--out", str(out), "-q")
    assert proc.returncode == ExitCode.INCOMPLETE, proc.stderr
    ev = summary(out)["evidence"][0]
    assert ev["volume_system"] == "dos" and "error" not in ev
    vols = {v["offset"]: v for v in ev["volumes"]}
    assert vols[2048 * 512]["status"] == "scanned" and vols[2048 * 512]["fs_type"] == "ext4"
    assert vols[12288 * 512]["status"] == "scanned" and vols[12288 * 512]["fs_type"] == "ext4"
    bad = vols[50_000 * 512]
    assert bad["status"] == "error" and "past the end of the evidence" in bad["error"]
    assert "MBR entry 2" in bad["error"]
    got = {(r["volume_offset"], r["path"]): r["md5"] for r in records(out)}
    want = {(2048 * 512, p): m for p, m in truth1.items()}
    want.update({(12288 * 512, p): m for p, m in truth5.items()})
    assert got == want
