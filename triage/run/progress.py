"""Where a scan reports progress: the CLI passes a terminal bar, a lab worker its own."""

from __future__ import annotations


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
