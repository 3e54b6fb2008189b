"""Map block hits (device byte offsets) back to what holds them: volume, owning file or
unallocated space, or outside any volume.

TSK knows each file's data runs. Only hit offsets are looked up: one walk per file system that
holds a hit, through the scan's own directory walk (``triage.filesystems.walk.list_directory``: the same
paths and inode strings as ``files.jsonl``, deleted entries and ``$OrphanFiles`` included),
checking each file's non-resident runs against the sorted hit offsets (``numpy.searchsorted``).
Memory is bounded by the hits and the directory queue, never by the file system's size.
A block no file's runs cover is "unallocated" for that file system: unallocated space, or
a deleted file whose runs the file system no longer keeps (ext4 zeroes a deleted inode's
extents; FAT keeps only the first cluster, which TSK follows contiguously).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from triage.filesystems.discovery import discover
from triage.evidence.containers import EvidenceSpec
from triage.evidence.volumes import Volume, find_volumes, fs_type_name
from triage.filesystems.walk import VolumeContext, WalkOptions, WalkStats, list_directory, root_dir

_SPARSE_OR_FILLER = 0x03
_NONRES = 0x02  # TSK_FS_ATTR_NONRES


@dataclass
class Owner:
    """Who holds one hit offset."""

    where: str  # "file" | "unallocated" | "outside any volume" | "volume without file system"
    #             | "volume not examined (why)" | "owner not resolved (file system)"
    volume_offset: int | None = None
    volume: str | None = None  # description
    fs_type: str | None = None
    path: str | None = None
    inode: str | None = None
    deleted: bool | None = None
    file_offset: int | None = None  # byte offset of the hit inside the owning file

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _runs(fs: Any, target: Any, block: int) -> Iterator[tuple[int, int, int]]:
    """(fs byte offset, bytes, file offset) of each stored run of the record's content."""
    try:
        f = target.file if target.file is not None else fs.open_meta(inode=target.addr)
    except OSError:
        return
    for attr in f:
        info = attr.info
        if target.attr_type is not None and (int(info.type), int(info.id)) != (
                target.attr_type, target.attr_id):
            continue
        if int(info.flags) & _NONRES:
            for run in attr:
                if int(run.flags) & _SPARSE_OR_FILLER:
                    continue
                yield int(run.addr) * block, int(run.len) * block, int(run.offset) * block
        if target.attr_type is None:
            break  # the default attribute is the first one TSK lists


def locate(img: Any, spec: EvidenceSpec, offsets: list[int]) -> dict[int, Owner]:
    """Owner of each device byte offset in ``offsets``; what a volume is comes from
    ``discovery.discover``, the answer scan and info use (a BitLocker To Go stick's discovery
    FAT is not an owner: its data is encrypted and was not examined)."""
    result: dict[int, Owner] = {}
    if not offsets:
        return result
    _, volumes = find_volumes(img)
    hits = np.array(sorted(set(offsets)), dtype=np.int64)
    taken = np.zeros(len(hits), dtype=bool)
    for v in sorted(volumes, key=lambda v: v.offset):
        lo, hi = np.searchsorted(hits, [v.offset, v.offset + v.length])
        if lo == hi or taken[lo:hi].all():
            continue
        idx = [i for i in range(lo, hi) if not taken[i]]
        taken[idx] = True
        _locate_in_volume(img, spec, v, hits[idx], result)
    for i in np.flatnonzero(~taken):
        result[int(hits[i])] = Owner("outside any volume")
    return result


def _locate_in_volume(img: Any, spec: EvidenceSpec, v: Volume, hits: np.ndarray,
                      result: dict[int, Owner]) -> None:
    verdict = discover(img, spec, v)
    base = dict(volume_offset=v.offset, volume=v.description)
    if not verdict.tsk:
        if verdict.found:  # e.g. APFS, read by the walk through libfsapfs, not mapped here
            where = f"owner not resolved ({verdict.found[0].fs_type} read without TSK)"
        elif verdict.volume.status in ("no-filesystem", "empty"):
            where = "volume without file system"
        else:  # encrypted (BitLocker To Go included) or broken: its data was not examined
            where = f"volume not examined ({verdict.volume.error or verdict.volume.status})"
        for h in hits:
            result[int(h)] = Owner(where, **base)
        return
    fs = verdict.fs
    block = int(fs.info.block_size)
    fs_type = fs_type_name(fs.info.ftype)  # the walk's NTFS stream logic keys on it
    base["fs_type"] = fs_type
    ctx = VolumeContext("", v.offset, fs_type)
    stats = WalkStats()
    pending = [root_dir(fs)]
    owners: dict[int, Owner] = {}
    while pending:
        d = pending.pop()
        subdirs: list = []
        for rec in list_directory(fs, d, ctx, WalkOptions(), stats, subdirs):
            if rec.target is None:
                continue
            for start, length, file_off in _runs(fs, rec.target, block):
                a = v.offset + start
                lo, hi = np.searchsorted(hits, [a, a + length])
                for i in range(lo, hi):
                    h = int(hits[i])
                    prev = owners.get(h)
                    if prev is not None and not prev.deleted:
                        continue  # an allocated owner wins over a deleted entry's claim
                    owners[h] = Owner("file", path=rec.path,
                                      inode=rec.inode, deleted=rec.deleted,
                                      file_offset=file_off + h - a, **base)
        pending.extend(subdirs)
    for h in hits:
        result[int(h)] = owners.get(int(h)) or Owner("unallocated", **base)
