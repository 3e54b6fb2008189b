"""How many bytes a file system says it uses, read from its own allocation metadata.

The default ``--order walk`` hashes while it lists, so the bytes the walk has found are known
only at the end. The progress bar needs a total from the start: ext2/3/4 keep a free-block count
in the superblock, FAT has its allocation table, exFAT its allocation bitmap, NTFS its
``$Bitmap``, HFS+ a free-block count in its volume header. The figure includes the
file system's own metadata, so it is an upper bound the bar refines as the walk goes (see
``ProgressSink.estimate``). Nothing here is evidential: it only feeds the bar and its ETA.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

CHUNK = 4 << 20


def allocated_bytes(img: Any, offset: int, fs: Any) -> int | None:
    """Bytes in use on the file system at ``offset``; None when its type keeps no cheap count.
    Never raises: a damaged superblock only costs the estimate."""
    try:
        ftype = int(fs.info.ftype)
        import pytsk3

        if ftype & int(pytsk3.TSK_FS_TYPE_EXT_DETECT):
            return _ext(img, offset)
        if ftype == int(pytsk3.TSK_FS_TYPE_EXFAT):
            return _exfat(img, offset, fs)
        if ftype & int(pytsk3.TSK_FS_TYPE_HFS_DETECT):
            return _hfs(img, offset)
        if ftype & int(pytsk3.TSK_FS_TYPE_FAT_DETECT):
            return _fat(img, offset)
        if ftype & int(pytsk3.TSK_FS_TYPE_NTFS_DETECT):
            return _ntfs(fs)
        if ftype & int(pytsk3.TSK_FS_TYPE_ISO9660_DETECT):
            return int(fs.info.block_count) * int(fs.info.block_size)
    except Exception:  # noqa: BLE001 - an estimate, never a reason to stop
        return None
    return None


def _ext(img: Any, offset: int) -> int | None:
    sb = img.read(offset + 1024, 1024)
    if len(sb) < 1024 or sb[56:58] != b"\x53\xef":
        return None
    blocks, free = struct.unpack_from("<I", sb, 4)[0], struct.unpack_from("<I", sb, 12)[0]
    block_size = 1024 << struct.unpack_from("<I", sb, 24)[0]
    if struct.unpack_from("<I", sb, 0x60)[0] & 0x80:  # INCOMPAT_64BIT: high halves
        blocks |= struct.unpack_from("<I", sb, 0x150)[0] << 32
        free |= struct.unpack_from("<I", sb, 0x158)[0] << 32
    return max(0, blocks - free) * block_size if free <= blocks else None


def _fat(img: Any, offset: int) -> int | None:
    bs = img.read(offset, 512)
    if len(bs) < 512:
        return None
    bps, spc, reserved, nfats, root_entries, tot16 = struct.unpack_from("<HBHBHH", bs, 11)
    fatsz = struct.unpack_from("<H", bs, 22)[0] or struct.unpack_from("<I", bs, 36)[0]
    total = tot16 or struct.unpack_from("<I", bs, 32)[0]
    if not bps or not spc or not fatsz:
        return None
    root_sectors = (root_entries * 32 + bps - 1) // bps
    data = total - reserved - nfats * fatsz - root_sectors
    clusters = data // spc
    cluster = bps * spc
    fat_at = offset + reserved * bps
    if clusters < 4085:  # FAT12: 1.5 bytes per entry
        raw = img.read(fat_at, (clusters + 2) * 3 // 2 + 2)
        used = 0
        for n in range(2, clusters + 2):
            i = n * 3 // 2
            if i + 1 >= len(raw):
                break
            v = raw[i] | raw[i + 1] << 8
            used += ((v >> 4) if n & 1 else (v & 0xFFF)) != 0
        return used * cluster
    if clusters < 65525:  # FAT16
        table = np.frombuffer(img.read(fat_at, (clusters + 2) * 2), dtype="<u2")[2:]
        return int(np.count_nonzero(table)) * cluster
    fsinfo = struct.unpack_from("<H", bs, 48)[0]  # FAT32: FSInfo keeps a free count
    if fsinfo:
        info = img.read(offset + fsinfo * bps, 512)
        if len(info) == 512 and info[:4] == b"RRaA":
            free = struct.unpack_from("<I", info, 488)[0]
            if free <= clusters:
                return (clusters - free) * cluster
    used, n, pos = 0, clusters + 2, 0
    while pos < n:
        count = min(CHUNK // 4, n - pos)
        part = np.frombuffer(img.read(fat_at + pos * 4, count * 4), dtype="<u4") & 0x0FFFFFFF
        used += int(np.count_nonzero(part[2:] if pos == 0 else part))
        pos += count
    return used * cluster


def _hfs(img: Any, offset: int) -> int | None:
    """HFS+/HFSX volume header: (totalBlocks - freeBlocks) * blockSize."""
    vh = img.read(offset + 1024, 512)
    if len(vh) < 512 or vh[:2] not in (b"H+", b"HX"):
        return None
    block_size, total, free = struct.unpack_from(">III", vh, 40)
    return (total - free) * block_size if free <= total else None


def _exfat(img: Any, offset: int, fs: Any) -> int | None:
    """Set bits of the allocation bitmap (TSK's ``$ALLOC_BITMAP``) up to the cluster count."""
    bs = img.read(offset, 512)
    if len(bs) < 512 or bs[3:11] != b"EXFAT   ":
        return None
    clusters = struct.unpack_from("<I", bs, 92)[0]
    cluster = 1 << (bs[108] + bs[109])
    bitmap = fs.open("/$ALLOC_BITMAP")
    size = min(int(bitmap.info.meta.size), (clusters + 7) // 8)
    used = pos = 0
    while pos < size:
        data = bitmap.read_random(pos, min(CHUNK, size - pos))
        if not data:
            break
        bits = np.frombuffer(data, dtype=np.uint8)
        if pos + len(data) >= size and clusters % 8:  # bits past the last cluster
            bits = bits.copy()
            bits[-1] &= (1 << (clusters % 8)) - 1
        used += int(np.bitwise_count(bits).sum())
        pos += len(data)
    return used * cluster


def _ntfs(fs: Any) -> int | None:
    """Set bits of $Bitmap (MFT entry 6) times the cluster size."""
    bitmap = fs.open_meta(inode=6)
    size = int(bitmap.info.meta.size)
    used = pos = 0
    while pos < size:
        data = bitmap.read_random(pos, min(CHUNK, size - pos))
        if not data:
            break
        used += int(np.bitwise_count(np.frombuffer(data, dtype=np.uint8)).sum())
        pos += len(data)
    return used * int(fs.info.block_size)
