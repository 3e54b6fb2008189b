"""What every backend shares: the volume reference, the backend protocol and registry, and the
probers' result types. Backend modules import this, never the package ``__init__`` (which
imports them to register them): no import circle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from triage.evidence.containers import EvidenceSpec
from triage.content.hashing import Keep, Read
from triage.records import FileRecord, ReadTarget
from triage.filesystems.walk import DirRef, VolumeContext, WalkOptions, WalkStats


@dataclass(frozen=True)
class VolumeRef:
    """Picklable: everything a worker needs to reopen one volume."""

    evidence: EvidenceSpec
    offset: int
    fs_type: str
    index: int  # position of the volume in the run
    kind: str = "tsk"  # backend name
    sub: int = 0  # backend-specific, e.g. the volume number inside an APFS container


class Backend(Protocol):
    def open(self, ref: VolumeRef) -> Any: ...

    def root(self, handle: Any) -> DirRef: ...

    def list_directory(self, handle: Any, d: DirRef, vol: VolumeContext, options: WalkOptions,
                       stats: WalkStats, subdirs: list[DirRef], start: int,
                       limit: int | None) -> Iterator[FileRecord]: ...

    def hash_content(self, handle: Any, target: ReadTarget, size: int,
                     algorithms: tuple[str, ...], progress: Callable[[], None],
                     keep: Keep | None = None) -> Read:
        """Read the file once (through ``hashing.hash_reads``) and return what was read:
        hashes, error, bytes, head, and the content when ``keep(head)``."""


BACKENDS: dict[str, Backend] = {}


@dataclass(frozen=True)
class Found:
    """A file system a prober found where TSK opened none (e.g. the volumes of an APFS
    container): the scheduler scans each like a TSK volume, through backend ``kind``, unless
    its ``status`` says it cannot be read (a locked APFS volume: "encrypted")."""

    kind: str
    sub: int
    fs_type: str
    root: DirRef | None
    description: str
    status: str = "scanned"  # or e.g. "encrypted" / "error": listed, not scanned
    error: str | None = None
    encryption: str | None = None  # the scheme, when status is "encrypted"
    label: str | None = None  # the file system's own name (an APFS volume's), for ``info``
    size: int | None = None  # bytes the file system says it holds, for ``info``
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probed:
    """What a prober found in a volume TSK could not open: a new status for the volume itself
    (``None``: unchanged), why, the scheme when encrypted, and the file systems inside it to
    scan (``found``). Probers return this and never change the volume they are shown, so every
    command (``triage.filesystems.discovery``) gets the same answer from them."""

    status: str | None = None
    error: str | None = None
    fs_type: str | None = None
    encryption: str | None = None
    notes: tuple[str, ...] = ()
    found: tuple[Found, ...] = ()


# (image, evidence, volume) -> what the prober found, or None when the volume is not its kind.
# Probers run in the main process, in order, only for volumes TSK could not open (and for a
# folder, which has no image); the first that answers wins. Only ``triage.filesystems.discovery`` calls them.
Prober = Callable[[Any, EvidenceSpec, Any], "Probed | None"]
PROBERS: list[Prober] = []


def probe(img: Any, spec: EvidenceSpec, volume: Any) -> Probed | None:
    for prober in PROBERS:
        found = prober(img, spec, volume)
        if found is not None:
            return found
    return None


def register(name: str, backend: Backend) -> None:
    BACKENDS[name] = backend


def backend(name: str) -> Backend:
    return BACKENDS[name]
