"""Stage: a run — the library API (``run_scan``, ``ScanConfig``; what the CLI and lab use),
scheduling, isolated workers, journal/resume, results and the output folder.

    from triage.run import run_scan, ScanConfig

Both are loaded on first use (PEP 562): a spawned worker imports ``triage.run.tasks`` without
loading the scan driver. Imports earlier stages only; ``lab`` and ``cli`` import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from triage.config import ScanConfig
    from triage.run.scan import run_scan

__all__ = ["ScanConfig", "run_scan"]


def __getattr__(name: str) -> Any:
    if name == "run_scan":
        from triage.run.scan import run_scan

        return run_scan
    if name == "ScanConfig":
        from triage.config import ScanConfig

        return ScanConfig
    raise AttributeError(f"module 'triage.run' has no attribute {name!r}")
