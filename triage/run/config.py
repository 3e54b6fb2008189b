"""What a scan is asked to do, and where it reports progress: shared by the API and the
scheduler."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from triage.records import DEFAULT_ALGORITHMS

ORDERS = ("walk", "smallest", "physical", "pictures-first")


@dataclass
class ScanConfig:
    evidence: list[str]
    hashsets: list[str] = field(default_factory=list)
    known_good: list[str] = field(default_factory=list)
    out: Path | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    workers: int = os.cpu_count() or 1
    force: bool = False
    resume: bool = False
    lenient: bool = False
    include_orphans: bool = True
    max_orphans: int = 1_000_000
    verify_image: bool = False  # also hash the whole media and compare with the stored hash
    order: str = "walk"  # walk | smallest | physical | pictures-first
    formats: str | None = None  # derived reports (csv, html, dfxml); None = all
    stop_on_first_hit: bool = False
    pdq: bool = False  # PDQ perceptual hash of every picture (implied by pdq_sets)
    pdq_threshold: int = 31  # near match: Hamming distance <= this
    pdq_sets: list[str] = field(default_factory=list)  # PDQ hash sets (list, CSV, VICS)
    vpdq: bool = False  # vPDQ of every video (implies pdq; implied by vpdq_sets)
    vpdq_interval: float = 1.0  # seconds between hashed frames
    vpdq_sets: list[str] = field(default_factory=list)  # vPDQ hash files/folders [:CATEGORY]
    vpdq_query_pct: float = 80.0  # share of a video's frames that must match (reference: 80)
    vpdq_target_pct: float = 0.0  # share of the set video's frames matched (reference: 0)
    size_filter: bool = False  # skip files whose size no known-bad set declares
    blockset: str | None = None  # scan --blockset: hash every media block against this .tbs
    fs_timeout: float = 300.0  # seconds without progress listing a directory
    read_timeout: float = 120.0  # seconds without progress reading one file
    file_timeout: float = 0.0  # seconds one file may take in all; 0: derived from its size
    case: str | None = None  # free-text provenance, recorded in every output
    examiner: str | None = None
    exhibit: str | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


class ProgressSink:
    """Receives progress; the CLI passes a terminal bar, a lab script may pass its own."""

    def add_total(self, nbytes: int) -> None: ...

    def advance(self, nbytes: int, files: int = 1) -> None: ...

    def status(self, text: str) -> None: ...

    def estimate(self, nbytes: int) -> None:
        """Bytes the evidence's file systems say they hold (allocated), known before the walk:
        the bar's total until the walk has found more."""

    def listing_done(self) -> None:
        """Every directory is listed: the bytes found are now the exact total."""

    def note(self, text: str) -> None:
        """A sentence for the examiner (resume state), shown even without a bar."""

    def warn(self, text: str) -> None:
        """Something that limits what the run can tell (no known-bad set, too many workers):
        shown even with --quiet."""
