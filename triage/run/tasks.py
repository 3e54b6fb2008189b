"""Work units run inside the worker processes: list one directory slice, or hash some files.

A directory task lists its slice, hashes the small files it finds right away and hands large
ones back as separate file tasks, so no worker is stuck alone with the biggest files at the end.
Each task returns finished files.jsonl lines: the main process only writes and counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from triage.run import faults
from triage.filesystems.backends import Backend, VolumeRef, backend
from triage.matching.categories import KNOWN_BAD
from triage.evidence.containers import EvidenceSpec, open_image
from triage.content.hashing import Digest, empty_hashes, set_file_budget
from triage.hashsets.model import HashSet
from triage.run.inspect import INSPECTORS
from triage.matching.exact import HashIndex
from triage.perceptual.compute import PdqOptions, PdqWorker
from triage.perceptual.video import side_line
from triage.run.pool import describe_defect
from triage.records import FileRecord
from triage.run.results import SKIPPED_SIZE, Tally, encode_line, encode_lines, finish_record
from triage.filesystems.walk import DirRef, VolumeContext, WalkOptions, WalkStats

SLICE_ENTRIES = 20_000  # directory entries per task: bounds the memory of one result
BIG_FILE = 8 << 20  # larger files become their own tasks


@dataclass(frozen=True)
class DirTask:
    volume: VolumeRef
    dir: DirRef
    start: int = 0
    hash_inline: bool = True  # False on retry after a crash: list only, hash in file tasks
    locate: bool = False  # find each file's first data run (--order physical)


@dataclass
class FileTask:
    volume: VolumeRef
    records: list[FileRecord]


@dataclass
class TaskResult:
    lines: bytes = b""
    tally: Tally = field(default_factory=Tally)
    subdirs: list[DirRef] = field(default_factory=list)
    deferred: list[FileRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    orphans_truncated: bool = False
    loops: int = 0
    more: int | None = None
    vpdq: bytes = b""  # vpdq.jsonl lines (--vpdq): the frame hashes of the videos hashed


@dataclass
class WorkerInit:
    algorithms: tuple[str, ...]
    sets: list[HashSet]
    options: WalkOptions
    size_filter: bool = False  # --size-filter: skip files whose size no known-bad set holds
    pdq: PdqOptions | None = None  # --pdq: hash pictures, search the PDQ sets
    file_timeout: float = 0.0  # --file-timeout (0: derived from each file's size)
    read_timeout: float = 120.0  # --read-timeout: the derived per-file budget's base


class WorkerState:
    def __init__(self, init: WorkerInit) -> None:
        self.init = init
        self.index = HashIndex(init.sets)
        # --pdq: maps the PDQ index; its ``keep`` makes reads return picture contents
        self.pdq = PdqWorker.start(init.pdq)
        self.keep = self.pdq.keep if self.pdq is not None else None
        set_file_budget(init.file_timeout, init.read_timeout)
        self._handles: dict[VolumeRef, Any] = {}
        self._bad_sets = [x for x in init.sets if x.kind == KNOWN_BAD]

    def size_excluded(self, record: FileRecord) -> bool:
        """--size-filter: no known-bad set declares this size, so no known-bad set can match
        (every set's sizes are complete: checked before the scan starts)."""
        return self.init.size_filter and not any(
            x.may_contain_size(record.size) for x in self._bad_sets)

    def open(self, v: VolumeRef) -> tuple[Backend, Any]:
        """The volume's backend and its handle, opened once per worker."""
        b = backend(v.kind)
        if v not in self._handles:
            self._handles[v] = b.open(v)
        return b, self._handles[v]


def _hash_into(state: WorkerState, b: Backend, handle: Any, record: FileRecord, tally: Tally,
               beat) -> None:
    """Read the file once; its hashes, and its head and kept content for the inspectors, come
    back in the one ``Read`` value."""
    read = b.hash_content(handle, record.target, record.size, state.init.algorithms, beat,
                          state.keep)
    record.hashes = read.hashes or {}
    record.error = read.error
    if read.hashes is not None:  # only what was hashed: not the bytes of a read that failed
        tally.bytes_hashed += read.nbytes
        try:
            for inspect in INSPECTORS:
                inspect(record, read)
            if state.pdq is not None:  # after the census: it reads kind and signature
                state.pdq.inspect(record, read, beat)
        except Exception as e:  # noqa: BLE001 - a defect: counted; the file keeps its hashes
            tally.internal(record.path, "content inspection: " + describe_defect(e))


# the tests' crash/hang seam (triage.run.faults): the function itself unless TRIAGE_FAULT_INJECT is set
_hash_into = faults.wrap(_hash_into, lambda state, b, handle, record, *rest: record.path)


def _side(result: TaskResult, record: FileRecord) -> None:
    """A hashed video's frames go to vpdq.jsonl, not files.jsonl (kept small)."""
    line = side_line(record)
    if line is not None:
        result.vpdq += encode_line(line)
        record.vpdq_hashes = None


def run_dir_task(state: WorkerState, task: DirTask, beat) -> TaskResult:
    b, handle = state.open(task.volume)
    v = task.volume
    vol = VolumeContext(v.evidence.path, v.offset, v.fs_type)
    stats = WalkStats(orphans=task.start if task.dir.in_orphans else 0)
    result = TaskResult()
    lines = []
    algorithms = state.init.algorithms
    for record in b.list_directory(handle, task.dir, vol, state.init.options, stats,
                                   result.subdirs, task.start, SLICE_ENTRIES):
        beat()
        if record.target is not None:
            if record.size:
                result.tally.listed_bytes += record.size
                if state.size_excluded(record):
                    record.error = SKIPPED_SIZE
                elif not task.hash_inline or record.size > BIG_FILE:
                    if task.locate and hasattr(b, "location"):
                        record.location = b.location(handle, record.target)
                    result.deferred.append(record)
                    continue
                else:
                    _hash_into(state, b, handle, record, result.tally, beat)
            else:
                record.hashes = empty_hashes(algorithms)
        lines.append(finish_record(record, state.index, algorithms, result.tally, state.pdq))
        _side(result, record)
    result.lines = encode_lines(lines)
    result.errors = stats.errors
    result.orphans_truncated = stats.orphans_truncated
    result.loops = stats.loops
    result.more = stats.more
    return result


def run_file_task(state: WorkerState, task: FileTask, beat) -> TaskResult:
    b, handle = state.open(task.volume)
    result = TaskResult()
    lines = []
    for record in task.records:
        _hash_into(state, b, handle, record, result.tally, beat)
        lines.append(finish_record(record, state.index, state.init.algorithms, result.tally,
                                   state.pdq))
        _side(result, record)
    result.lines = encode_lines(lines)
    return result


@dataclass(frozen=True)
class MediaTask:
    """Hash the whole media stream (``--verify-image``) to compare with the acquisition hash."""

    evidence: EvidenceSpec
    index: int  # position of the evidence in the run


def run_media_task(state: WorkerState, task: MediaTask, beat) -> dict[str, str]:
    img = open_image(task.evidence)
    digest = Digest(("md5", "sha1"))
    size, pos = img.get_size(), 0
    try:
        while pos < size:
            data = img.read(pos, min(4 << 20, size - pos))
            if not data:
                raise OSError(f"short read at byte {pos:,} of {size:,}")
            digest.update(data)
            pos += len(data)
            beat()
    finally:
        img.close()
    return digest.hexdigests()


TASKS = {"dir": run_dir_task, "files": run_file_task, "media": run_media_task}
