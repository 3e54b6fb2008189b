"""Human labels of categories for reports (the terminal and the files keep the raw codes).

Used until ``triage.hashsets`` exposes category profiles of its own; then ``label`` asks those
first. Labels are deliberately neutral descriptions of the scheme, never of content.
"""

from __future__ import annotations

from typing import Any

from triage.categories import KNOWN_GOOD, NOTABLE, UNKNOWN, is_known_bad, severity_key

LABELS: dict[str, str] = {
    "A": "UK CAID Category A (most serious)",
    "B": "UK CAID Category B",
    "C": "UK CAID Category C",
    "1": "Project VIC 1: CAM (child abuse material)",
    "2": "Project VIC 2: Child exploitive / age difficult",
    "3": "Project VIC 3: CGI / animation",
    "4": "Project VIC 4: Comparison",
    "0": "Project VIC 0: Non-pertinent",
    NOTABLE: "Notable (known-bad set without a category)",
    KNOWN_GOOD: "Known good",
    UNKNOWN: "Not in any hash set",
}


def _profile_label(category: str) -> str | None:
    """A label from hash-set profiles, if that module offers them (it may later)."""
    try:
        from triage import hashsets
    except ImportError:  # pragma: no cover
        return None
    lookup: Any = getattr(hashsets, "category_label", None)
    if callable(lookup):
        try:
            found = lookup(category)
        except Exception:  # a profile problem must never stop a report
            return None
        return found if isinstance(found, str) and found else None
    return None


def label(category: str | None) -> str:
    if category is None:
        return "Not hashed"
    return _profile_label(category) or LABELS.get(category, f"Category {category}")


def severity(category: str | None) -> str:
    """CSS class / wording of how a category is shown: bad, good or neutral."""
    if is_known_bad(category):
        return "bad"
    return "good" if category == KNOWN_GOOD else "neutral"


def sort_key(category: str | None) -> tuple[int, int, str]:
    return severity_key(category if category is not None else UNKNOWN) if category else (5, 0, "")
