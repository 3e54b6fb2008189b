"""One loaded hash set, whether parsed into RAM or opened from a compiled ``.tdb`` index.

Both forms hold the same structure (per algorithm a sorted ``DigestTable``), so the matcher and
every command use one interface: ``lookup`` / ``lookup_many`` / ``may_contain_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALGORITHM_HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}

EMPTY_DIGESTS = {
    "md5": "d41d8cd98f00b204e9800998ecf8427e",
    "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
}


@dataclass(eq=False)
class HashSet:
    """One hash set: one source file parsed, or a compiled index of one or more sources.

    ``categories[id]`` is the category code a row carries (None: the set gives none, and the
    matcher then uses ``notable`` / ``known-good`` by ``kind``). ``format`` is the parser id, or
    ``tdb`` for a compiled index; ``sha256`` is the source file's digest, or for an index the
    digest of its data sections recorded at build time: ``verification`` (a scan) and
    ``hashset info --verify`` compute it from the file and compare.
    """

    name: str
    path: str
    kind: str  # "known-bad" | "known-good"
    format: str
    sha256: str
    tables: dict[str, Any] = field(default_factory=dict)  # algorithm -> DigestTable
    categories: Sequence[str | None] = (None,)
    skipped: int = 0  # malformed records skipped under --lenient
    dropped_empty: int = 0  # empty-file / all-zero digests dropped
    conflicts: int = 0  # digests given two or more categories (every pair is kept)
    sizes: np.ndarray | None = None  # sorted distinct declared sizes, when every record had one
    profile: Any = None  # triage.hashsets.profiles.Profile, for labels
    sources: list[dict[str, Any]] = field(default_factory=list)
    header: dict[str, Any] | None = None  # the compiled index's header
    index_file: str | None = field(default=None, repr=False)  # the mapped .tdb, if any
    # the data check of a .tdb opened for a scan (``tdb.Verification``); workers re-map
    verification: Any = field(default=None, repr=False)
    # a raw source's PDQ column, read in the same parse (``load_hashset(pdq=True)``): a
    # ``perceptual.index.PdqSet`` the scan takes (and clears) before the set goes to workers
    pdq_set: Any = field(default=None, repr=False)

    def __reduce__(self) -> Any:
        """A mapped index pickles as its file name (scan workers re-map it, sharing the page
        cache); an in-memory set pickles its (small) arrays."""
        if self.index_file is None:
            return super().__reduce__()
        from triage.hashsets.tdb import reopen

        overrides = {k: getattr(self, k) for k in ("name", "path", "kind", "format", "sha256", "profile")}
        return reopen, (self.index_file, overrides)

    @property
    def entries(self) -> int:
        """Distinct digests, summed over algorithms."""
        return sum(t.unique for t in self.tables.values())

    @property
    def algorithms(self) -> list[str]:
        return sorted(a for a, t in self.tables.items() if len(t))

    def lookup(self, algorithm: str, digest: bytes) -> list[str | None]:
        """Every category the set gives ``digest`` ([] when absent; [None] when uncategorised)."""
        table = self.tables.get(algorithm)
        if table is None:
            return []
        return [self.categories[i] for i in table.find(digest)]

    def lookup_many(self, algorithm: str, digests: Sequence[bytes]) -> list[tuple[str | None, ...]]:
        """``lookup`` for a batch, vectorised (>1M digests/s): a tuple of categories per digest,
        ``()`` when absent."""
        table = self.tables.get(algorithm)
        if table is None or not len(digests):
            return [()] * len(digests)
        width = table.width
        if set(map(len, digests)) == {width}:
            queries = np.frombuffer(b"".join(digests), dtype=f"S{width}")
            wrong: list[int] = []
        else:
            wrong = [i for i, d in enumerate(digests) if len(d) != width]
            queries = np.array([d if len(d) == width else bytes(width) for d in digests], dtype=f"S{width}")
        start, count = table.find_many(queries)
        if wrong:
            count[wrong] = 0
        # one C-level pass: index into [(category,) per id..., ()] (the last entry: absent)
        answers = [(name,) for name in self.categories] + [()]
        pick = np.full(len(digests), len(answers) - 1, dtype=np.int64)
        single = count == 1
        pick[single] = table.cats[start[single]] if table.cats is not None else table.constant
        out = list(map(answers.__getitem__, pick.tolist()))
        for i in np.flatnonzero(count > 1).tolist():  # conflicts: several rows
            first = int(start[i])
            out[i] = tuple(self.categories[table.category_id(r)] for r in range(first, first + int(count[i])))
        return out

    def may_contain_size(self, size: int) -> bool:
        """False only when the set declares every size and ``size`` is not one of them."""
        if self.sizes is None:
            return True
        i = int(np.searchsorted(self.sizes, size))
        return i < len(self.sizes) and int(self.sizes[i]) == size

    def label(self, category: str | None) -> str | None:
        """The profile's display label for a category code (the code itself when unknown)."""
        if category is None or self.profile is None:
            return category
        return self.profile.label(category)

    @property
    def table(self) -> dict[str, dict[bytes, str | None]]:
        """Digest -> most severe category, as plain dicts (small sets and tests only)."""
        from triage.matching.categories import most_severe

        result: dict[str, dict[bytes, str | None]] = {}
        for algorithm in self.algorithms:
            table = self.tables[algorithm]
            raw = table.keys.view(np.uint8).tobytes()
            width = table.width
            rows: dict[bytes, list[str]] = {}
            plain: dict[bytes, str | None] = {}
            for row in range(len(table)):
                key = raw[row * width : (row + 1) * width]
                category = self.categories[table.category_id(row)]
                plain.setdefault(key, category)
                if category is not None:
                    rows.setdefault(key, []).append(category)
            result[algorithm] = {k: (most_severe(rows[k]) if k in rows else v) for k, v in plain.items()}
        return result

    def conflicting(self) -> list[tuple[str, bytes, list[str | None]]]:
        """Every (algorithm, digest, categories) whose digest carries several categories."""
        found = []
        for algorithm in self.algorithms:
            table = self.tables[algorithm]
            keys = table.keys
            if len(keys) < 2:
                continue
            for start in range(0, len(keys) - 1, 1 << 22):  # chunked: indexes can be huge
                stop = min(start + (1 << 22) + 1, len(keys))
                same = np.flatnonzero(keys[start + 1 : stop] == keys[start : stop - 1]) + start
                for row in same.tolist():
                    if row > 0 and keys[row - 1] == keys[row]:
                        continue  # already listed from the group's first row
                    group = [row]
                    while group[-1] + 1 < len(keys) and keys[group[-1] + 1] == keys[row]:
                        group.append(group[-1] + 1)
                    digest = table.keys.view(np.uint8)[row * table.width : (row + 1) * table.width].tobytes()
                    found.append((algorithm, digest, [self.categories[table.category_id(r)] for r in group]))
        return found
