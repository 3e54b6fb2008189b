"""Category labels and their severity order.

Known-bad always outranks known-good; among known-bad labels UK CAID A/B/C come first, then the
Project VIC numbers, then any other label a set carries, then the generic ``notable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

UNKNOWN = "unknown"
KNOWN_GOOD = "known-good"
NOTABLE = "notable"

KNOWN_BAD = "known-bad"
KINDS = (KNOWN_BAD, "known-good")

DEFAULT_ORDER: tuple[str, ...] = ("A", "B", "C", "1", "2", "3", "4", "0")


def severity_key(category: str, order: Sequence[str] = DEFAULT_ORDER) -> tuple[int, int, str]:
    """Sort key: smaller is more severe."""
    if category in order:
        return (0, order.index(category), "")
    if category == NOTABLE:
        return (2, 0, "")
    if category == KNOWN_GOOD:
        return (3, 0, "")
    if category == UNKNOWN:
        return (4, 0, "")
    return (1, 0, category)


def most_severe(categories: Iterable[str], order: Sequence[str] = DEFAULT_ORDER) -> str:
    """The winning category of a file, ``unknown`` when there is none."""
    return min(categories, key=lambda c: severity_key(c, order), default=UNKNOWN)


def is_known_bad(category: str | None) -> bool:
    return category not in (None, UNKNOWN, KNOWN_GOOD)
