"""Reading one file's content once and feeding every requested algorithm from the same buffer."""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import xxhash

from triage.evidence.buffers import Buffer, as_bytes
from triage.records import ReadTarget

CHUNK = 1 << 20

HASHERS: dict[str, Callable[[], Any]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "xxh128": xxhash.xxh3_128,
}


HEAD = 8192  # bytes kept from the start of each file for content inspection (census)
KEEP_LIMIT = 256 << 20  # whole content kept for inspectors, at most (larger: not kept)


def empty_hashes(algorithms: Iterable[str]) -> dict[str, str]:
    return {a: HASHERS[a]().hexdigest() for a in algorithms}


@dataclass(slots=True)
class Read:
    """What one read of a file returned: the hashes (None when the read failed), why it failed,
    the bytes read, the first ``HEAD`` bytes (census), and the whole content when the caller's
    ``keep`` policy asked for it (pictures for PDQ). Content travels in this value, never in
    a class attribute: a backend that reads differently still hands census and PDQ their
    bytes, or visibly nothing."""

    hashes: dict[str, str] | None
    error: str | None
    nbytes: int
    head: bytes = b""
    content: bytes | bytearray | None = None


Keep = Callable[[bytes], bool]  # from a file's head: keep its whole content for inspection?


class Digest:
    """Feeds every algorithm from each buffer of the one read, and keeps what inspectors need:
    the first ``HEAD`` bytes always, the whole content only when ``keep(head)`` says so.
    Backends hash through ``hash_reads``, so every buffer is ``bytes``."""

    def __init__(self, algorithms: tuple[str, ...], keep: Keep | None = None) -> None:
        self.algorithms = algorithms
        self._hashers = [HASHERS[a]() for a in algorithms]
        self._keep = keep
        self.head = b""
        self.content: bytearray | None = None
        self._decided = False

    def update(self, data: bytes) -> None:
        for h in self._hashers:
            h.update(data)
        if len(self.head) < HEAD:
            self.head += data[: HEAD - len(self.head)]
        if self.content is not None:
            if len(self.content) + len(data) > KEEP_LIMIT:
                self.content = None  # too big to decode: stop keeping it
            else:
                self.content += data
        elif not self._decided:
            self._decided = True
            if self._keep is not None and self._keep(self.head):
                self.content = bytearray(data)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in zip(self.algorithms, self._hashers)}

    def result(self, nbytes: int) -> Read:
        return Read(self.hexdigests(), None, nbytes, self.head, self.content)


MIB_SECONDS = 1.0  # derived per-file budget: seconds allowed per MiB of the file's size
_budget = (0.0, 120.0)  # (--file-timeout, --read-timeout) of this worker process


def set_file_budget(file_timeout: float, read_timeout: float) -> None:
    """Once per worker, from the options (``file_budget``)."""
    global _budget
    _budget = (file_timeout, read_timeout)


def file_budget(size: int) -> float:
    """Seconds one file's read may take in all: ``--file-timeout``, or by default
    ``--read-timeout`` plus one second per MiB of its size (a file is abandoned only when its
    average rate falls under 1 MiB/s). ``--read-timeout`` alone cannot stop a read whose bytes
    keep coming, such as zeros for a damaged size of exabytes."""
    fixed, base = _budget
    return fixed if fixed > 0 else base + size / (1 << 20) * MIB_SECONDS


def hash_reads(read: Callable[[int, int], Buffer], size: int, algorithms: tuple[str, ...],
               progress: Callable[[], None] = lambda: None, keep: Keep | None = None) -> Read:
    """Hash ``size`` bytes got from ``read(offset, length)``, in large chunks, through one
    ``Digest``, and return what was read (``Read``: hashes, error, bytes read, head, and the
    content when ``keep(head)``). Every backend reads through this, so a read that ends before
    ``size`` is an error everywhere, never a shorter file (hashing truncated content would
    produce a confident wrong answer), and inspectors see every file's head. Whatever buffer
    type ``read`` returns, everything after it sees ``bytes`` (``as_bytes``). A read that
    outlasts ``file_budget`` stops with an error: the record is still written. OSError is the
    caller's to catch: it knows how to word it."""
    start = time.monotonic()
    data = as_bytes(read(0, min(CHUNK, size))) if size else b""
    if len(data) == size:  # most files: one read, no per-chunk bookkeeping (hot path)
        head = data[:HEAD]
        return Read({a: HASHERS[a](data).hexdigest() for a in algorithms}, None, size, head,
                    data if keep is not None and keep(head) else None)
    digest = Digest(algorithms, keep)
    pos = 0
    while data:
        digest.update(data)
        pos += len(data)
        progress()
        if pos >= size:
            return digest.result(pos)
        if time.monotonic() - start > file_budget(size):
            return Read(None, (f"not read: over the per-file time budget of "
                               f"{file_budget(size):g} s after {pos:,} of {size:,} bytes "
                               "(--file-timeout)"), pos)
        data = as_bytes(read(pos, min(CHUNK, size - pos)))
    return Read(None, f"short read: got {pos} of {size} bytes", pos)


def runs_reader(read: Callable[[int, int], Buffer], runs: list[tuple[int, int]]
                ) -> Callable[[int, int], Buffer]:
    """``read(offset, length)`` over content stored in ``runs`` ((media offset, length), in
    file order), for ``hash_reads``: each read stops at the end of its run."""
    starts, pos = [], 0
    for _, length in runs:
        starts.append(pos)
        pos += length

    def read_at(offset: int, length: int) -> Buffer:
        i = bisect.bisect_right(starts, offset) - 1
        if i < 0 or offset >= starts[i] + runs[i][1]:
            return b""
        into = offset - starts[i]
        return read(runs[i][0] + into, min(length, runs[i][1] - into))

    return read_at


def hash_content(fs: Any, target: ReadTarget, size: int, algorithms: tuple[str, ...],
                 truncated: bool, progress: Callable[[], None] = lambda: None,
                 keep: Keep | None = None) -> Read:
    """A TSK file's content (default or NTFS attribute), hashed by ``hash_reads``. Reads
    through the file object the walk already holds when there is one."""
    try:
        f = target.file or fs.open_meta(inode=target.addr)
        if truncated:  # the volume's answer, looked up once (volumes.is_truncated)
            beyond = _blocks_beyond_end(f, target, int(fs.info.last_block_act))
            if beyond:
                return Read(None, beyond, 0)
        if target.attr_type is None:
            return hash_reads(f.read_random, size, algorithms, progress, keep)
        return hash_reads(lambda pos, n: f.read_random(pos, n, target.attr_type, target.attr_id),
                          size, algorithms, progress, keep)
    except OSError as e:
        return Read(None, "read error: " + " ".join(str(e).split())[:300], 0)


_SPARSE_OR_FILLER = 0x03  # TSK_FS_ATTR_RUN_FLAG_FILLER | TSK_FS_ATTR_RUN_FLAG_SPARSE


def _blocks_beyond_end(f: Any, target: ReadTarget, last_block: int) -> str | None:
    """On a truncated image, name the first data run that lies past the evidence's end."""
    for attr in f:
        info = attr.info
        if target.attr_type is not None and (int(info.type), int(info.id)) != (
                target.attr_type, target.attr_id):
            continue
        for run in attr:
            if int(run.flags) & _SPARSE_OR_FILLER:
                continue
            if int(run.addr) + int(run.len) - 1 > last_block:
                return (f"content lies past the end of the evidence (block {int(run.addr):,}, "
                        f"evidence ends at block {last_block:,}): image truncated")
        if target.attr_type is None:
            break  # the default attribute is the first one TSK lists
    return None
