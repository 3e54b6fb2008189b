"""Volumes: every partition TSK's volume systems know, or the whole image when there is none.

A partition whose file system TSK cannot open is kept with the reason: an examiner must see what
was not examined rather than read "0 hits" for it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import pytsk3

# Partitions up to this size with no file system are read whole to tell "empty" from "unknown".
EMPTY_CHECK_LIMIT = 16 * 1024 * 1024

FS_TYPE_NAMES = {
    pytsk3.TSK_FS_TYPE_NTFS: "ntfs", pytsk3.TSK_FS_TYPE_FAT12: "fat12",
    pytsk3.TSK_FS_TYPE_FAT16: "fat16", pytsk3.TSK_FS_TYPE_FAT32: "fat32",
    pytsk3.TSK_FS_TYPE_EXFAT: "exfat", pytsk3.TSK_FS_TYPE_EXT2: "ext2",
    pytsk3.TSK_FS_TYPE_EXT3: "ext3", pytsk3.TSK_FS_TYPE_EXT4: "ext4",
    pytsk3.TSK_FS_TYPE_HFS: "hfs+", pytsk3.TSK_FS_TYPE_ISO9660: "iso9660",
    pytsk3.TSK_FS_TYPE_FFS1: "ufs1", pytsk3.TSK_FS_TYPE_FFS1B: "ufs1b",
    pytsk3.TSK_FS_TYPE_FFS2: "ufs2", pytsk3.TSK_FS_TYPE_YAFFS2: "yaffs2",
    pytsk3.TSK_FS_TYPE_APFS: "apfs", pytsk3.TSK_FS_TYPE_SWAP: "swap",
}

VS_TYPE_NAMES = {
    int(getattr(pytsk3, f"TSK_VS_TYPE_{n.upper()}")): n
    for n in ("dos", "bsd", "sun", "mac", "gpt", "apfs") if hasattr(pytsk3, f"TSK_VS_TYPE_{n.upper()}")
}


@dataclass
class Volume:
    """One place a file system may live; ``status`` says what became of it."""

    offset: int
    length: int
    description: str
    slot: str | None = None
    fs_type: str | None = None
    status: str = "pending"  # scanned | empty | no-filesystem | encrypted | error | incomplete
    # | stopped (--stop-on-first-hit ended the scan before this volume was fully examined)
    error: str | None = None
    files: int = 0
    errors: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset, "length": self.length, "description": self.description,
            "slot": self.slot, "fs_type": self.fs_type, "status": self.status,
            "error": self.error, "files": self.files, "errors": self.errors,
            "notes": self.notes,
        }

    @property
    def unreadable(self) -> bool:
        return self.status in ("no-filesystem", "encrypted", "error", "incomplete")


class SectorSized(pytsk3.Img_Info):
    """The same bytes seen by TSK with another sector size. pytsk3 (20260715 and later) takes
    ``sector_size`` for any image; only the volume system needs it: file systems are opened at
    byte offsets and read their own sector size from their boot sector."""

    def __init__(self, img: Any, sector_size: int) -> None:
        self._img = img
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL, sector_size=sector_size)

    def read(self, offset: int, length: int) -> bytes:
        return self._img.read(offset, length)

    def get_size(self) -> int:
        return self._img.get_size()


def sector_size_hint(img: Any) -> int | None:
    """4096 when the table only makes sense with 4096-byte sectors: the GPT header at LBA 1 of
    a 4096-byte disk, or an MBR entry whose partition (boot sector, EBR, superblock) starts at
    start*4096 and not at start*512. None otherwise (512, TSK's default)."""
    head = read_at(img, 0, 8192)
    if head[4096:4104] == b"EFI PART" and head[512:520] != b"EFI PART":
        return 4096
    if head[512:520] == b"EFI PART" or head[510:512] != b"\x55\xaa":
        return None
    entries = [struct.unpack("<II", head[454 + 16 * i: 462 + 16 * i]) for i in range(4)
               if head[450 + 16 * i] not in (0, 0xEE)]  # 0xEE: GPT protective entry
    entries = [(start, count) for start, count in entries if start and count]
    if not entries or any((s + n) * 4096 > img.get_size() for s, n in entries):
        return None  # a 4096-byte layout must fit the media
    if any(_volume_signature(img, s * 512) for s, _ in entries):
        return None
    return 4096 if any(_volume_signature(img, s * 4096) for s, _ in entries) else None


def _volume_signature(img: Any, offset: int) -> bool:
    """Something a partition starts with: boot sector/EBR (0x55AA), LUKS, ext, HFS+, APFS."""
    head = read_at(img, offset, 2048)
    return (head[510:512] == b"\x55\xaa" or head[:6] == b"LUKS\xba\xbe"
            or head[1080:1082] == b"\x53\xef" or head[1024:1026] in (b"H+", b"HX")
            or head[32:36] == b"NXSB")


def read_at(img: Any, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes at ``offset``, clamped to the media; b"" where unreadable."""
    try:
        length = max(0, min(length, img.get_size() - offset))
        return img.read(offset, length) if length else b""
    except OSError:
        return b""


def fs_type_name(ftype: Any) -> str:
    return FS_TYPE_NAMES.get(int(ftype), str(ftype).removeprefix("TSK_FS_TYPE_").lower())


def find_volumes(img: pytsk3.Img_Info) -> tuple[str, list[Volume]]:
    """Return (volume system name, volumes). Without a partition table, one volume at 0."""
    hint = sector_size_hint(img)  # 4096-byte-sector disks: TSK assumes 512 unless told
    try:
        vs = pytsk3.Volume_Info(SectorSized(img, hint) if hint else img)
    except (OSError, RuntimeError):
        own = parse_dos(img, hint or 512)
        if own is not None:
            return "dos", own
        return "none", [Volume(0, img.get_size(), "whole image (no partition table)")]
    block = vs.info.block_size
    vs_name = VS_TYPE_NAMES.get(int(vs.info.vstype), str(vs.info.vstype))
    volumes = []
    for part in vs:
        if not int(part.flags) & pytsk3.TSK_VS_PART_FLAG_ALLOC:
            continue  # unallocated gaps and table entries (extended containers, the MBR itself)
        desc = part.desc.decode("utf-8", "replace") if isinstance(part.desc, bytes) else str(part.desc)
        slot = f"{part.table_num}:{part.slot_num}"
        v = Volume(part.start * block, part.len * block, desc, slot)
        if v.offset + v.length > img.get_size():
            v.notes.append(f"partition ends at byte {v.offset + v.length:,}, past the end of "
                           f"the evidence ({img.get_size():,} bytes): evidence truncated?")
        volumes.append(v)
    return vs_name, volumes


def open_fs(img: pytsk3.Img_Info, volume: Volume) -> pytsk3.FS_Info | None:
    """The volume's TSK file system, or None. What the volume *is* (empty, encrypted, APFS...)
    is ``triage.filesystems.discovery.discover``'s to decide, for every command."""
    if volume.status == "error":  # a partition table entry that points nowhere: nothing to open
        return None
    try:
        return pytsk3.FS_Info(img, offset=volume.offset)
    except (OSError, RuntimeError):
        return None


def is_truncated(fs: pytsk3.FS_Info) -> bool:
    """TSK reads blocks past the end of a truncated image as zeros, silently: we must not."""
    return int(fs.info.last_block_act) < int(fs.info.last_block)


def all_zero(img: pytsk3.Img_Info, offset: int, length: int) -> bool:
    """Every byte of the span is zero (an "empty" partition); False where unreadable."""
    end = min(offset + length, img.get_size())
    pos = offset
    while pos < end:
        n = min(1 << 20, end - pos)
        try:
            data = img.read(pos, n)
        except OSError:
            return False
        if not data or data.count(0) != len(data):
            return False
        pos += len(data)
    return True


def tsk_message(e: BaseException) -> str:
    """TSK errors arrive as multi-line IOErrors; keep the informative first part."""
    text = " ".join(str(e).split())
    return text[:300] or type(e).__name__


# -- MBR/EBR read by us when TSK refuses the whole table -----------------------------------------

_EXTENDED = (0x05, 0x0F, 0x85)
_DOS_TYPES = {0x01: "DOS FAT12", 0x04: "DOS FAT16 (<32M)", 0x06: "DOS FAT16", 0x07: "NTFS / exFAT",
              0x0B: "Win95 FAT32", 0x0C: "Win95 FAT32 (LBA)", 0x0E: "DOS FAT16 (LBA)",
              0x82: "Linux Swap", 0x83: "Linux", 0x8E: "Linux LVM", 0xA5: "FreeBSD",
              0xAF: "Apple HFS", 0xFD: "Linux RAID"}
MAX_LOGICAL = 128  # an EBR chain longer than this is a loop or garbage


def _entry(sector: bytes, i: int) -> tuple[int, int, int, int]:
    """(boot flag, type, first sector, sectors) of entry ``i`` of an MBR or EBR."""
    e = sector[446 + 16 * i: 462 + 16 * i]
    start, count = struct.unpack("<II", e[8:16])
    return e[0], e[4], start, count


def _dos_volume(start: int, count: int, typ: int, slot: str, what: str, sector: int,
                size: int) -> Volume:
    v = Volume(start * sector, count * sector, f"{_DOS_TYPES.get(typ, 'Unknown Type')} "
               f"(0x{typ:02x})", slot)
    if v.offset >= size:
        v.status = "error"
        v.error = (f"{what} starts at sector {start:,}, past the end of the evidence "
                   f"({size // sector:,} sectors): nothing there to read")
    elif v.offset + v.length > size:
        v.notes.append(f"partition ends at byte {v.offset + v.length:,}, past the end of "
                       f"the evidence ({size:,} bytes): evidence truncated?")
    return v


def parse_dos(img: Any, sector: int) -> list[Volume] | None:
    """The partitions of an MBR (and its EBR chain) that TSK refused as a whole, as ``mmls``
    does when one entry starts past the end of the disk. Each readable entry becomes a volume;
    an entry that points nowhere becomes a volume with status ``error`` saying so (exit 4).
    None when sector 0 is no MBR: no signature, an entry that cannot be one, or a file system
    at offset 0 (a FAT/NTFS boot sector also ends in 0x55AA)."""
    head = read_at(img, 0, 512)
    if len(head) < 512 or head[510:512] != b"\x55\xaa" or head[450] == 0xEE:
        return None
    entries = [(i, *_entry(head, i)) for i in range(4)]
    entries = [e for e in entries if e[2] != 0]
    if not entries or any(boot not in (0, 0x80) or not start or not count
                          for _, boot, _, start, count in entries):
        return None
    try:
        pytsk3.FS_Info(img, offset=0)
        return None  # a file system's boot sector, not a partition table
    except (OSError, RuntimeError):
        pass
    size = img.get_size()
    volumes: list[Volume] = []
    for i, _, typ, start, count in entries:
        what = f"MBR entry {i + 1}"
        if typ in _EXTENDED:
            volumes += _parse_ebr(img, sector, start, size, what)
        else:
            volumes.append(_dos_volume(start, count, typ, f"0:{i}", what, sector, size))
    for v in volumes:
        if v.status == "error":
            v.error += " (TSK refused the whole table for it; triage read the MBR itself)"
    return volumes


def _parse_ebr(img: Any, sector: int, ext_start: int, size: int, what: str) -> list[Volume]:
    """Logical partitions along the EBR chain of an extended partition (MBR semantics: a
    logical partition starts relative to its EBR, the next EBR relative to the extended
    partition's start)."""
    out: list[Volume] = []
    ebr, seen, n = ext_start, set(), 0
    while ebr not in seen and n < MAX_LOGICAL:
        seen.add(ebr)
        n += 1
        table = read_at(img, ebr * sector, 512)
        if len(table) < 512 or table[510:512] != b"\x55\xaa":
            v = Volume(ebr * sector, 0, "Extended partition table", f"{n}:-1", status="error")
            v.error = (f"{what}: extended partition table at sector {ebr:,} "
                       + ("lies past the end of the evidence" if ebr * sector >= size else
                          "has no 0x55AA signature") + ": its logical partitions are not read")
            out.append(v)
            break
        _, typ, start, count = _entry(table, 0)
        if typ and start and count:
            out.append(_dos_volume(ebr + start, count, typ, f"{n}:0",
                                   f"logical partition {n}", sector, size))
        _, ntyp, nstart, _ = _entry(table, 1)
        if ntyp not in _EXTENDED or not nstart:
            break
        ebr = ext_start + nstart
    return out
