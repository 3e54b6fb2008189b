"""Finishing a record: match it, count it, encode it as one files.jsonl line.

Runs inside the workers (so the main process only writes bytes) and, for records a worker could
not finish, in the main process; both share this one code path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from triage.matching.categories import is_known_bad
from triage.content.census import census_key
from triage.matching.exact import HashIndex
from triage.records import FileRecord, Totals, is_limit, strict_json

if TYPE_CHECKING:
    from triage.perceptual.compute import PdqWorker

SKIPPED_SIZE = "skipped: size-not-in-set"


@dataclass
class Tally:
    """Counters that add up across tasks, volumes and the whole run."""

    files: int = 0
    bytes_hashed: int = 0
    deleted: int = 0
    errors: int = 0  # content could not be read
    errors_allocated: int = 0  # ... of a file that is not deleted (makes the run incomplete)
    no_content: int = 0  # names without metadata, sparse maps: nothing there to read
    known_bad_files: int = 0
    skipped: int = 0  # --size-filter: listed, not hashed (no known-bad set holds that size)
    skipped_bytes: int = 0
    listed_bytes: int = 0  # content bytes found by the walk (progress total)
    near_duplicates: int = 0  # files with a PDQ near match (never a category: needs review)
    internal_errors: int = 0  # defects of this tool met on a file or directory (pool docstring)
    perceptual_limited: int = 0  # PDQ/vPDQ asked for but stopped by a limit (records.LIMIT)
    first_internal_error: str | None = None  # "path: TypeError: ... (at triage/x.py:12)"
    categories: Counter[str] = field(default_factory=Counter)
    census: Counter[str] = field(default_factory=Counter)  # "kind/category" -> files

    def add(self, other: "Tally") -> None:
        for name in ("files", "bytes_hashed", "deleted", "errors", "errors_allocated",
                     "no_content", "known_bad_files", "skipped", "skipped_bytes",
                     "listed_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.near_duplicates += other.near_duplicates
        self.internal_errors += other.internal_errors
        self.perceptual_limited += other.perceptual_limited
        self.first_internal_error = self.first_internal_error or other.first_internal_error
        self.categories.update(other.categories)
        self.census.update(other.census)

    def totals(self) -> dict[str, int]:
        """summary.json ``totals`` (``records.Totals``)."""
        return msgspec.structs.asdict(Totals(
            files=self.files, bytes_hashed=self.bytes_hashed, deleted=self.deleted,
            errors=self.errors, no_content=self.no_content,
            known_bad_files=self.known_bad_files, skipped_size_filter=self.skipped,
            skipped_bytes=self.skipped_bytes, near_duplicates=self.near_duplicates,
            internal_errors=self.internal_errors, perceptual_limited=self.perceptual_limited))

    def internal(self, where: str, message: str) -> None:
        """Count one internal error (a defect, never a result), keeping the first message."""
        self.internal_errors += 1
        if self.first_internal_error is None:
            self.first_internal_error = f"{where}: {message}"


def finish_record(record: FileRecord, index: HashIndex, algorithms: tuple[str, ...],
                  tally: Tally, pdq: PdqWorker | None = None) -> bytes:
    """Match, count and encode one record; returns its files.jsonl line (UTF-8, newline).
    ``pdq``: the worker's ``--pdq`` state, for near matches (None: PDQ is off)."""
    if record.hashes:
        record.category, record.matches = index.match(record.hashes, record.size)
        near = pdq.near_matches(record.pdq, record.pdq_quality) if pdq is not None else []
        if near:  # listed after the exact matches; the category stays the exact one
            record.matches = record.matches + near
            record.pdq_distance = near[0]["distance"]
        video = pdq.video_matches(record) if pdq is not None else []
        if video:  # videos: their own field, never a category (perceptual.video)
            record.vpdq_matches = video
        if near or video:
            tally.near_duplicates += 1
        tally.categories[record.category] += 1
        if is_known_bad(record.category):
            tally.known_bad_files += 1
    if is_limit(record.pdq_error) or is_limit(record.vpdq_error):
        tally.perceptual_limited += 1
    tally.files += 1
    tally.census[census_key(record.kind, record.category)] += 1
    if record.deleted:
        tally.deleted += 1
    if record.error == SKIPPED_SIZE:
        tally.skipped += 1
        tally.skipped_bytes += record.size or 0
    elif record.error:
        if record.target is None and not record.unreadable:
            tally.no_content += 1
        else:
            tally.errors += 1
            if not record.deleted:
                tally.errors_allocated += 1
    return encode_line(record.to_dict(algorithms))


_encode = msgspec.json.Encoder().encode  # the same bytes as json.dumps(compact), ~10x faster


def encode_line(data: dict) -> bytes:
    """One files.jsonl line, always strict UTF-8 JSON (RFC 8259 / I-JSON: no lone surrogate).

    A name with bytes that are not UTF-8 is held with ``surrogateescape`` (lone U+DC80..U+DCFF),
    which UTF-8 cannot carry: such a line gets a readable ``path`` (U+FFFD for each undecodable
    sequence) plus ``path_bytes``, the exact bytes in base64; any other text with a lone
    surrogate (evidence path, message) gets U+FFFD."""
    try:
        return _encode(data) + b"\n"
    except UnicodeEncodeError:
        return _encode(strict_json(data)) + b"\n"


def encode_lines(lines: list[bytes]) -> bytes:
    return b"".join(lines)
