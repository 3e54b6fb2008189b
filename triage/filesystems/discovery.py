"""What each volume is: the one answer every command uses (``scan``, ``info``, and what comes).

``discover`` looks at one entry of the volume table (``volumes.find_volumes``) and decides: a
file system TSK opens (readable, or truncated: "incomplete"), a BitLocker To Go stick (TSK
opens its FAT discovery volume, but the data is encrypted: "encrypted", never scanned), an
all-zero partition ("empty"), an APFS container (its volumes, each readable, locked or broken),
another encrypted volume (BitLocker, LUKS, FileVault 2, random-looking data), a folder, or no
file system at all. Why one function: when ``scan`` and ``info`` decided separately, ``info``
called a BitLocker To Go stick encrypted while ``scan`` listed its discovery volume and could
report "complete, 0 hits, exit 0" for data it never examined.

Nothing here mutates the table entry it is given: the verdict carries a new ``Volume``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytsk3

from triage.filesystems.backends import Found, probe
from triage.filesystems.backends.encrypted import TO_GO_NOTE, bitlocker_to_go
from triage.evidence.containers import EvidenceSpec
from triage.evidence.volumes import (
    EMPTY_CHECK_LIMIT,
    Volume,
    all_zero,
    fs_type_name,
    is_truncated,
    read_at,
    tsk_message,
)

# Volume.status values a verdict may carry (scan adds "incomplete"/"stopped" while it runs).
STATUSES = ("scanned", "incomplete", "empty", "no-filesystem", "encrypted", "error")


@dataclass(frozen=True)
class Verdict:
    """One volume-table entry, decided. ``volume`` is a new ``Volume`` whose status, file
    system type, error and notes say what it is; ``fs`` is the TSK file system when TSK opened
    it (labels, sizes, allocation); ``found`` are the file systems inside it that a prober
    found (the volumes of an APFS container, a folder), each with its own status."""

    volume: Volume
    fs: Any = None  # pytsk3.FS_Info
    encryption: str | None = None  # the scheme, when the volume itself is encrypted
    found: tuple[Found, ...] = field(default_factory=tuple)

    @property
    def tsk(self) -> bool:
        """Scanned whole by the TSK backend (a file system TSK opened, not encrypted)."""
        return self.fs is not None and self.volume.status in ("scanned", "incomplete")

    def entries(self) -> list[tuple[Volume, Found | None]]:
        """What a scan lists for this entry: the file systems found inside it when at least one
        can be scanned (each as its own volume; a locked or broken one beside them keeps its
        status), else the entry itself."""
        if not any(f.status == "scanned" for f in self.found):
            return [(self.volume, None)]
        return [(replace(self.volume, fs_type=f.fs_type, description=f.description,
                         status=f.status, error=f.error, notes=list(f.notes)), f)
                for f in self.found]


def discover(img: Any, spec: EvidenceSpec, volume: Volume) -> Verdict:
    """Decide what ``volume`` of ``img`` (None for a folder) is. Reads metadata and, for
    volumes TSK cannot open, a few sampled MiB; hashes nothing."""
    v = replace(volume, notes=list(volume.notes))
    if v.status == "error":  # a partition table entry that points nowhere: nothing to open
        return Verdict(v)
    if img is None:  # a folder: one logical file system, found by its prober
        v.status = "no-filesystem"
        return _probed(img, spec, v)
    try:
        fs = pytsk3.FS_Info(img, offset=v.offset)
    except (OSError, RuntimeError) as e:
        if v.length <= EMPTY_CHECK_LIMIT and all_zero(img, v.offset, v.length):
            v.status = "empty"
            v.notes.append("no file system: the partition holds only zero bytes")
            return Verdict(v)
        v.status, v.error = "no-filesystem", f"no file system TSK can open: {tsk_message(e)}"
        return _probed(img, spec, v)
    v.fs_type = fs_type_name(fs.info.ftype)
    v.status = "scanned"
    if bitlocker_to_go(read_at(img, v.offset, 512)):
        v.status, v.error = "encrypted", "encrypted (BitLocker To Go), not scanned"
        v.notes.append(TO_GO_NOTE)
        return Verdict(v, fs, "BitLocker To Go")
    if is_truncated(fs):
        v.status = "incomplete"
        v.notes.append(
            f"file system spans {fs.info.last_block + 1:,} blocks but the evidence holds only "
            f"{fs.info.last_block_act + 1:,}: files stored past the end are reported unreadable")
    return Verdict(v, fs)


def _probed(img: Any, spec: EvidenceSpec, v: Volume) -> Verdict:
    p = probe(img, spec, v)
    if p is None:
        return Verdict(v)
    if p.status is not None:
        v.status = p.status
        v.error = p.error
    elif p.error is not None:
        v.error = p.error
    v.fs_type = p.fs_type or v.fs_type
    v.notes.extend(p.notes)
    return Verdict(v, None, p.encryption, p.found)
