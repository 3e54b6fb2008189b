"""Matching a file's digests against every loaded hash set, and the category that results.

Sets answer through one interface whatever backs them (RAM or a mapped ``.tdb``):
``lookup(algorithm, digest) -> [category, ...]`` and its batch form ``lookup_many``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from triage.matching.categories import DEFAULT_ORDER, KNOWN_BAD, KNOWN_GOOD, NOTABLE, UNKNOWN, most_severe
from triage.hashsets.model import HashSet

Match = dict[str, Any]


class HashIndex:
    def __init__(self, sets: Sequence[HashSet], order: Sequence[str] = DEFAULT_ORDER) -> None:
        self.sets = list(sets)
        self.order = tuple(order)

    @property
    def algorithms(self) -> set[str]:
        return {a for s in self.sets for a in s.algorithms}

    def match(self, hashes: dict[str, str | None], size: int | None) -> tuple[str, list[Match]]:
        """Return (category, matches). Zero-length content never matches: its digest is in
        many sets and proves nothing."""
        if not size:
            return UNKNOWN, []
        matches: list[Match] = []
        for s in self.sets:
            for alg in s.algorithms:
                hexdigest = hashes.get(alg)
                if not hexdigest:
                    continue
                try:
                    key = bytes.fromhex(hexdigest)
                except ValueError:
                    continue
                found = s.lookup(alg, key)
                if found:
                    matches.append(_match(s, alg, found, self.order))
        return self._verdict(matches), matches

    def _verdict(self, matches: list[Match]) -> str:
        bad = [m["category"] for m in matches if m["category"] != KNOWN_GOOD]
        if bad:
            return most_severe(bad, self.order)
        if matches:
            return KNOWN_GOOD
        return UNKNOWN


def _match(s: HashSet, alg: str, found: list[str | None], order: Sequence[str]) -> Match:
    """One set's verdict on one digest: the most severe of its (possibly conflicting) categories."""
    if s.kind == KNOWN_BAD:
        named = [c for c in found if c is not None]
        category = most_severe(named, order) if named else NOTABLE
    else:
        category = KNOWN_GOOD
    return {"hashset": s.name, "algorithm": alg, "category": category}
