"""Block digests: the one function both the set builder and the media reader hash blocks with.

Why one function: a block set only works if the builder and the sampler cut and hash blocks
identically (same digest, same byte order), so both call ``hash_blocks``. xxh3-128 is the
default because a block scan must not be bound by MD5 (~0.7 GB/s per core); MD5 exists for
sets imported from ``md5deep``/``hashdeep -p`` piecewise hashes.

Measured here (one core, 4 KiB blocks, 64 MiB from memory, CPU time): xxh3-128 0.51 us per
block (8 GB/s; 0.38 us per window at a 512-byte step), MD5 6.0 us per block (0.68 GB/s). There
is no vectorised xxh3 for numpy, so the implementation is ``map`` over memoryview slices: no
Python frame per block (a list comprehension cost ~3x more per window).
"""

from __future__ import annotations

import hashlib

import numpy as np
import xxhash

DIGESTS: tuple[str, ...] = ("xxh3-128", "md5")
DIGEST_BYTES = 16  # both digests


def _md5(data: memoryview) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


_FUNCTIONS = {"xxh3-128": xxhash.xxh3_128_digest, "md5": _md5}


def check_digest(digest: str) -> None:
    if digest not in _FUNCTIONS:
        raise ValueError(f"unknown block digest {digest!r} (known: {', '.join(DIGESTS)})")


def hash_blocks(buf: bytes | bytearray | memoryview | np.ndarray, block_size: int,
                digest: str = "xxh3-128", step: int | None = None) -> np.ndarray:
    """Digests of buf[i:i+block_size] for i = 0, step, 2*step, ... while i+block_size <= len(buf);
    shape (n, 16) dtype uint8. ``step`` defaults to ``block_size`` (a smaller step hashes
    overlapping windows, e.g. at every cluster offset inside a read)."""
    check_digest(digest)
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    step = block_size if step is None else step
    if step <= 0:
        raise ValueError("step must be positive")
    view = memoryview(buf).cast("B") if not isinstance(buf, np.ndarray) else memoryview(
        np.ascontiguousarray(buf).reshape(-1).view(np.uint8))
    size = view.nbytes
    if size < block_size:
        return np.zeros((0, DIGEST_BYTES), dtype=np.uint8)
    fn = _FUNCTIONS[digest]
    last = size - block_size + 1
    # map() over slice objects: no Python frame per window (~3x the list comprehension's rate)
    windows = map(view.__getitem__, map(slice, range(0, last, step), range(block_size, size + 1, step)))
    joined = b"".join(map(fn, windows))
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, DIGEST_BYTES)
