"""What an evidence item is, beyond its name: recorded when a run starts, checked on resume.

A resume that finds other bytes at the same path must refuse, or one report would hold records
of two images. Hashing the whole image again would cost as much as the scan, so the identity is
the size plus SHA-256 digests of chosen regions: the partition table (first 64 KiB: MBR, GPT
header and entries, or a file system's own boot sector/superblock when there is no table), the
first 64 KiB of each volume (boot sector, ext/HFS+ superblock, NTFS $Boot), the last 4 KiB
(backup GPT) and 16 samples of 4 KiB spread evenly over the media; for E01 also the
acquisition hashes stored in the container. A logical folder is identified by its top-level
listing. About 0.2 MB read per evidence item.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any

HEAD = 64 << 10
SAMPLE = 4096
SAMPLES = 16


def _digest(read: Any, regions: list[tuple[int, int]]) -> str:
    h = hashlib.sha256()
    for offset, length in regions:
        h.update(read(offset, length))
    return h.hexdigest()


def media_identity(read: Any, size: int, volume_offsets: list[int],
                   stored_hashes: dict[str, str] | None = None) -> dict[str, Any]:
    """``read(offset, length) -> bytes`` over the media stream (clamped, b"" when unreadable)."""
    step = max(size // SAMPLES, 1)
    spread = [(i * step, SAMPLE) for i in range(SAMPLES) if i * step < size]
    ident: dict[str, Any] = {
        "size": size,
        "partition_table": _digest(read, [(0, HEAD)]),
        "volumes": {str(o): _digest(read, [(o, HEAD)]) for o in sorted(set(volume_offsets))},
        "samples": _digest(read, [*spread, (max(size - SAMPLE, 0), SAMPLE)]),
    }
    if stored_hashes:
        ident["stored_hashes"] = dict(stored_hashes)
    return ident


def file_identity(path: str) -> dict[str, Any]:
    """Evidence that could not be opened as an image: its size and sampled bytes (regular
    files and block devices only: reading a FIFO would block)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return {"error": e.strerror or str(e)}
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        return {"type": stat.filemode(st.st_mode)[0]}
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return {"error": e.strerror or str(e)}
    try:
        size = os.lseek(fd, 0, os.SEEK_END)

        def read(offset: int, length: int) -> bytes:
            try:
                return os.pread(fd, max(0, min(length, size - offset)), offset)
            except OSError:
                return b""

        return media_identity(read, size, [])
    finally:
        os.close(fd)


def folder_identity(path: str) -> dict[str, Any]:
    """A logical folder: names, types and sizes of its top-level entries."""
    h = hashlib.sha256()
    n = 0
    try:
        entries = sorted(os.scandir(path), key=lambda d: d.name)
        for d in entries:
            st = d.stat(follow_symlinks=False)
            h.update(f"{d.name}\0{stat.filemode(st.st_mode)[0]}\0{st.st_size}\n"
                     .encode("utf-8", "surrogateescape"))
            n += 1
    except OSError as e:
        return {"error": e.strerror or str(e)}
    return {"entries": n, "listing": h.hexdigest()}


_WHAT = {"size": "size", "partition_table": "partition table / first 64 KiB",
         "samples": "sampled sectors", "stored_hashes": "stored acquisition hash",
         "entries": "number of top-level entries", "listing": "top-level listing",
         "type": "file type", "error": "readability"}


def difference(before: dict[str, Any], now: dict[str, Any]) -> str | None:
    """None when the identities agree, else what differs, in words, most telling first."""
    for key in ("size", "type", "error", "stored_hashes", "entries", "partition_table",
                "listing"):
        if before.get(key) != now.get(key):
            if key == "size" and before.get(key) is not None and now.get(key) is not None:
                return f"size was {before[key]:,} bytes, now {now[key]:,}"
            return f"{_WHAT[key]} differs"
    vb, vn = before.get("volumes") or {}, now.get("volumes") or {}
    if vb.keys() != vn.keys():
        return "volume layout differs"
    for offset in vb:
        if vb[offset] != vn[offset]:
            return f"boot sector / superblock of the volume at offset {int(offset):,} differs"
    if before.get("samples") != now.get("samples"):
        return f"{_WHAT['samples']} differ"
    return None
