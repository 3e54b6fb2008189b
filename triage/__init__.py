"""triage: fast forensic triage of disk images against known-file hash sets.

The library API is ``triage.run`` (``from triage.run import run_scan, ScanConfig``), what the
CLI uses; ``triage.run_scan`` and ``triage.ScanConfig`` name the same objects, loaded on first
use (PEP 562) so ``import triage`` stays cheap and no stage imports the package back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from triage.version import __version__

if TYPE_CHECKING:
    from triage.run import ScanConfig, run_scan

__all__ = ["ScanConfig", "__version__", "run_scan"]


def __getattr__(name: str) -> Any:
    if name in ("run_scan", "ScanConfig"):
        import triage.run

        return getattr(triage.run, name)
    raise AttributeError(f"module 'triage' has no attribute {name!r}")
