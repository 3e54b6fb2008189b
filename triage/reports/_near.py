"""PDQ near matches as the reports show them: apart from exact matches, always "needs review".

A record's ``matches`` mixes exact (cryptographic) matches and PDQ near matches
(``"algorithm": "pdq"`` with a ``distance``). Reports must never let a near match pass for a
hit, so every report splits them here, once, the same way.
"""

from __future__ import annotations

from typing import Any

PDQ = "pdq"
NEAR_LABEL = "Near-duplicate (PDQ), needs review: no exact match"


def exact_matches(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Matches by a cryptographic digest: the ones that make a hit."""
    return [m for m in record.get("matches") or [] if m.get("algorithm") != PDQ]


def near_matches(record: dict[str, Any]) -> list[dict[str, Any]]:
    """PDQ near matches, closest first (the scan already writes them so; sorted again for
    hand-made or older records)."""
    near = [m for m in record.get("matches") or [] if m.get("algorithm") == PDQ]
    return sorted(near, key=lambda m: _distance(m))


def closest(record: dict[str, Any]) -> int | None:
    """Smallest PDQ distance of the record (``pdq_distance``, or from its matches)."""
    value = record.get("pdq_distance")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    near = near_matches(record)
    return _distance(near[0]) if near else None


def describe(m: dict[str, Any]) -> str:
    """'needs review: PDQ distance 4 to pv (1)': the wording of hits.csv."""
    return f"needs review: PDQ distance {m.get('distance')} to {m.get('hashset')} ({m.get('category')})"


def _distance(m: dict[str, Any]) -> int:
    d = m.get("distance")
    return d if isinstance(d, int) and not isinstance(d, bool) else 257
