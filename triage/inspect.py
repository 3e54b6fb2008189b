"""Content inspectors: look at a file's bytes during its single read (never a second read).

Each inspector is ``(record, head, content) -> None`` and fills record fields (``kind``,
``signature``, ``pdq`` ...). ``head`` is the first bytes of the file; ``content`` is the whole
file only when ``hashing.Digest.keep_all`` asked for it, else None. Inspectors run inside the
worker processes, must never raise for hostile input, and never write bytes anywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from triage.records import FileRecord

Inspector = Callable[[FileRecord, bytes, "bytearray | None"], None]

INSPECTORS: list[Inspector] = []

# Registration (order matters: PDQ reads the census' kind and signature).
from triage.census import inspect_census  # noqa: E402
from triage.pdq import inspect_pdq  # noqa: E402

INSPECTORS.append(inspect_census)
INSPECTORS.append(inspect_pdq)  # a no-op unless pdq.start_worker() turned --pdq on
