"""The Sleuth Kit backend: every file system pytsk3 opens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytsk3

from triage.backends import VolumeRef, register
from triage.evidence import open_image
from triage.hashing import hash_content
from triage.records import ReadTarget
from triage.volumes import is_truncated
from triage.walk import list_directory, root_dir


@dataclass
class TskHandle:
    img: Any
    fs: pytsk3.FS_Info
    offset: int  # of the volume in the image, bytes
    truncated: bool = False  # the image ends before the file system does
    checksum_errors: Callable[[], list[tuple[int, int]]] | None = None  # EWF: chunks that failed


class TskBackend:
    def open(self, ref: VolumeRef) -> TskHandle:
        img = open_image(ref.evidence)
        fs = pytsk3.FS_Info(img, offset=ref.offset)
        return TskHandle(img, fs, ref.offset, is_truncated(fs), getattr(img, "checksum_errors", None))

    def root(self, handle: TskHandle):
        return root_dir(handle.fs)

    def list_directory(self, handle: TskHandle, *args: Any) -> Any:
        return list_directory(handle.fs, *args)

    def hash_content(self, handle: TskHandle, target: ReadTarget, size: int,
                     algorithms: tuple[str, ...], progress: Callable[[], None]
                     ) -> tuple[dict[str, str] | None, str | None, int]:
        """As ``hashing.hash_content``, plus: libewf hands back the bytes of a chunk that failed
        its checksum, so when the image has met any, a file whose data runs touch one is an
        error, not a hash."""
        hashes, error, nbytes = hash_content(handle.fs, target, size, algorithms, progress,
                                             handle.truncated)
        probe = handle.checksum_errors
        bad = probe() if probe and hashes is not None else []
        if bad:
            for start, length in _runs(handle, target):
                for sector, count in bad:
                    lo, hi = sector * 512, (sector + count) * 512
                    if start < hi and lo < start + length:
                        return None, (f"EWF chunk checksum error (sectors {sector}-"
                                      f"{sector + count - 1}): content unreliable"), nbytes
        return hashes, error, nbytes

    @staticmethod
    def location(handle: TskHandle, target: ReadTarget) -> int | None:
        """Byte offset (within the image) of the file's first data run, for physical order."""
        runs = _runs(handle, target)
        return runs[0][0] if runs else None


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
