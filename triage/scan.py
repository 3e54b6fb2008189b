"""The scan pipeline: evidence -> volumes -> walk -> hashing -> matching -> reports.

``run_scan`` is the library API; the CLI is a thin layer over it. The main process opens the
evidence and its volumes, then schedules work on isolated worker processes: each directory
slice is listed, hashed, matched and encoded inside a worker, so the main process only writes
finished lines, journals what finished, and counts. Nothing is kept per file, so memory does
not grow with the number of files.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytsk3

import triage
from triage.categories import KNOWN_BAD, KNOWN_GOOD
from triage.errors import EvidenceError, ExitCode, TriageError, UsageError
from triage.evidence import display_name, identify, open_image
from triage.journal import Journal, dir_key, replay, truncate
from triage.matching import HashIndex
from triage.pool import WorkerPool
from triage.records import ALGORITHMS, DEFAULT_ALGORITHMS, SCHEMA_VERSION, FileRecord, utc_now
from triage.report import OutputError, prepare_out_dir, write_json_atomic
from triage.spool import SortedSpool
from triage.reports import FORMAT_FILES, parse_formats, render_all
from triage.results import Tally, encode_lines, finish_record
from triage.backends import VolumeRef, probe
from triage.tasks import (TASKS, DirTask, FileTask, MediaTask, TaskResult, WorkerInit,
                          WorkerState)
from triage.volumes import Volume, find_volumes, open_fs
from triage.walk import DirRef, WalkOptions, root_dir

ORDERS = ("walk", "smallest", "physical", "pictures-first")
FILE_TASK_FILES = 256
FILE_TASK_BYTES = 32 << 20


@dataclass
class ScanConfig:
    evidence: list[str]
    hashsets: list[str] = field(default_factory=list)
    known_good: list[str] = field(default_factory=list)
    out: Path | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    workers: int = os.cpu_count() or 1
    force: bool = False
    resume: bool = False
    lenient: bool = False
    include_orphans: bool = True
    max_orphans: int = 1_000_000
    verify_image: bool = False  # also hash the whole media and compare with the stored hash
    order: str = "walk"  # walk | smallest | physical | pictures-first
    formats: str | None = None  # derived reports (csv, html, dfxml); None = all
    stop_on_first_hit: bool = False
    fs_timeout: float = 300.0  # seconds without progress listing a directory
    read_timeout: float = 120.0  # seconds without progress reading one file
    case: str | None = None  # free-text provenance, recorded in every output
    examiner: str | None = None
    exhibit: str | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


class ProgressSink:
    """Receives progress; the CLI passes a terminal bar, a lab script may pass its own."""

    def add_total(self, nbytes: int) -> None: ...

    def advance(self, nbytes: int, files: int = 1) -> None: ...

    def status(self, text: str) -> None: ...


@dataclass
class ScanOutcome:
    out: Path
    summary: dict[str, Any]
    exit_code: ExitCode


def parse_algorithms(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    algs = [a.strip().lower().replace("-", "") for a in items if a.strip()]
    unknown = [a for a in algs if a not in ALGORITHMS]
    if unknown or not algs:
        raise UsageError(f"--algorithms: unknown algorithm {', '.join(unknown) or '(none)'}; "
                         f"choose from {','.join(ALGORITHMS)}")
    return tuple(a for a in ALGORITHMS if a in algs)


def default_out_dir(evidence: list[str]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path(f"triage-{display_name(evidence[0]) if evidence else 'scan'}-{stamp}")


def tool_versions() -> dict[str, str]:
    import pyewf

    from triage import ewf_native

    return {
        "name": "triage", "version": triage.__version__,
        "pytsk3": pytsk3.get_version(), "tsk": pytsk3.TSK_VERSION_STR,
        "libewf": ewf_native.version() if ewf_native.available() else pyewf.get_version(),
        "python": platform.python_version(),
    }


def load_sets(config: ScanConfig):
    from triage.hashsets import load_hashset

    sets = [load_hashset(p, kind=KNOWN_BAD, lenient=config.lenient) for p in config.hashsets]
    sets += [load_hashset(p, kind=KNOWN_GOOD, lenient=config.lenient) for p in config.known_good]
    return sets


def _set_summary(s) -> dict[str, Any]:
    return {"name": s.name, "path": s.path, "kind": s.kind, "format": s.format,
            "sha256": s.sha256, "entries": s.entries, "algorithms": s.algorithms,
            "skipped_lines": s.skipped, "dropped_empty": s.dropped_empty,
            "conflicts": s.conflicts}


@dataclass
class _VolumeState:
    ref: VolumeRef | None  # None: no file system to scan
    volume: Volume
    root: DirRef | None = None
    tally: Tally = field(default_factory=Tally)


class _Scan:
    """One run's mutable state: the evidence opened, the work queues, the counters."""

    def __init__(self, config: ScanConfig, index: HashIndex, algorithms: tuple[str, ...],
                 out: Path, progress: ProgressSink) -> None:
        self.config, self.index, self.algorithms = config, index, algorithms
        self.out, self.progress = out, progress
        self.t0 = time.monotonic()
        self.first_hit: float | None = None
        self.evidence: list[dict[str, Any]] = []
        self.volumes: list[_VolumeState] = []
        self.spool = SortedSpool(out, config.order) if config.order != "walk" else None
        self._sorted: Iterator[tuple[int, FileRecord]] | None = None
        self.media: deque[MediaTask] = deque()
        self.dirs: deque[DirTask] = deque()
        self.files: deque[FileTask] = deque()
        self.unopenable = False
        self.lost_dirs = 0
        self.verify_failed = False

    # -- evidence and volumes (main process: cheap, and needed for the summary) ---------------

    def open_evidence(self, path: str) -> None:
        entry: dict[str, Any] = {"path": path}
        self.evidence.append(entry)
        try:
            spec = identify(path)
            img = None if spec.format == "logical" else open_image(spec)
        except EvidenceError as e:
            entry["error"] = str(e)
            self.unopenable = True
            return
        entry.update(format=spec.format, segments=list(spec.segments), size=spec.size,
                     parent=spec.parent, stored_hashes=spec.stored_hashes)
        if self.config.verify_image and spec.format != "logical":
            entry["verification"] = {"status": "pending"}
            self.media.append(MediaTask(spec, len(self.evidence) - 1))
        if img is None:  # a folder: no volumes, one logical file system found by its prober
            vs_name, volumes = "logical", [Volume(0, 0, "logical folder")]
        else:
            vs_name, volumes = find_volumes(img)
        entry["volume_system"] = vs_name
        entry["volume_indexes"] = []
        for volume in volumes:
            fs = open_fs(img, volume) if img is not None else None
            if fs is not None:
                self.add_volume(entry, VolumeRef(spec, volume.offset, volume.fs_type or "",
                                                 len(self.volumes)), volume, root_dir(fs))
                continue
            found = probe(img, spec, volume)
            for f in found:
                v = replace(volume, fs_type=f.fs_type, description=f.description,
                            status=f.status, error=f.error, notes=[])
                if f.status != "scanned":
                    self.add_volume(entry, None, v, None)
                    continue
                self.add_volume(entry, VolumeRef(spec, volume.offset, f.fs_type,
                                                 len(self.volumes), f.kind, f.sub), v, f.root)
            if not found:
                self.add_volume(entry, None, volume, None)
        if vs_name == "none" and volumes[0].status == "no-filesystem":
            entry["error"] = f"{path}: no partition table and {volumes[0].error}"
            self.unopenable = True

    def add_volume(self, entry: dict[str, Any], ref: VolumeRef | None, volume: Volume,
                   root: DirRef | None) -> None:
        entry["volume_indexes"].append(len(self.volumes))
        self.volumes.append(_VolumeState(ref, volume, root))

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
            raise _StopEarly

    def notes(self, volume: int, notes: list[str]) -> None:
        v = self.volumes[volume].volume
        if notes:
            v.status = "incomplete"
            v.notes.extend(n for n in notes if len(v.notes) < 100)

    def finish_failed(self, volume: int, records: list[FileRecord], reason: str) -> tuple[bytes, Tally]:
        """Records whose worker crashed or hung: written with the reason, never dropped."""
        tally = Tally()
        lines = []
        for r in records:
            r.hashes, r.error = {}, f"not read: {reason}"
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

    def total(self) -> Tally:
        t = Tally()
        for vs in self.volumes:
            t.add(vs.tally)
        return t

    def exit_code(self, total: Tally) -> ExitCode:
        if total.known_bad_files:
            return ExitCode.HITS
        if self.unopenable:
            return ExitCode.EVIDENCE
        if total.errors_allocated or self.lost_dirs or self.verify_failed or any(
                vs.volume.unreadable for vs in self.volumes):
            return ExitCode.INCOMPLETE
        return ExitCode.OK

    def evidence_summary(self) -> list[dict[str, Any]]:
        out = []
        for entry in self.evidence:
            e = {k: v for k, v in entry.items() if k != "volume_indexes"}
            if "volume_indexes" in entry:
                e["volumes"] = []
                for i in entry["volume_indexes"]:
                    vs = self.volumes[i]
                    vs.volume.files, vs.volume.errors = vs.tally.files, vs.tally.errors
                    e["volumes"].append(vs.volume.to_dict())
            out.append(e)
        return out


