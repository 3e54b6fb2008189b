"""Test-only stand-in for ``triage.blocks.tbs.BlockSet`` (the contract in BLOCKS_API.md), used
only where a test needs a set the real builder would refuse to make. Tests of results use sets
built by ``triage blockset build``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash


@dataclass(frozen=True)
class RefFile:
    md5: str
    sha1: str
    size: int
    name: str
    category: str | None


@dataclass(frozen=True)
class BlockRef:
    file: RefFile
    offset: int


class FakeBlockSet:
    def __init__(self, files: list[Path], block_size: int = 4096, category: str = "A") -> None:
        self.path, self.name, self.block_size, self.digest = Path("fake.tbs"), "fake", block_size, "xxh3-128"
        keys, refs = [], []
        for p in files:
            data = p.read_bytes()
            rf = RefFile(hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(), len(data),
                         p.name, category)
            for off in range(0, len(data) - block_size + 1, block_size):
                keys.append(xxhash.xxh3_128_digest(data[off:off + block_size]))
                refs.append(BlockRef(rf, off))
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self._keys = [keys[i] for i in order]
        self._refs = [refs[i] for i in order]
        self._index = {k: i for i, k in enumerate(self._keys)}
        self.n_blocks = len(self._keys)
        self.categories = {category: self.n_blocks}

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        return np.array([self._index.get(bytes(k), -1) for k in keys], dtype=np.int64)

    def refs(self, entry: int) -> list[BlockRef]:
        return [self._refs[entry]]

    def close(self) -> None:
        pass
