"""Matching a file's digests against every loaded hash set, and the category that results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from triage.categories import DEFAULT_ORDER, KNOWN_BAD, KNOWN_GOOD, NOTABLE, UNKNOWN, most_severe
from triage.hashsets.model import HashSet


class HashIndex:
    def __init__(self, sets: Sequence[HashSet], order: Sequence[str] = DEFAULT_ORDER) -> None:
        self.sets = list(sets)
        self.order = tuple(order)

    @property
    def algorithms(self) -> set[str]:
        return {a for s in self.sets for a in s.algorithms}

    def match(self, hashes: dict[str, str | None], size: int | None) -> tuple[str, list[dict[str, Any]]]:
        """Return (category, matches). Zero-length content never matches: its digest is in
        many sets and proves nothing."""
        if not size:
            return UNKNOWN, []
        matches: list[dict[str, Any]] = []
        for s in self.sets:
            for alg, table in s.table.items():
                hexdigest = hashes.get(alg)
                if not hexdigest or not table:
                    continue
                key = bytes.fromhex(hexdigest)
                if key not in table:
                    continue
                if s.kind == KNOWN_BAD:
                    category = table[key] or NOTABLE
                else:
                    category = KNOWN_GOOD
                matches.append({"hashset": s.name, "algorithm": alg, "category": category})
        bad = [m["category"] for m in matches if m["category"] != KNOWN_GOOD]
        if bad:
            return most_severe(bad, self.order), matches
        if matches:
            return KNOWN_GOOD, matches
        return UNKNOWN, matches
