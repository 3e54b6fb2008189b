"""Human labels of categories for reports (files keep the raw codes, reports add a label).

A hash set's category profile, when summary.json carries one for it (``hashsets[].profile``,
shape of ``triage.hashsets.profiles.Profile.to_json``), names its codes; otherwise this small
local map does, matching the shipped ``us`` (Project VIC) and ``uk`` profiles. Labels describe
the classification scheme, never content.
"""

from __future__ import annotations

from typing import Any

from triage.matching.categories import KNOWN_GOOD, NOTABLE, UNKNOWN, is_known_bad, severity_key

LABELS: dict[str, str] = {
    "A": "UK Category A",
    "B": "UK Category B",
    "C": "UK Category C",
    "0": "Project VIC 0: Non-Pertinent",
    "1": "Project VIC 1: Child Abuse Material (CAM)",
    "2": "Project VIC 2: Child Exploitive (Non-CAM) / Age Difficult",
    "3": "Project VIC 3: CGI/Animation",
    "4": "Project VIC 4: Comparison Images",
    NOTABLE: "Notable (known-bad set without a category)",
    KNOWN_GOOD: "Known good",
    UNKNOWN: "Not in any hash set",
}


class Labels:
    """``labels(code)`` -> display label; built once per render from the run's summary."""

    def __init__(self, summary: dict[str, Any] | None = None) -> None:
        self.table = dict(LABELS)
        named: dict[str, str] = {}
        for h in (summary or {}).get("hashsets") or []:
            profile = h.get("profile") if isinstance(h, dict) else None
            labels = profile.get("labels") if isinstance(profile, dict) else None
            if isinstance(labels, dict):
                for code, text in labels.items():
                    named.setdefault(str(code), str(text))  # first set to name a code wins
        self.table.update(named)

    def __call__(self, category: str | None) -> str:
        if category is None:
            return "Not hashed"
        return self.table.get(category, f"Category {category}")


def severity(category: str | None) -> str:
    """How a category is shown: bad, good or neutral."""
    if is_known_bad(category):
        return "bad"
    return "good" if category == KNOWN_GOOD else "neutral"


def sort_key(category: str | None) -> tuple[int, int, str]:
    """Most severe first; 'not hashed' (None) last."""
    return severity_key(category) if category is not None else (5, 0, "")
