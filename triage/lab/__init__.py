"""Lab scale: many exhibits on many machines through Celery with a Redis broker.

Library API, usable from a lab's own scripts without the CLI (Celery is imported only when a
function that talks to the queue runs, so ``triage scan`` never needs it)::

    from triage import lab

    done = lab.submit("/cases/C-1", ["/evidence/phone.img", "/evidence/laptop.E01"],
                      ["/sets/caid.json"], case="C-1")
    lab.wait("/cases/C-1")                     # or poll lab.status("/cases/C-1")
    view = lab.results("/cases/C-1")           # the case view (case.json's content)
    lab.rematch("/cases/C-1", ["/sets/caid-2027-01.json"], local=True)

Modules: ``settings`` (broker URL, timeouts), ``case`` (the case folder and its manifest),
``app`` (the Celery app and tasks), ``worker`` (one exhibit on a worker: lease, scan/resume),
``client`` (submit, status), ``caseview`` (case.json, case.html), ``rematching``, ``cli``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["ScanOptions", "rematch", "results", "status", "submit", "wait"]


def submit(case_dir: str | os.PathLike[str], evidence: list[str], hashsets: list[str] = (),
           known_good: list[str] = (), **kwargs: Any) -> Any:
    """Queue one scan per evidence item into ``case_dir`` (see ``client.submit``)."""
    from triage.lab.client import submit as _submit

    return _submit(case_dir, evidence, hashsets, known_good, **kwargs)


def status(case_dir: str | os.PathLike[str], broker: str | None = None) -> dict[str, Any]:
    """Every exhibit's state (see ``client.status``)."""
    from triage.lab.client import status as _status

    return _status(case_dir, broker)


def wait(case_dir: str | os.PathLike[str], broker: str | None = None,
         timeout: float | None = None) -> dict[str, Any]:
    """``status`` once every exhibit is done or failed."""
    from triage.lab.client import wait as _wait

    return _wait(case_dir, broker, timeout)


def results(case_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The case view (what ``triage case`` writes to case.json), built from the output files."""
    from triage.lab.caseview import build

    return build(Path(case_dir))


def rematch(target: str | os.PathLike[str], hashsets: list[str], known_good: list[str] = (),
            **kwargs: Any) -> dict[str, Any]:
    """Re-match a run's or a case's records against new hash sets (see ``rematching.rematch``)."""
    from triage.lab.rematching import rematch as _rematch

    return _rematch(target, list(hashsets), list(known_good), **kwargs)


def __getattr__(name: str) -> Any:
    if name == "ScanOptions":
        from triage.config import ScanOptions

        return ScanOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
