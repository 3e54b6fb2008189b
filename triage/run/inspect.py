"""Content inspectors: look at a file's bytes during its single read (never a second read).

Each inspector is ``(record, read) -> None`` and fills record fields (``kind``, ``signature``,
``pdq`` ...) from the ``hashing.Read`` the backend returned: ``read.head`` is the first bytes of
the file, ``read.content`` the whole file only when the worker's ``keep`` policy asked for it
(``--pdq``: pictures), else None. Inspectors run inside the worker processes, must never raise
for hostile input, and never write bytes anywhere.

``INSPECTORS`` are the ones every worker runs (the census); ``inspectors(pdq)`` adds the PDQ
inspector of a worker that has ``--pdq`` on, bound to that worker's own ``PdqWorker`` state.
"""

from __future__ import annotations

from collections.abc import Callable

from triage.content.census import inspect_census
from triage.content.hashing import Read
from triage.perceptual.compute import PdqWorker
from triage.records import FileRecord

Inspector = Callable[[FileRecord, Read], None]


def census(record: FileRecord, read: Read) -> None:
    """The census (kind, signature, extension mismatch) from the file's head."""
    inspect_census(record, read.head)


INSPECTORS: list[Inspector] = [census]


def inspectors(pdq: PdqWorker | None) -> list[Inspector]:
    """One worker's inspectors, in order (PDQ reads the census' kind and signature)."""
    return [*INSPECTORS, pdq.inspect] if pdq is not None else list(INSPECTORS)