class _StopEarly(Exception):
    """--stop-on-first-hit: a known-bad file was found; the answer is yes."""


class _Writer:
    """files.jsonl in binary append mode: whole task blobs, so no half line survives a stop."""

    def __init__(self, path: Path) -> None:
        self.path = path
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

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass


def _schedule(scan: _Scan, pool: WorkerPool, writer: _Writer, journal: Journal) -> None:
    """Keep every worker busy until the queues are empty; file tasks first (they hold records)."""
    inflight: dict[int, MediaTask | DirTask | FileTask] = {}
    next_id = 0
    cfg = scan.config
    while True:
        listing = any(isinstance(t, DirTask) for t in inflight.values()) or bool(scan.dirs)
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
            elif event.kind == "done":
                _done(scan, task, event.payload, writer, journal)
            else:
                _failed(scan, task, str(event.payload), writer, journal)


def _done(scan: _Scan, task: DirTask | FileTask, result: TaskResult, writer: _Writer,
          journal: Journal) -> None:
    v = task.volume.index
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
    scan.account(v, result.tally)
    scan.notes(v, notes)
    for d in result.subdirs:
        scan.queue_dir(v, d, 0, task.hash_inline)
    if result.more is not None:
        scan.queue_dir(v, task.dir, result.more, task.hash_inline)
    scan.defer(v, result.deferred)


