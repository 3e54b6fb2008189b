"""File-system backends: how a volume is listed and how a file's content is read.

Each backend registers under a name carried by ``VolumeRef.kind``; workers look it up here, so
a new source (APFS through libfsapfs, a logical folder) plugs in without touching the
scheduler. A backend's handle is opened once per worker process and cached.
"""

from __future__ import annotations

from triage.filesystems.backends import (
    apfs,
    encrypted,
    logical,
    tsk,
)
from triage.filesystems.backends.base import (
    BACKENDS,
    PROBERS,
    Backend,
    Found,
    Probed,
    Prober,
    VolumeRef,
    backend,
    probe,
    register,
)

__all__ = ["BACKENDS", "PROBERS", "Backend", "Found", "Probed", "Prober", "VolumeRef", "apfs",
           "backend", "encrypted", "logical", "probe", "register", "tsk"]
