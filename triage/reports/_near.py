"""PDQ near matches as the reports show them: apart from exact matches, always "needs review".

A record's ``matches`` mixes exact (cryptographic) matches and PDQ near matches
(``"algorithm": "pdq"`` with a ``distance``). Reports must never let a near match pass for a
hit, so every report splits them here, once, the same way.
"""

from __future__ import annotations

from typing import Any

PDQ = "pdq"
NEAR_LABEL = "Near-duplicate (PDQ), needs review: no exact match"
VIDEO_LABEL = "Near-duplicate video (vPDQ), needs review: no exact match"


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


# --- videos (--vpdq): ``vpdq_matches``, apart from ``matches`` (perceptual.video) ---


def video_matches(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A video's near matches: set videos (``"algorithm": "vpdq"``) and frames near a set
    picture (``"pdq-frame"``), as the scan wrote them."""
    found = record.get("vpdq_matches")
    return [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []


def best_share(record: dict[str, Any]) -> float | None:
    """The highest share of a video's frames matching one set video (``query_pct``)."""
    shares = [m.get("query_pct") for m in video_matches(record)
              if isinstance(m.get("query_pct"), (int, float))]
    return max(shares) if shares else None


def clock(seconds: Any) -> str:
    """03:12 (or 1:03:12): a time in a video as people write it."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return "?"
    s = int(seconds)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


def describe_video(m: dict[str, Any]) -> str:
    """One video near match in the words of hits.csv and report.html."""
    if m.get("algorithm") == "pdq-frame":
        return (f"needs review: frame at {clock(m.get('at'))} is within PDQ distance "
                f"{m.get('distance')} of a picture of {m.get('hashset')} ({m.get('category')})"
                f"; {m.get('frames')} frame(s) near it")
    spans = m.get("ranges") if isinstance(m.get("ranges"), list) else []
    shown = ", ".join(f"{clock(r[0])}-{clock(r[-1])}" for r in spans[:5]
                      if isinstance(r, list) and r)
    more = " ..." if len(spans) > 5 else ""
    return (f"needs review: vPDQ {m.get('query_pct')}% of this video's frames match "
            f"{m.get('target_pct')}% of {m.get('video')} in {m.get('hashset')} "
            f"({m.get('category')}), at {shown}{more}")
