"""What the terminal and report.html both tell the reader, in the same words.

One place for the sentences that say what was *not* done (a volume not examined and why, a
scan stopped early, a scan with no known-bad set), so the terminal and the report can never
disagree. Raw library messages (TSK's) come after the words, never instead of them.
"""

from __future__ import annotations

from typing import Any

EXAMINED = ("scanned", "empty")

# volume status -> why it was not (fully) examined, in words an examiner can act on
STATUS_WORDS = {
    "no-filesystem": "no file system that triage can read was found (unformatted, damaged, or "
                     "a type The Sleuth Kit does not know)",
    "encrypted": "encrypted, or random data indistinguishable from encryption or wiping: "
                 "cannot be read without a key",
    "incomplete": "only partly examined: some directories or files could not be read",
    "error": "could not be read",
    "stopped": "not fully examined: the scan ended before it was (stopped at the first "
               "hit, interrupted, or stopped by an error; the note says which)",
    "pending": "not examined: the scan ended before reaching it",
}

# census table: a file with no content bytes (empty, or not read) has no kind, and one whose
# content was not hashed has no category; summary.json says "none" for both, on screen they get
# distinct names
KIND_NONE = "(no bytes: empty or not read)"
CATEGORY_NONE = "(not hashed)"


def census_kind(kind: str) -> str:
    return KIND_NONE if kind == "none" else kind


def census_category(category: str) -> str:
    return CATEGORY_NONE if category == "none" else category


def volume_reason(v: dict[str, Any]) -> tuple[str, str]:
    """(words, detail): why a volume was not (fully) examined, then the raw message/notes."""
    status = str(v.get("status"))
    words = STATUS_WORDS.get(status, f"status {status}")
    detail = v.get("error") or "; ".join(v.get("notes") or [])
    return words, str(detail or "")


def known_bad_sets(summary: dict[str, Any]) -> int:
    """Known-bad hash sets, PDQ and vPDQ sets the run matched against."""
    sets = [h for h in summary.get("hashsets") or [] if h.get("kind") == "known-bad"]
    return (len(sets) + len(summary.get("pdq_sets") or [])
            + len(summary.get("vpdq_sets") or []))


NO_KNOWN_BAD = ("no known-bad hash set was given (--hashset): no file could match, so "
                "\"0 known-bad files\" says nothing about this evidence")


def stopped_early(summary: dict[str, Any]) -> str | None:
    """The sentence for a run that --stop-on-first-hit ended, naming what was left."""
    if not summary.get("stopped_early"):
        return None
    left = [f"{ev.get('path')} @ {v.get('offset'):,}" for ev in summary.get("evidence") or []
            for v in ev.get("volumes") or [] if v.get("status") == "stopped"]
    what = ("volumes not fully examined: " + ", ".join(left)) if left else \
        "every volume had been examined"
    return ("the scan stopped early at the first known-bad file (--stop-on-first-hit): "
            f"{what}; files not yet reached were neither listed nor hashed "
            "(triage scan --resume DIR examines the rest)")
