"""Reading one file's content once and feeding every requested algorithm from the same buffer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import xxhash

from triage.records import ReadTarget

CHUNK = 1 << 20

HASHERS: dict[str, Callable[[], Any]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "xxh128": xxhash.xxh3_128,
}


def empty_hashes(algorithms: Iterable[str]) -> dict[str, str]:
    return {a: HASHERS[a]().hexdigest() for a in algorithms}


def hash_content(fs: Any, target: ReadTarget, size: int, algorithms: tuple[str, ...],
                 progress: Callable[[], None] = lambda: None
                 ) -> tuple[dict[str, str] | None, str | None, int]:
    """(hashes, error, bytes read). A read that ends before ``size`` is an error, never a
    shorter file: hashing truncated content would produce a confident wrong answer."""
    try:
        f = fs.open_meta(inode=target.addr)
        hashers = [HASHERS[a]() for a in algorithms]
        pos = 0
        while pos < size:
            n = min(CHUNK, size - pos)
            if target.attr_type is None:
                data = f.read_random(pos, n)
            else:
                data = f.read_random(pos, n, target.attr_type, target.attr_id)
            if not data:
                return None, f"short read: got {pos} of {size} bytes", pos
            for h in hashers:
                h.update(data)
            pos += len(data)
            progress()
    except OSError as e:
        return None, "read error: " + " ".join(str(e).split())[:300], 0
    return {a: h.hexdigest() for a, h in zip(algorithms, hashers)}, None, pos
