"""FAT long names whose checksum does not match their 8.3 entry (orphan long names).

A long-name (LFN) chain carries the checksum of the 8.3 name it belongs to. When the 8.3 entry
was renamed or edited by a tool that does not know long names, the checksum no longer matches:
Microsoft's FAT specification calls such LFN entries orphans, and the file's name is its 8.3
name (mtools and 7-Zip agree). TSK, and so pytsk3, takes the long name anyway, so triage reads
the directory's raw entries itself and tells the walk which entries carry an orphan long name.

Only allocated 8.3 entries preceded by allocated LFN entries are checked: a deleted entry has
lost the first byte of its 8.3 name (0xE5), so its checksum cannot be verified.
"""

from __future__ import annotations

import struct

import pytsk3

FAT_TYPES = frozenset({"fat12", "fat16", "fat32"})

_LFN_ATTR = 0x0F
_VOLUME = 0x08
_DELETED = 0xE5
_FIRST_NORMAL_INUM = 3  # TSK: inode of the first 32-byte slot after the FATs
_MAX_DIR = 65536 * 32  # the specification's bound on a directory's entries


def lfn_checksum(short: bytes) -> int:
    """The checksum an LFN entry stores of its 11-byte 8.3 name (specification's algorithm)."""
    s = 0
    for b in short:
        s = (((s & 1) << 7) + (s >> 1) + b) & 0xFF
    return s


def short_name(entry: bytes) -> str:
    """The 8.3 name as a file name: blanks dropped, a dot before a non-empty extension, the
    Windows NT lower-case flags (byte 12) applied; bytes 0x80+ (an OEM code page) are kept
    exactly, as ``surrogateescape`` (files.jsonl then carries them in ``path_bytes``)."""
    raw = bytearray(entry[:11])
    if raw[0] == 0x05:  # a name that really starts with 0xE5
        raw[0] = _DELETED
    base, ext = bytes(raw[:8]).rstrip(b" "), bytes(raw[8:11]).rstrip(b" ")
    flags = entry[12]
    if flags & 0x08:
        base = base.lower()
    if flags & 0x10:
        ext = ext.lower()
    name = base + b"." + ext if ext else base
    return name.decode("ascii", "surrogateescape")


def _lfn_text(parts: dict[int, bytes]) -> str:
    data = b"".join(parts[k] for k in sorted(parts))
    chars = [data[i:i + 2] for i in range(0, len(data), 2)]
    out = []
    for c in chars:
        if c == b"\x00\x00":
            break
        out.append(c)
    return b"".join(out).decode("utf-16-le", "replace")


def parse_orphans(data: bytes) -> dict[int, tuple[str, str | None]]:
    """Slot index (32-byte entry number in the directory) -> (8.3 name, orphan long name) for
    every allocated 8.3 entry whose preceding LFN chain does not carry its checksum, and
    (8.3 name, None) for one without a long name whose 8.3 name holds bytes 0x80+."""
    found: dict[int, tuple[str, str | None]] = {}
    parts: dict[int, bytes] = {}
    sums: set[int] = set()
    for slot in range(min(len(data), _MAX_DIR) // 32):
        e = data[slot * 32:slot * 32 + 32]
        first, attr = e[0], e[11]
        if first == 0x00:
            break  # end of directory
        if first == _DELETED:
            parts, sums = {}, set()
            continue
        if attr & 0x3F == _LFN_ATTR:
            if first & 0x40:  # the last part, stored first: a new chain starts
                parts, sums = {}, set()
            parts[first & 0x1F] = e[1:11] + e[14:26] + e[28:32]
            sums.add(e[13])
            continue
        if not attr & _VOLUME:
            if parts and sums != {lfn_checksum(e[:11])}:
                found[slot] = (short_name(e), _lfn_text(parts))
            elif not parts and max(e[:11]) >= 0x80:
                found[slot] = (short_name(e), None)  # OEM bytes, which TSK turns into '^'
        parts, sums = {}, set()
    return found


def corrected(tsk_name: str, found: tuple[str, str | None]) -> tuple[str, str | None] | None:
    """The (name, orphan long name) to use for an entry TSK named ``tsk_name``, or None when
    TSK's name is not one of that entry's names (a cross-check of the address mapping)."""
    short, long_name = found
    if long_name is not None:
        return found if tsk_name in found else None
    # an 8.3 name with bytes 0x80+ and no long name: TSK shows '^' for those bytes (and may
    # merge neighbours into one), which is lossy and can make two names equal; the exact bytes
    # are kept instead (surrogateescape, so files.jsonl holds them in path_bytes)
    ascii_only = "".join(c for c in short if c < "\x80" and c != "^")
    return found if tsk_name.replace("^", "") == ascii_only else None


def orphan_long_names(fs: pytsk3.FS_Info, dir_addr: int
                      ) -> dict[int, tuple[str, str | None]]:
    """TSK metadata address -> (8.3 name, orphan long name) for one FAT directory; empty when
    there is none or the directory cannot be read raw (TSK's listing then stands)."""
    try:
        d = fs.open_meta(inode=dir_addr)
        size = int(d.info.meta.size)
        if size <= 0 or size > _MAX_DIR:
            return {}
        data = d.read_random(0, size)
        found = parse_orphans(data)
        if not found:
            return {}
        return _by_address(fs, d, found)
    except (OSError, struct.error, ValueError):
        return {}


def _by_address(fs: pytsk3.FS_Info, d, found: dict[int, tuple[str, str | None]]
                ) -> dict[int, tuple[str, str | None]]:
    """TSK numbers FAT metadata by the 32-byte slot's place on disk: ``(sector - first sector
    after the FATs) * slots per sector + slot in sector + 3``; map the directory's slots to
    sectors along its runs (TSK's FAT blocks are sectors)."""
    sector_size = int(fs.info.block_size)
    per_sector = sector_size // 32
    first = _first_data_sector(fs)
    sectors: dict[int, int] = {}
    for attr in d:
        for run in attr:
            for k in range(int(run.len)):
                sectors[int(run.offset) + k] = int(run.addr) + k
        break  # a FAT directory has one attribute
    out = {}
    for slot, names in found.items():
        sector = sectors.get(slot // per_sector)
        if sector is None or sector < first:
            continue
        out[(sector - first) * per_sector + slot % per_sector + _FIRST_NORMAL_INUM] = names
    return out


def _first_data_sector(fs: pytsk3.FS_Info) -> int:
    """Reserved sectors + FAT copies, from the boot sector, which TSK exposes as its virtual
    ``$MBR`` file (metadata address last - 3). With sectors larger than 512 bytes TSK gives
    that file no data; then the end of TSK's ``$FAT2`` (``$FAT1`` + one FAT) stands in, which
    assumes the usual two FAT copies (the walk cross-checks every name it corrects)."""
    last = int(fs.info.last_inum)
    try:
        boot = fs.open_meta(inode=last - 3).read_random(0, 512)
    except OSError:
        boot = b""
    if len(boot) == 512:
        reserved, fats = struct.unpack_from("<HB", boot, 14)
        (per_fat,) = struct.unpack_from("<H", boot, 22)
        if per_fat == 0:
            (per_fat,) = struct.unpack_from("<I", boot, 36)
        return reserved + fats * per_fat
    for attr in fs.open_meta(inode=last - 1):  # $FAT2
        for run in attr:
            return int(run.addr) + int(run.len)
    raise ValueError("no FAT geometry")