def _failed(scan: _Scan, task: DirTask | FileTask, reason: str, writer: _Writer,
            journal: Journal) -> None:
    """Retry smaller until the one thing that fails is isolated, then record it."""
    v = task.volume.index
    if isinstance(task, DirTask):
        if task.hash_inline:
            scan.dirs.appendleft(replace(task, hash_inline=False))
            return
        scan.lost_dirs += 1
        note = f"directory {task.dir.path or '/'} could not be listed: {reason}"
        journal.dir_done(v, task.dir, task.start, writer.write(b""), [], None, [], Tally(), [note])
        scan.notes(v, [note])
        return
    if len(task.records) > 1:
        for r in task.records:
            scan.files.appendleft(FileTask(task.volume, [r]))
        return
    data, tally = scan.finish_failed(v, task.records, reason)
    journal.files_done(v, task.records, writer.write(data), tally)
    scan.account(v, tally, listed=False)


def resume_config(out: Path, **overrides: Any) -> ScanConfig:
    """The configuration of an interrupted run, read from its summary.json, so that
    ``triage scan --resume DIR`` needs nothing retyped."""
    try:
        previous = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        opts = previous["options"]
        config = ScanConfig(
            evidence=[e["path"] for e in previous["evidence_given"]],
            hashsets=[h["path"] for h in previous["hashsets"] if h["kind"] == KNOWN_BAD],
            known_good=[h["path"] for h in previous["hashsets"] if h["kind"] == KNOWN_GOOD],
            out=out, algorithms=tuple(opts["algorithms"]), workers=opts["workers"],
            resume=True, lenient=opts["lenient"], include_orphans=opts["include_orphans"],
            max_orphans=opts["max_orphans"], fs_timeout=opts["fs_timeout"],
            verify_image=opts["verify_image"], order=opts["order"],
            stop_on_first_hit=opts["stop_on_first_hit"], formats=opts["formats"],
            read_timeout=opts["read_timeout"], case=previous["case"]["case"],
            examiner=previous["case"]["examiner"], exhibit=previous["case"]["exhibit"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"--resume {out}: no readable summary.json of a triage run") from None
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _render(out: Path, formats: list[str], failing: bool) -> None:
    """Reports, for partial runs too (marked as such). When the scan is already failing (disk
    full, say) a report error must not hide that first error."""
    try:
        render_all(out, formats)
    except (TriageError, OSError) as e:
        if not failing:
            raise OutputError(f"reports not written: {e}") from None


def _check_resume(out: Path, config: ScanConfig, sets, algorithms: tuple[str, ...]) -> dict:
    try:
        previous = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"--resume {out}: no readable summary.json, not a triage run") from None
    if previous.get("complete"):
        raise UsageError(f"--resume {out}: that run is already complete")
    before = [e["path"] for e in previous.get("evidence_given", [])]
    if before != list(config.evidence):
        raise UsageError(f"--resume {out}: evidence differs from the interrupted run ({before})")
    if [h["sha256"] for h in previous.get("hashsets", [])] != [s.sha256 for s in sets]:
        raise UsageError(f"--resume {out}: hash sets differ from the interrupted run")
    if previous.get("options", {}).get("algorithms") != list(algorithms):
        raise UsageError(f"--resume {out}: algorithms differ from the interrupted run")
    return previous


