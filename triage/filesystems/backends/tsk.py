"""The Sleuth Kit backend: every file system pytsk3 opens."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytsk3

from triage.filesystems import ntfs_raw
from triage.filesystems.backends.base import VolumeRef, register
from triage.evidence.containers import direct_reader, open_image
from triage.content.hashing import Keep, Read, hash_content, hash_reads, runs_reader
from triage.records import ReadTarget
from triage.evidence.volumes import is_truncated
from triage.filesystems.walk import list_directory, root_dir

# File systems whose TSK read is exactly the attribute's block runs. Not NTFS or exFAT: bytes
# past the "initialized size" read as zeros, and pytsk3 does not expose that size.
DIRECT_FS = frozenset({"ext2", "ext3", "ext4", "fat12", "fat16", "fat32"})
DIRECT_MIN = int(os.environ.get("TRIAGE_DIRECT_MIN", 16 << 10))  # smaller: one TSK read is cheaper
DIRECT_OFF = bool(os.environ.get("TRIAGE_NO_DIRECT"))  # tests compare both paths
_NONRES = int(pytsk3.TSK_FS_ATTR_NONRES)
_NTFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)
_NOT_PLAIN = int(pytsk3.TSK_FS_ATTR_COMP) | int(pytsk3.TSK_FS_ATTR_ENC) | int(
    pytsk3.TSK_FS_ATTR_SPARSE) | int(pytsk3.TSK_FS_ATTR_RES)


@dataclass
class TskHandle:
    img: Any
    fs: pytsk3.FS_Info
    offset: int  # of the volume in the image, bytes
    truncated: bool = False  # the image ends before the file system does
    checksum_errors: Callable[[], list[tuple[int, int]]] | None = None  # EWF: chunks that failed
    direct: Callable[[int, int], bytes] | None = None  # media reader for large files
    block: int = 0
    last_block: int = 0
    ntfs: bool = False


class TskBackend:
    def open(self, ref: VolumeRef) -> TskHandle:
        img = open_image(ref.evidence)
        fs = pytsk3.FS_Info(img, offset=ref.offset)
        handle = TskHandle(img, fs, ref.offset, is_truncated(fs),
                           getattr(img, "checksum_errors", None), ntfs=ref.fs_type == "ntfs")
        if ref.fs_type in DIRECT_FS and not DIRECT_OFF:
            handle.direct = direct_reader(ref.evidence, img)
            if handle.direct is not None:
                handle.block = int(fs.info.block_size)
                handle.last_block = int(fs.info.last_block_act)
        return handle

    def root(self, handle: TskHandle):
        return root_dir(handle.fs)

    def list_directory(self, handle: TskHandle, *args: Any) -> Any:
        return list_directory(handle.fs, *args)

    def hash_content(self, handle: TskHandle, target: ReadTarget, size: int,
                     algorithms: tuple[str, ...], progress: Callable[[], None],
                     keep: Keep | None = None) -> Read:
        """As ``hashing.hash_content``, plus: libewf hands back the bytes of a chunk that failed
        its checksum, so when the image has met any, a file whose data runs touch one is an
        error, not a hash."""
        runs = _direct_runs(handle, target, size) if handle.direct and size >= DIRECT_MIN else None
        if runs is not None:
            try:
                read = hash_reads(runs_reader(handle.direct, runs), size, algorithms, progress,
                                  keep)
            except OSError as e:
                read = Read(None, "read error: " + " ".join(str(e).split())[:300], 0)
        else:
            read = hash_content(handle.fs, target, size, algorithms, handle.truncated,
                                progress, keep)
            if read.error and handle.ntfs and target.attr_type == _NTFS_DATA:
                raw = _ntfs_raw_hash(handle, target, size, algorithms, progress, keep)
                if raw is not None:
                    return raw
        probe = handle.checksum_errors
        bad = probe() if probe and read.hashes is not None else []
        if bad:
            for start, length in _runs(handle, target):
                for sector, count in bad:
                    lo, hi = sector * 512, (sector + count) * 512
                    if start < hi and lo < start + length:
                        return Read(None, (f"EWF chunk checksum error (sectors {sector}-"
                                           f"{sector + count - 1}): content unreliable"),
                                    read.nbytes)
        return read

    @staticmethod
    def location(handle: TskHandle, target: ReadTarget) -> int | None:
        """Byte offset (within the image) of the file's first data run, for physical order."""
        runs = _runs(handle, target)
        return runs[0][0] if runs else None


