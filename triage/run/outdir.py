"""The output folder of a run: one scan at a time, only the tool's own names touched, and
"complete" written last.

A run folder is locked with ``flock`` for as long as a scan (or ``triage report``) writes into
it: the kernel drops the lock when the holder dies, so a stale lock from a killed process never
needs clearing by hand. ``--force`` and resume remove only names this tool writes, never a file
the examiner put there. ``finish`` is the one place a run becomes ``"complete": true``: after
every record and every report is on disk (fsync), never before.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from triage.errors import TriageError, UsageError
from triage.run.journal import JOURNAL
from triage.run.report import OutputError, write_json_atomic
from triage.reports import FORMAT_FILES, render_all

LOCK = ".triage.lock"
SUMMARY = "summary.json"
FILES = "files.jsonl"
# Everything a run writes, under these exact names (the lock file goes when its run ends).
OUTPUTS = (FILES, SUMMARY, JOURNAL, ".pdq-index", ".vpdq-index", "vpdq.jsonl",
           *FORMAT_FILES.values())
# Leftovers of a run killed mid-write: temporary files of an atomic replace, DFXML halves,
# the external sort of --order.
_TMP_NAME = re.compile("|".join(rf"\.{re.escape(n)}\.(tmp|part\d+)" for n in OUTPUTS))
_SORT_DIR = re.compile(r"\.triage-sort-[A-Za-z0-9_]+")  # tempfile.mkdtemp(prefix=...)

RENDERED_NOT = "reports not yet rendered"  # every record is written: only the reports are missing
RENDERING = f"{RENDERED_NOT} (killed while rendering?): --resume or triage report finishes the run"


def only_reports_missing(summary: dict[str, Any]) -> bool:
    """A run whose records are all written and synced but whose reports are not."""
    return (summary.get("complete") is False
            and str(summary.get("incomplete_reason") or "").startswith(RENDERED_NOT))


class FolderLock:
    """An exclusive ``flock`` on ``DIR/.triage.lock``, held until ``release`` (or death).

    The file exists only while a run holds it (or after a crash, when the kernel has already
    dropped the lock). Whoever unlinks it holds the lock, and a locker checks that the file it
    locked is still the one at the path, so an unlink never lets two runs in."""

    def __init__(self, out: Path, what: str = "scan") -> None:
        self.path = out / LOCK
        self._fd: int | None = None
        while self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise OutputError(f"{out}: cannot create {LOCK} ({e.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_holder(fd)
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OutputError(f"{out}: cannot lock {LOCK} ({e.strerror})") from None
                raise UsageError(f"{out}: another triage run is writing into this folder"
                                 f"{f' ({holder})' if holder else ''}; one folder, one scan"
                                 ) from None
            if _same_file(fd, self.path):
                self._fd = fd
            else:  # unlinked by the run that held it before us: lock the new one
                os.close(fd)
        try:  # who holds it, for the message another run prints; best effort (disk full)
            os.ftruncate(self._fd, 0)
            text = (f"{what} pid {os.getpid()} on {socket.gethostname()} since "
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
            os.pwrite(self._fd, text.encode("utf-8", "backslashreplace"), 0)
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is not None:
            try:
                if _same_file(self._fd, self.path):
                    self.path.unlink()
            except OSError:
                pass  # a lock file left behind is harmless: its flock dies with us
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def claim(out: Path, force: bool, evidence: Iterable[str] = ()) -> FolderLock:
    """Create and lock the output folder of a new scan. Emptiness is checked under the lock,
    so two scans started together cannot both find it empty; an existing non-empty folder is
    refused unless ``force`` (then the earlier run's outputs go); one inside a folder given as
    evidence always (the scan would read its own output)."""
    resolved = out.resolve()
    for e in evidence:
        if os.path.isdir(e) and resolved.is_relative_to(Path(e).resolve()):
            raise UsageError(f"--out {out}: inside the evidence folder {e}; choose another place")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"--out {out}: cannot create ({e.strerror})") from None
    lock = FolderLock(out)
    try:
        if not is_empty(out):
            if not force:
                raise UsageError(f"--out {out}: folder exists and is not empty "
                                 "(use --force to reuse it)")
            remove_previous_run(out)
    except BaseException:
        lock.release()
        raise
    return lock


def is_empty(out: Path) -> bool:
    """Empty but for our lock file (left by a run that died before writing anything)."""
    return all(p.name == LOCK for p in out.iterdir())


def remove_leftovers(out: Path) -> None:
    """Temporary files and sort runs of a run killed mid-write: never part of a result."""
    for p in out.iterdir():
        name = p.name
        if p.is_dir() and not p.is_symlink() and _SORT_DIR.fullmatch(name):
            shutil.rmtree(p, ignore_errors=True)
        elif _TMP_NAME.fullmatch(name) and not p.is_dir():
            p.unlink(missing_ok=True)


def remove_previous_run(out: Path) -> None:
    """``--force``: everything an earlier run wrote, by the tool's own names only. Whatever
    this run writes is rewritten anyway; what it does not (an old hits.csv when --formats
    differs) must not sit beside the new results. Any other file is the examiner's: kept."""
    try:
        remove_leftovers(out)
        for name in OUTPUTS:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    except OSError as e:
        raise OutputError(f"--force {out}: cannot remove the earlier run's "
                          f"{getattr(e, 'filename', '') or 'files'} ({e.strerror})") from None


def sync_files(paths: Iterable[Path]) -> None:
    """fsync each file and the folder: "complete" must not survive a power cut alone."""
    dirs = set()
    try:
        for p in paths:
            if not p.exists():
                continue
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            dirs.add(p.parent)
        for d in dirs:
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as e:
        raise OutputError(f"{e.filename or 'output'}: cannot sync ({e.strerror})") from None


def finish(out: Path, summary: dict[str, Any], formats: list[str]) -> dict[str, Any]:
    """Render the reports as of the finished run, sync them, then (last) write summary.json
    with ``complete: true``. Any failure leaves summary.json saying incomplete, why."""
    final = dict(summary, complete=True, incomplete_reason=None)
    try:
        paths = render_all(out, formats, summary=final)
    except (TriageError, OSError) as e:
        try:  # say why, if the summary can still be written
            write_json_atomic(out / SUMMARY, dict(summary, incomplete_reason=(
                f"{RENDERED_NOT}: {e}; free space, then --resume or triage report finishes "
                "the run")))
        except OutputError:
            pass
        raise OutputError(f"reports not written: {e}") from None
    sync_files([out / FILES, out / JOURNAL, *paths])
    write_json_atomic(out / SUMMARY, final)
    sync_files([out / SUMMARY])
    return final
