"""The scan pipeline: evidence -> volumes -> walk -> hashing pool -> matching -> reports.

``run_scan`` is the library API; the CLI is a thin layer over it. Records stream through: the
walk yields them, content jobs go to the worker pool in bounded batches, finished records are
matched and written at once, and only the records whose hashes are in flight stay in memory.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytsk3

import triage
from triage.categories import KNOWN_BAD, KNOWN_GOOD, is_known_bad
from triage.errors import EvidenceError, ExitCode, UsageError
from triage.evidence import EvidenceSpec, display_name, identify, open_image
from triage.hashing import BATCH_BYTES, BATCH_FILES, HashPool, Job, Result, empty_hashes
from triage.matching import HashIndex
from triage.records import ALGORITHMS, DEFAULT_ALGORITHMS, SCHEMA_VERSION, FileRecord, utc_now
from triage.report import JsonlWriter, prepare_out_dir, write_json_atomic
from triage.volumes import Volume, find_volumes, open_fs
from triage.walk import WalkOptions, WalkStats, walk_volume


@dataclass
class ScanConfig:
    evidence: list[str]
    hashsets: list[str] = field(default_factory=list)
    known_good: list[str] = field(default_factory=list)
    out: Path | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    workers: int = os.cpu_count() or 1
    force: bool = False
    lenient: bool = False
    include_orphans: bool = True
    max_orphans: int = 1_000_000
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

    return {
        "name": "triage", "version": triage.__version__,
        "pytsk3": pytsk3.get_version(), "tsk": pytsk3.TSK_VERSION_STR,
        "libewf": pyewf.get_version(), "python": platform.python_version(),
    }


def load_sets(config: ScanConfig):
    from triage.hashsets import load_hashset

    sets = [load_hashset(p, kind=KNOWN_BAD, lenient=config.lenient) for p in config.hashsets]
    sets += [load_hashset(p, kind=KNOWN_GOOD, lenient=config.lenient) for p in config.known_good]
    return sets


class _Run:
    """Mutable state of one scan: counters, in-flight records, the summary being built."""

    def __init__(self, config: ScanConfig, index: HashIndex, algorithms: tuple[str, ...],
                 writer: JsonlWriter, progress: ProgressSink) -> None:
        self.config, self.index, self.algorithms = config, index, algorithms
        self.writer, self.progress = writer, progress
        self.t0 = time.monotonic()
        self.first_hit: float | None = None
        self.totals = Counter(files=0, bytes_hashed=0, deleted=0, errors=0, no_content=0,
                              known_bad_files=0)
        self.categories: Counter[str] = Counter()
        self.pending: dict[int, tuple[FileRecord, Volume]] = {}
        self.next_key = 0
        self.evidence: list[dict[str, Any]] = []
        self.unopenable = False
        self.incomplete = False

    # -- records ------------------------------------------------------------------------------

    def finish(self, record: FileRecord, volume: Volume) -> None:
        if record.hashes:
            record.category, record.matches = self.index.match(record.hashes, record.size)
            self.categories[record.category] += 1
            if is_known_bad(record.category):
                self.totals["known_bad_files"] += 1
                if self.first_hit is None:
                    self.first_hit = time.monotonic() - self.t0
        self.totals["files"] += 1
        volume.files += 1
        if record.deleted:
            self.totals["deleted"] += 1
        if record.error:
            if record.target is None:
                self.totals["no_content"] += 1
            else:
                self.totals["errors"] += 1
                volume.errors += 1
                if not record.deleted:
                    self.incomplete = True
        self.writer.write(record)

    def take(self, result: Result) -> None:
        record, volume = self.pending.pop(result.key)
        if result.hashes is not None:
            record.hashes = result.hashes
            self.totals["bytes_hashed"] += result.bytes_read
        else:
            record.error = result.error
        self.progress.advance(record.size or 0)
        self.finish(record, volume)

    # -- evidence -----------------------------------------------------------------------------

    def scan_evidence(self, path: str, pool: HashPool) -> None:
        entry: dict[str, Any] = {"path": path}
        self.evidence.append(entry)
        try:
            spec = identify(path)
            img = open_image(spec)
        except EvidenceError as e:
            entry["error"] = str(e)
            self.unopenable = True
            return
        entry.update(format=spec.format, segments=list(spec.segments), size=spec.size,
                     parent=spec.parent, stored_hashes=spec.stored_hashes)
        vs_name, volumes = find_volumes(img)
        entry["volume_system"] = vs_name
        entry["volumes"] = [v.to_dict() for v in volumes]
        for i, volume in enumerate(volumes):
            self.progress.status(f"{display_name(path)} @ {volume.offset}")
            fs = open_fs(img, volume)
            if fs is not None:
                self.scan_volume(spec, fs, volume, pool)
            entry["volumes"][i] = volume.to_dict()
        if vs_name == "none" and volumes[0].status == "no-filesystem":
            entry["error"] = f"{path}: no partition table and {volumes[0].error}"
            self.unopenable = True
        elif any(v.unreadable for v in volumes):
            self.incomplete = True

    def scan_volume(self, spec: EvidenceSpec, fs: pytsk3.FS_Info, volume: Volume,
                    pool: HashPool) -> None:
        stats = WalkStats()
        options = WalkOptions(self.config.include_orphans, self.config.max_orphans)
        batch: list[Job] = []
        batch_bytes = 0
        for record in walk_volume(fs, spec.path, volume.offset, volume.fs_type or "", options,
                                  stats):
            if record.target is None:
                self.finish(record, volume)
                continue
            if not record.size:
                record.hashes = empty_hashes(self.algorithms)
                self.finish(record, volume)
                continue
            key = self.next_key
            self.next_key += 1
            self.pending[key] = (record, volume)
            t = record.target
            batch.append(Job(key, t.addr, t.attr_type, t.attr_id, record.size))
            batch_bytes += record.size
            self.progress.add_total(record.size)
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                self.flush(pool.submit(spec, volume.offset, batch))
                batch, batch_bytes = [], 0
        if batch:
            self.flush(pool.submit(spec, volume.offset, batch))
        volume.status = "scanned"
        if stats.errors:
            volume.status = "incomplete"
            volume.notes.extend(stats.errors[:50])
        if stats.orphans_truncated:
            volume.status = "incomplete"
            volume.notes.append(f"orphan files truncated at --max-orphans {options.max_orphans}")
        if stats.loops:
            volume.notes.append(f"{stats.loops} directory loop(s) cut")

    def flush(self, results) -> None:
        for result in results:
            self.take(result)
        self.writer.flush()

    # -- summary ------------------------------------------------------------------------------

    def exit_code(self) -> ExitCode:
        if self.totals["known_bad_files"]:
            return ExitCode.HITS
        if self.unopenable:
            return ExitCode.EVIDENCE
        if self.incomplete:
            return ExitCode.INCOMPLETE
        return ExitCode.OK


def run_scan(config: ScanConfig, progress: ProgressSink | None = None) -> ScanOutcome:
    """Scan every piece of evidence in ``config``; write files.jsonl and summary.json."""
    progress = progress or ProgressSink()
    if not config.evidence:
        raise UsageError("no evidence given")
    if config.workers < 1:
        raise UsageError("--workers must be at least 1")
    missing = [p for p in config.evidence if not os.path.lexists(p)]
    if missing:
        raise UsageError(f"evidence {missing[0]}: no such file or device")
    algorithms = parse_algorithms(config.algorithms)
    sets = load_sets(config)
    index = HashIndex(sets)
    # never miss a match because a set uses an algorithm that was not asked for
    algorithms = tuple(a for a in ALGORITHMS if a in set(algorithms) | index.algorithms)
    out = config.out or default_out_dir(config.evidence)
    prepare_out_dir(out, config.force)

    started = utc_now()
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "complete": False, "tool": tool_versions(),
        "case": {"case": config.case, "examiner": config.examiner, "exhibit": config.exhibit},
        "host": socket.gethostname(), "command": config.argv, "started": started,
        "finished": None,
        "options": {"algorithms": list(algorithms), "workers": config.workers,
                    "include_orphans": config.include_orphans,
                    "max_orphans": config.max_orphans, "lenient": config.lenient},
        "hashsets": [
            {"name": s.name, "path": s.path, "kind": s.kind, "format": s.format,
             "sha256": s.sha256, "entries": s.entries, "algorithms": s.algorithms,
             "skipped_lines": s.skipped, "dropped_empty": s.dropped_empty,
             "conflicts": s.conflicts}
            for s in sets
        ],
    }
    write_json_atomic(out / "summary.json", summary)
    writer = JsonlWriter(out / "files.jsonl", algorithms)
    run = _Run(config, index, algorithms, writer, progress)
    pool = HashPool(config.workers, algorithms)
    interrupted = False
    try:
        for path in config.evidence:
            run.scan_evidence(path, pool)
        run.flush(pool.drain())
        pool.close()
    except KeyboardInterrupt:
        interrupted = True
        pool.abort()
    finally:
        writer.close()
        summary.update(
            complete=not interrupted,
            interrupted=interrupted,
            finished=utc_now(),
            elapsed_seconds=round(time.monotonic() - run.t0, 3),
            evidence=run.evidence,
            totals=dict(run.totals),
            categories=dict(sorted(run.categories.items())),
            first_hit_seconds=None if run.first_hit is None else round(run.first_hit, 3),
        )
        code = ExitCode.INTERRUPTED if interrupted else run.exit_code()
        summary["exit_code"] = int(code)
        write_json_atomic(out / "summary.json", summary)
    if interrupted:
        raise KeyboardInterrupt
    return ScanOutcome(out, summary, code)
