"""Content reading and hashing in a pool of worker processes.

Each worker opens the evidence itself (no shared file offsets, no GIL contention with the walk),
reads every file once in large chunks and feeds all requested algorithms from the same buffer.
The main process keeps only a bounded window of batches in flight, so memory does not grow with
the number of files.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import xxhash

from triage.evidence import EvidenceSpec

CHUNK = 1 << 20
BATCH_FILES = 256
BATCH_BYTES = 32 << 20

HASHERS: dict[str, Callable[[], Any]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "xxh128": xxhash.xxh3_128,
}


@dataclass(frozen=True, slots=True)
class Job:
    """One file's content to hash; ``key`` lets the caller pair the result with its record."""

    key: int
    addr: int
    attr_type: int | None
    attr_id: int | None
    size: int


@dataclass(slots=True)
class Result:
    key: int
    hashes: dict[str, str] | None
    error: str | None
    bytes_read: int


def empty_hashes(algorithms: Iterable[str]) -> dict[str, str]:
    return {a: HASHERS[a]().hexdigest() for a in algorithms}


# --- worker side ----------------------------------------------------------------------------

_handles: dict[tuple[EvidenceSpec, int], Any] = {}


def _file_system(spec: EvidenceSpec, offset: int) -> Any:
    key = (spec, offset)
    fs = _handles.get(key)
    if fs is None:
        import pytsk3

        from triage.evidence import open_image

        img = _handles.get((spec, -1))
        if img is None:
            img = _handles[(spec, -1)] = open_image(spec)
        fs = _handles[key] = pytsk3.FS_Info(img, offset=offset)
    return fs


def hash_one(fs: Any, job: Job, algorithms: tuple[str, ...]) -> Result:
    """Read one file's content through TSK and hash it; short reads are errors."""
    try:
        f = fs.open_meta(inode=job.addr)
        hashers = [HASHERS[a]() for a in algorithms]
        pos = 0
        while pos < job.size:
            n = min(CHUNK, job.size - pos)
            if job.attr_type is None:
                data = f.read_random(pos, n)
            else:
                data = f.read_random(pos, n, job.attr_type, job.attr_id)
            if not data:
                return Result(job.key, None, f"short read: got {pos} of {job.size} bytes", pos)
            for h in hashers:
                h.update(data)
            pos += len(data)
    except OSError as e:
        return Result(job.key, None, "read error: " + " ".join(str(e).split())[:300], 0)
    return Result(job.key, {a: h.hexdigest() for a, h in zip(algorithms, hashers)}, None, pos)


def hash_batch(spec: EvidenceSpec, offset: int, jobs: list[Job],
               algorithms: tuple[str, ...]) -> list[Result]:
    fault = os.environ.get("TRIAGE_FAULT_INJECT")  # test hook: crash on a chosen address
    try:
        fs = _file_system(spec, offset)
    except Exception as e:  # noqa: BLE001 - the volume opened in the parent; report, don't die
        return [Result(j.key, None, f"cannot open file system in worker: {e}", 0) for j in jobs]
    results = []
    for job in jobs:
        if fault and fault == f"crash:{job.addr}":
            os._exit(70)
        results.append(hash_one(fs, job, algorithms))
    return results


# --- parent side ----------------------------------------------------------------------------


class HashPool:
    """Bounded, order-free hashing of many jobs across worker processes."""

    def __init__(self, workers: int, algorithms: tuple[str, ...]) -> None:
        self.workers = max(1, workers)
        self.algorithms = algorithms
        self._ctx = multiprocessing.get_context("spawn")
        self._executor = self._new_executor()
        self._window = 2 * self.workers + 2
        self._inflight: dict[Future, tuple[EvidenceSpec, int, list[Job]]] = {}

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx)

    def submit(self, spec: EvidenceSpec, offset: int, jobs: list[Job]) -> Iterator[Result]:
        """Queue a batch; yields results that completed while waiting for room."""
        while len(self._inflight) >= self._window:
            yield from self._collect(block=True)
        fut = self._executor.submit(hash_batch, spec, offset, jobs, self.algorithms)
        self._inflight[fut] = (spec, offset, jobs)
        yield from self._collect(block=False)

    def drain(self) -> Iterator[Result]:
        while self._inflight:
            yield from self._collect(block=True)

    def _collect(self, block: bool) -> Iterator[Result]:
        if not self._inflight:
            return
        done, _ = wait(list(self._inflight), timeout=None if block else 0,
                       return_when=FIRST_COMPLETED)
        broken = []
        for fut in done:
            batch = self._inflight.pop(fut)
            try:
                yield from fut.result()
            except BrokenProcessPool:
                broken.append(batch)
        if broken:
            yield from self._recover(broken)

    def _recover(self, broken: list[tuple[EvidenceSpec, int, list[Job]]]) -> Iterator[Result]:
        """A worker died: every in-flight batch is lost with it. Redo them one file at a time in
        a fresh pool so only the file that kills a worker is reported as failed."""
        pending = broken + list(self._inflight.values())
        self._inflight.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()
        for spec, offset, jobs in pending:
            for job in jobs:
                fut = self._executor.submit(hash_batch, spec, offset, [job], self.algorithms)
                try:
                    yield from fut.result()
                except BrokenProcessPool:
                    yield Result(job.key, None, "worker process crashed while reading this file", 0)
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