def _ntfs_raw_hash(handle: TskHandle, target: ReadTarget, size: int,
                   algorithms: tuple[str, ...], progress: Callable[[], None],
                   keep: Keep | None) -> Read | None:
    """An NTFS entry TSK refuses as a whole (a sparse run longer than the volume) but whose
    unnamed $DATA the walk parsed itself (``ntfs_raw``): read those runs. None when TSK opens
    the entry (its read error stands) or the record is not that plain case."""
    try:
        handle.fs.open_meta(inode=target.addr)
        return None
    except OSError:
        pass
    data = ntfs_raw.unnamed_data(handle.fs, target.addr)
    geo = ntfs_raw.geometry(handle.fs)
    if data is None or geo is None or (data.attr_id, data.size) != (target.attr_id, size):
        return None
    read = ntfs_raw.reader(handle.img.read, handle.offset, geo.cluster, data)
    try:
        return hash_reads(read, size, algorithms, progress, keep)
    except OSError as e:
        return Read(None, "read error: " + " ".join(str(e).split())[:300], 0)


def _direct_runs(handle: TskHandle, target: ReadTarget, size: int
                 ) -> list[tuple[int, int]] | None:
    """The file's content as (media offset, length) runs when reading them straight from the
    media gives exactly what TSK's own read would: one non-resident, uncompressed, unencrypted
    attribute whose runs are plain (no sparse or filler run), contiguous in file order, inside
    the file system and covering ``size``. Anything else (None) is read through TSK."""
    try:
        f = target.file or handle.fs.open_meta(inode=target.addr)
        attrs = list(f)
        if target.attr_type is None:
            if len(attrs) != 1:
                return None  # which attribute TSK reads by default is TSK's business
            attr = attrs[0]
        else:
            attr = next((a for a in attrs if (int(a.info.type), int(a.info.id)) == (
                target.attr_type, target.attr_id)), None)
            if attr is None:
                return None
        flags = int(attr.info.flags)
        if flags & _NOT_PLAIN or not flags & _NONRES:
            return None
        block, base, last = handle.block, handle.offset, handle.last_block
        runs, expect = [], 0
        for run in attr:
            addr, length = int(run.addr), int(run.len)
            if int(run.flags) or int(run.offset) != expect or addr + length - 1 > last:
                return None
            if runs and runs[-1][0] + runs[-1][1] == base + addr * block:  # coalesce
                runs[-1] = (runs[-1][0], runs[-1][1] + length * block)
            else:
                runs.append((base + addr * block, length * block))
            expect += length
    except OSError:
        return None
    return runs if expect * block >= size else None


def _runs(handle: TskHandle, target: ReadTarget) -> list[tuple[int, int]]:
    """(image byte offset, length) of the target attribute's non-sparse data runs."""
    fs = handle.fs
    block = int(fs.info.block_size)
    base = handle.offset
    out = []
    try:
        for attr in fs.open_meta(inode=target.addr):
            info = attr.info
            if target.attr_type is not None and (int(info.type), int(info.id)) != (
                    target.attr_type, target.attr_id):
                continue
            for run in attr:
                if not int(run.flags) & 0x03:  # not sparse or filler
                    out.append((base + int(run.addr) * block, int(run.len) * block))
            break
    except OSError:
        pass
    return out


register("tsk", TskBackend())