def run_scan(config: ScanConfig, progress: ProgressSink | None = None) -> ScanOutcome:
    """Scan every piece of evidence in ``config``; write files.jsonl and summary.json."""
    progress = progress or ProgressSink()
    if not config.evidence:
        raise UsageError("no evidence given")
    if config.workers < 1:
        raise UsageError("--workers must be at least 1")
    if config.order not in ORDERS:
        raise UsageError(f"--order must be one of {', '.join(ORDERS)}")
    formats = parse_formats(config.formats)
    missing = [p for p in config.evidence if not os.path.lexists(p)]
    if missing:
        raise UsageError(f"evidence {missing[0]}: no such file or device")
    algorithms = parse_algorithms(config.algorithms)
    sets = load_sets(config)
    index = HashIndex(sets)
    # never miss a match because a set uses an algorithm that was not asked for
    algorithms = tuple(a for a in ALGORITHMS if a in set(algorithms) | index.algorithms)
    if config.resume:
        if config.out is None:
            raise UsageError("--resume needs the folder of the interrupted run")
        out = config.out
        previous = _check_resume(out, config, sets, algorithms)
    else:
        out = config.out or default_out_dir(config.evidence)
        prepare_out_dir(out, config.force, config.evidence)
        previous = None

    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "complete": False, "tool": tool_versions(),
        "case": {"case": config.case, "examiner": config.examiner, "exhibit": config.exhibit},
        "host": socket.gethostname(), "command": config.argv,
        "started": previous["started"] if previous else utc_now(), "finished": None,
        "resumed": (previous.get("resumed", []) + [utc_now()]) if previous else [],
        "evidence_given": [{"path": p} for p in config.evidence],
        "options": {"algorithms": list(algorithms), "workers": config.workers,
                    "include_orphans": config.include_orphans,
                    "max_orphans": config.max_orphans, "lenient": config.lenient,
                    "fs_timeout": config.fs_timeout, "read_timeout": config.read_timeout,
                    "verify_image": config.verify_image, "order": config.order,
                    "stop_on_first_hit": config.stop_on_first_hit, "formats": config.formats},
        "hashsets": [_set_summary(s) for s in sets],
    }
    write_json_atomic(out / "summary.json", summary)

    scan = _Scan(config, index, algorithms, out, progress)
    for path in config.evidence:
        progress.status(f"opening {display_name(path)}")
        scan.open_evidence(path)
    if not config.resume:
        (out / "files.jsonl").write_bytes(b"")
        for v, d, start in scan.roots():
            scan.queue_dir(v, d, start)
    else:
        done = replay(out)
        truncate(out / "files.jsonl", done.end)
        for v, tally in done.tallies.items():
            scan.volumes[v].tally.add(tally)
            progress.add_total(tally.listed_bytes)
            progress.advance(tally.bytes_hashed, tally.files)
        for v, notes in done.notes.items():
            scan.notes(v, notes)
        for v, d, start in scan.roots() + done.pending_dirs():
            if dir_key(v, d, start) not in done.done_dirs:
                scan.queue_dir(v, d, start)
        for v, record in done.pending_files():
            scan.defer(v, [record])

    writer = _Writer(out / "files.jsonl")
    journal = Journal(out, append=config.resume)
    init = WorkerInit(algorithms, sets, WalkOptions(config.include_orphans, config.max_orphans))
    pool = WorkerPool(config.workers, WorkerState, init, TASKS)
    interrupted = stopped_early = False
    progress.status("scanning")
    try:
        _schedule(scan, pool, writer, journal)
        pool.close()
    except KeyboardInterrupt:
        interrupted = True
        pool.kill()
    except _StopEarly:
        stopped_early = True
        pool.kill()
    except BaseException:
        pool.kill()
        raise
    finally:
        writer.close()
        journal.close()
        if scan.spool is not None:
            scan.spool.close()
        total = scan.total()
        code = ExitCode.INTERRUPTED if interrupted else scan.exit_code(total)
        summary.update(
            reports=[str(out / FORMAT_FILES[f]) for f in formats],
            complete=not (interrupted or stopped_early),
            interrupted=interrupted,
            stopped_early=stopped_early,
            finished=utc_now(),
            elapsed_seconds=round(time.monotonic() - scan.t0, 3),
            evidence=scan.evidence_summary(),
            totals=total.totals(),
            categories=dict(sorted(total.categories.items())),
            first_hit_seconds=None if scan.first_hit is None else round(scan.first_hit, 3),
            exit_code=int(code),
        )
        write_json_atomic(out / "summary.json", summary)
        _render(out, formats, failing=sys.exc_info()[1] is not None)
    if interrupted:
        raise KeyboardInterrupt
    return ScanOutcome(out, summary, code)
