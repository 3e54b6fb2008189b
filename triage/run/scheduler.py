"""The scheduler: opens the evidence and its volumes, keeps every worker busy with directory
slices and file tasks, writes what they finish, journals it, and retries what fails in smaller
pieces until only the directory or file that breaks a worker is left."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from triage.filesystems.allocated import allocated_bytes
from triage.filesystems.backends import VolumeRef
from triage.config import ScanConfig
from triage.run.progress import ProgressSink
from triage.filesystems.discovery import discover
from triage.errors import EvidenceError, ExitCode, HashSetError
from triage.evidence.containers import identify, open_image
from triage.evidence.identity import file_identity, folder_identity, media_identity
from triage.run.journal import Journal
from triage.matching.exact import HashIndex
from triage.run.pool import WorkerPool
from triage.records import FileRecord
from triage.run.report import OutputError
from triage.run.results import Tally, encode_lines, finish_record
from triage.run.spool import SortedSpool
from triage.run.tasks import DirTask, FileTask, MediaTask, TaskResult
from triage.evidence.volumes import Volume, find_volumes, read_at
from triage.filesystems.walk import DirRef, root_dir

FILE_TASK_FILES = 256
FILE_TASK_BYTES = 32 << 20


@dataclass
class VolumeState:
    ref: VolumeRef | None  # None: no file system to scan
    volume: Volume
    root: DirRef | None = None
    tally: Tally = field(default_factory=Tally)


class Scan:
    """One run's mutable state: the evidence opened, the work queues, the counters."""

    def __init__(self, config: ScanConfig, index: HashIndex, algorithms: tuple[str, ...],
                 out: Path, progress: ProgressSink) -> None:
        self.config, self.index, self.algorithms = config, index, algorithms
        self.out, self.progress = out, progress
        self.t0 = time.monotonic()
        self.first_hit: float | None = None
        self.evidence: list[dict[str, Any]] = []
        self.volumes: list[VolumeState] = []
        self.spool = SortedSpool(out, config.order) if config.order != "walk" else None
        self._sorted: Iterator[tuple[int, FileRecord]] | None = None
        self.media: deque[MediaTask] = deque()
        self.dirs: deque[DirTask] = deque()
        self.files: deque[FileTask] = deque()
        self.unopenable = False
        self.lost_dirs = 0
        self.verify_failed = False
        self.abort: list[str] = []  # filled by another thread (a failed index check): stop
        self.outside = Tally()  # internal errors met outside any volume (--verify-image)
        self.inflight: dict[int, MediaTask | DirTask | FileTask] = {}

    # -- evidence and volumes (main process: cheap, and needed for the summary) ---------------

    def open_evidence(self, path: str) -> None:
        entry: dict[str, Any] = {"path": path}
        self.evidence.append(entry)
        try:
            spec = identify(path)
            img = None if spec.format == "logical" else open_image(spec)
        except EvidenceError as e:
            entry["error"] = str(e)
            entry["identity"] = file_identity(path)
            self.unopenable = True
            return
        entry.update(format=spec.format, segments=list(spec.segments), size=spec.size,
                     parent=spec.parent, stored_hashes=spec.stored_hashes)
        if self.config.verify_image and spec.format != "logical":
            entry["verification"] = {"status": "pending"}
            self.media.append(MediaTask(spec, len(self.evidence) - 1))
        if img is None:  # a folder: no volumes, one logical file system found by its prober
            vs_name, volumes = "logical", [Volume(0, 0, "logical folder")]
            entry["identity"] = folder_identity(path)
        else:
            vs_name, volumes = find_volumes(img)
            entry["identity"] = media_identity(lambda o, n: read_at(img, o, n), img.get_size(),
                                               [v.offset for v in volumes], spec.stored_hashes)
        entry["volume_system"] = vs_name
        entry["volume_indexes"] = []
        for n, volume in enumerate(volumes):
            verdict = discover(img, spec, volume)  # the one classification (triage info too)
            volumes[n] = verdict.volume
            if verdict.tsk:
                v = verdict.volume
                self.progress.estimate(allocated_bytes(img, v.offset, verdict.fs) or 0)
                self.add_volume(entry, VolumeRef(spec, v.offset, v.fs_type or "",
                                                 len(self.volumes)), v, root_dir(verdict.fs))
                continue
            for v, f in verdict.entries():
                if f is None or f.status != "scanned":
                    self.add_volume(entry, None, v, None)
                    continue
                self.add_volume(entry, VolumeRef(spec, volume.offset, f.fs_type,
                                                 len(self.volumes), f.kind, f.sub), v, f.root)
        if vs_name == "none" and volumes[0].status == "no-filesystem":
            entry["error"] = f"{path}: no partition table and {volumes[0].error}"
            self.unopenable = True

    def add_volume(self, entry: dict[str, Any], ref: VolumeRef | None, volume: Volume,
                   root: DirRef | None) -> None:
        entry["volume_indexes"].append(len(self.volumes))
        self.volumes.append(VolumeState(ref, volume, root))

    def roots(self) -> list[tuple[int, DirRef, int]]:
        return [(i, vs.root, 0) for i, vs in enumerate(self.volumes) if vs.root is not None]

    def queue_dir(self, volume: int, d: DirRef, start: int = 0, inline: bool = True) -> None:
        """In an ordered run directories are only listed; their files are hashed afterwards,
        in the requested order."""
        self.dirs.append(DirTask(self.volumes[volume].ref, d, start, inline and self.spool is None,
                                 self.config.order == "physical"))

    def defer(self, volume: int, records: list[FileRecord]) -> None:
        if self.spool is None or self._sorted is not None:  # unordered, or already draining
            self.queue_files(volume, records)
            return
        for r in records:
            self.spool.add(volume, r)

    def refill(self, listing_done: bool, want: int) -> bool:
        """Ordered run: once every directory is listed, feed file tasks in sorted order, a few
        at a time. Returns True while sorted records remain."""
        if self.spool is None or not listing_done:
            return self.spool is not None and self.spool.count > 0
        if self._sorted is None:
            self._sorted = iter(self.spool)
        while len(self.files) < want:
            batch: list[FileRecord] = []
            volume = -1
            for v, record in self._sorted:
                if batch and (v != volume or len(batch) >= FILE_TASK_FILES):
                    self.queue_files(volume, batch)
                    batch = []
                volume = v
                batch.append(record)
                if len(batch) >= FILE_TASK_FILES:
                    break
            if not batch:
                self.spool.count = 0
                return False
            self.queue_files(volume, batch)
        return True

    def queue_files(self, volume: int, records: list[FileRecord]) -> None:
        """Group handed-on files into tasks: one per large file, small ones together."""
        ref = self.volumes[volume].ref
        batch: list[FileRecord] = []
        size = 0
        for r in records:
            if r.size and r.size > FILE_TASK_BYTES:
                self.files.append(FileTask(ref, [r]))
                continue
            batch.append(r)
            size += r.size or 0
            if len(batch) >= FILE_TASK_FILES or size >= FILE_TASK_BYTES:
                self.files.append(FileTask(ref, batch))
                batch, size = [], 0
        if batch:
            self.files.append(FileTask(ref, batch))

    # -- results ------------------------------------------------------------------------------

    def account(self, volume: int, tally: Tally, listed: bool = True) -> None:
        vs = self.volumes[volume]
        vs.tally.add(tally)
        if listed:
            self.progress.add_total(tally.listed_bytes)
        self.progress.advance(tally.bytes_hashed, tally.files)
        if tally.known_bad_files and self.first_hit is None:
            self.first_hit = time.monotonic() - self.t0
        if tally.known_bad_files and self.config.stop_on_first_hit:
            raise StopEarly

    def notes(self, volume: int, notes: list[str]) -> None:
        v = self.volumes[volume].volume
        if notes:
            v.status = "incomplete"
            v.notes.extend(n for n in notes if len(v.notes) < 100)

    def finish_failed(self, volume: int, records: list[FileRecord], reason: str,
                      internal: bool = False) -> tuple[bytes, Tally]:
        """Records whose worker crashed or hung: written with the reason, never dropped; an
        internal cause (a defect) is also counted as such."""
        tally = Tally()
        lines = []
        for r in records:
            r.hashes, r.error = {}, f"not read: {reason}"
            if internal:
                tally.internal(r.path, reason)
            lines.append(finish_record(r, self.index, self.algorithms, tally))
        return encode_lines(lines), tally

    def verified(self, task: MediaTask, hashes: dict[str, str] | None, error: str | None) -> None:
        """Compare the media hash with the acquisition hash stored in the container."""
        stored = task.evidence.stored_hashes
        result: dict[str, Any] = {"computed": hashes, "stored": stored, "error": error}
        if hashes is None:
            result["status"] = "error"
        elif not stored:
            result["status"] = "no stored hash"
        elif all(hashes.get(a) == v for a, v in stored.items() if a in hashes):
            result["status"] = "verified"
        else:
            result["status"] = "mismatch"
        if result["status"] in ("error", "mismatch"):
            self.verify_failed = True
        self.evidence[task.index]["verification"] = result

    # -- summary ------------------------------------------------------------------------------

    def unfinished(self) -> set[int]:
        """Volumes with work queued or running: after --stop-on-first-hit, not fully examined.
        Files waiting in an ordered run's spool may belong to any volume with a file system."""
        left = {t.volume.index for t in (*self.dirs, *self.files, *self.inflight.values())
                if not isinstance(t, MediaTask)}
        if self.spool is not None and self.spool.count:
            left |= {i for i, vs in enumerate(self.volumes) if vs.ref is not None}
        return left

    def mark_stopped(self, why: str = "the scan stopped at the first known-bad file "
                                      "(--stop-on-first-hit)") -> None:
        """Say of every volume the stop left unfinished that it was not fully examined: a
        partly listed volume must never read as "scanned"."""
        for i in sorted(self.unfinished()):
            v = self.volumes[i].volume
            if v.status in ("scanned", "incomplete"):
                v.status = "stopped"
            v.notes.append(f"not fully examined: {why}; triage scan --resume finishes it")

    def total(self) -> Tally:
        t = Tally()
        t.add(self.outside)
        for vs in self.volumes:
            t.add(vs.tally)
        return t

    def exit_code(self, total: Tally) -> ExitCode:
        if total.known_bad_files:
            return ExitCode.HITS
        if self.unopenable:
            return ExitCode.EVIDENCE
        if total.errors_allocated or total.internal_errors or total.perceptual_limited or \
                self.lost_dirs or \
                self.verify_failed or any(
                vs.volume.unreadable for vs in self.volumes):
            return ExitCode.INCOMPLETE
        return ExitCode.OK

    def evidence_summary(self) -> list[dict[str, Any]]:
        out = []
        for entry in self.evidence:
            e = {k: v for k, v in entry.items() if k not in ("volume_indexes", "identity")}
            if "volume_indexes" in entry:
                e["volumes"] = []
                for i in entry["volume_indexes"]:
                    vs = self.volumes[i]
                    vs.volume.files, vs.volume.errors = vs.tally.files, vs.tally.errors
                    e["volumes"].append(vs.volume.to_dict())
            out.append(e)
        return out


