"""The in-memory form of one loaded hash set (the compiled on-disk index comes later)."""

from __future__ import annotations

from dataclasses import dataclass, field

ALGORITHM_HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}

EMPTY_DIGESTS = {
    "md5": "d41d8cd98f00b204e9800998ecf8427e",
    "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
}


@dataclass
class HashSet:
    """One hash-set file, parsed.

    ``table[algorithm][digest_bytes]`` is the category the set gives that digest, or None when the
    set carries no category (the matcher then uses ``notable`` / ``known-good`` by ``kind``).
    """

    name: str
    path: str
    kind: str  # "known-bad" | "known-good"
    format: str
    sha256: str
    table: dict[str, dict[bytes, str | None]] = field(default_factory=dict)
    skipped: int = 0  # malformed lines skipped under --lenient
    dropped_empty: int = 0  # empty-file / all-zero digests dropped
    conflicts: int = 0  # same digest given two categories in this set (most severe kept)

    @property
    def entries(self) -> int:
        return sum(len(t) for t in self.table.values())

    @property
    def algorithms(self) -> list[str]:
        return sorted(a for a, t in self.table.items() if t)