class StopEarly(Exception):
    """--stop-on-first-hit: a known-bad file was found; the answer is yes."""


class Writer:
    """files.jsonl in binary append mode: whole task blobs, so no half line survives a stop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.side: Writer | None = None  # vpdq.jsonl (--vpdq): written before, synced with
        try:
            self._fh = open(path, "ab")
        except OSError as e:
            raise OutputError(f"{path}: cannot write ({e.strerror})") from None

    def write(self, data: bytes) -> int:
        good = self._fh.tell()
        try:
            if data:
                self._fh.write(data)
                self._fh.flush()
            return self._fh.tell()
        except OSError as e:
            self._cut(good)
            raise OutputError(f"{self.path}: write failed ({e.strerror})") from None

    def _cut(self, size: int) -> None:
        """Drop a partly written blob (disk full): what stays on disk must be whole lines."""
        try:
            self._fh.close()
        except OSError:
            pass  # its buffer could not be flushed: that is the part being dropped
        try:
            self._fh = open(self.path, "r+b")  # the buffered handle is unusable after ENOSPC
            self._fh.truncate(size)
            self._fh.seek(size)
        except OSError:
            pass

    def sync(self) -> None:
        """Durable before the run may say complete."""
        if self.side is not None:
            self.side.sync()
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as e:
            raise OutputError(f"{self.path}: cannot sync ({e.strerror})") from None

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
        try:
            self._fh.close()
        except OSError:
            pass


def schedule(scan: Scan, pool: WorkerPool, writer: Writer, journal: Journal) -> None:
    """Keep every worker busy until the queues are empty; file tasks first (they hold records)."""
    inflight = scan.inflight  # kept on the scan: after a stop it tells what was left undone
    next_id = 0
    cfg = scan.config
    told = False
    while True:
        if scan.abort:
            raise HashSetError(scan.abort[0])
        listing = any(isinstance(t, DirTask) for t in inflight.values()) or bool(scan.dirs)
        if not listing and not told:
            scan.progress.listing_done()
            told = True
        more_sorted = scan.refill(not listing, 2 * pool.size)
        if not (scan.media or scan.dirs or scan.files or inflight or more_sorted):
            break
        while pool.idle() and (scan.media or scan.files or scan.dirs):
            queue = scan.media or scan.files or scan.dirs
            task = queue.popleft()
            kind = {MediaTask: "media", FileTask: "files", DirTask: "dir"}[type(task)]
            timeout = cfg.fs_timeout if kind == "dir" else cfg.read_timeout
            pool.submit(next_id, kind, task, timeout)
            inflight[next_id] = task
            next_id += 1
        for event in pool.poll(0.5):
            task = inflight.pop(event.task_id)
            if isinstance(task, MediaTask):
                scan.verified(task, event.payload if event.kind == "done" else None,
                              None if event.kind == "done" else str(event.payload))
                if event.internal:
                    scan.outside.internal(f"--verify-image of {task.evidence.path}",
                                          str(event.payload))
            elif event.kind == "done":
                _done(scan, task, event.payload, writer, journal)
            else:
                _failed(scan, task, str(event.payload), writer, journal, event.internal)


def _done(scan: Scan, task: DirTask | FileTask, result: TaskResult, writer: Writer,
          journal: Journal) -> None:
    v = task.volume.index
    if result.vpdq and writer.side is not None:  # frames durable no later than their record
        writer.side.write(result.vpdq)
    end = writer.write(result.lines)
    if isinstance(task, FileTask):
        journal.files_done(v, task.records, end, result.tally)
        scan.account(v, result.tally, listed=False)
        return
    notes = list(result.errors)
    if result.orphans_truncated:
        notes.append(f"orphan files truncated at --max-orphans {scan.config.max_orphans}")
    journal.dir_done(v, task.dir, task.start, end, result.subdirs, result.more, result.deferred,
                     result.tally, notes)
    scan.notes(v, notes)
    for d in result.subdirs:  # a retry's list-only mode was for that directory alone
        scan.queue_dir(v, d)
    if result.more is not None:
        scan.queue_dir(v, task.dir, result.more, task.hash_inline)
    scan.defer(v, result.deferred)
    scan.account(v, result.tally)  # last: a stop at a hit leaves what it found queued


def _failed(scan: Scan, task: DirTask | FileTask, reason: str, writer: Writer,
            journal: Journal, internal: bool = False) -> None:
    """Retry smaller until the one thing that fails is isolated, then record it (an internal
    cause is counted once, for that one thing)."""
    v = task.volume.index
    if isinstance(task, DirTask):
        if task.hash_inline:
            scan.dirs.appendleft(replace(task, hash_inline=False))
            return
        scan.lost_dirs += 1
        note = f"directory {task.dir.path or '/'} could not be listed: {reason}"
        tally = Tally()
        if internal:
            tally.internal(f"directory {task.dir.path or '/'}", reason)
        journal.dir_done(v, task.dir, task.start, writer.write(b""), [], None, [], tally, [note])
        scan.account(v, tally)
        scan.notes(v, [note])
        return
    if len(task.records) > 1:
        for r in task.records:
            scan.files.appendleft(FileTask(task.volume, [r]))
        return
    data, tally = scan.finish_failed(v, task.records, reason, internal)
    journal.files_done(v, task.records, writer.write(data), tally)
    scan.account(v, tally, listed=False)
