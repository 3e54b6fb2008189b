"""Raw NTFS MFT records, for the two cases where TSK's answer is not enough.

- TSK stops loading an entry's attributes, without an error, at one whose length is zero or
  runs past the record: the file then looks like one without ``$DATA``. ``damage`` tells the
  two apart by walking the record's attribute headers.
- TSK refuses a whole entry whose sparse run is longer than the volume ("Run length is larger
  than file system"), though NTFS allows it (a 1 MiB file written at 4.5 GiB on a 64 MiB
  volume). ``unnamed_data`` parses the unnamed ``$DATA`` attribute's runs itself, for the plain
  case only (one extent, not compressed or encrypted, every stored run inside the volume), and
  ``reader`` reads them: sparse runs and bytes past the initialized size are zeros.

Records are read through ``$MFT`` itself (TSK's file 0), so fragmentation of the MFT is TSK's
business; update sequence (fixup) values are checked and applied.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_END = 0xFFFFFFFF
_DATA = 0x80
_ATTRIBUTE_LIST = 0x20
_COMPRESSED_OR_ENCRYPTED = 0x00FF | 0x4000
_STRIDE = 512  # update sequence stride: 512 bytes whatever the sector size


@dataclass(frozen=True)
class Geometry:
    cluster: int  # bytes
    clusters: int  # in the volume
    record: int  # bytes per MFT record


@dataclass(frozen=True)
class DataRuns:
    """The unnamed ``$DATA`` attribute: runs of (first cluster or None if sparse, clusters)."""

    attr_id: int
    size: int
    initialized: int
    runs: tuple[tuple[int | None, int], ...]


def geometry(fs: Any) -> Geometry | None:
    try:
        boot = fs.open_meta(inode=7).read_random(0, 512)  # $Boot
        cluster = struct.unpack_from("<H", boot, 11)[0] * boot[13]
        sectors = struct.unpack_from("<Q", boot, 0x28)[0]
        per = struct.unpack_from("<b", boot, 0x40)[0]
    except (OSError, struct.error, IndexError):
        return None
    if cluster <= 0:
        return None
    record = per * cluster if per > 0 else 1 << -per
    return Geometry(cluster, sectors * struct.unpack_from("<H", boot, 11)[0] // cluster, record)


def _record(fs: Any, addr: int, geo: Geometry) -> bytes | str:
    """The record with its fixups applied, or why it cannot be used."""
    try:
        rec = bytearray(fs.open_meta(inode=0).read_random(addr * geo.record, geo.record))
    except OSError as e:
        return f"MFT entry {addr} cannot be read: {' '.join(str(e).split())[:200]}"
    if len(rec) != geo.record or rec[:4] != b"FILE":
        return f"MFT entry {addr} has no FILE signature"
    usa, count = struct.unpack_from("<HH", rec, 4)
    if count < 1 or usa + 2 * count > len(rec) or (count - 1) * _STRIDE > len(rec):
        return f"MFT entry {addr}: update sequence array out of bounds"
    usn = rec[usa:usa + 2]
    for i in range(1, count):
        end = i * _STRIDE - 2
        if rec[end:end + 2] != usn:
            return f"MFT entry {addr}: update sequence value mismatch in sector {i}"
        rec[end:end + 2] = rec[usa + 2 * i:usa + 2 * i + 2]
    return bytes(rec)


def _attributes(rec: bytes, addr: int) -> tuple[list[tuple[int, int]], str | None]:
    """(type, offset) of each attribute, and why the chain breaks if it does."""
    used = min(struct.unpack_from("<I", rec, 0x18)[0], len(rec))
    pos = struct.unpack_from("<H", rec, 0x14)[0]
    found: list[tuple[int, int]] = []
    while pos + 8 <= used:
        atype, length = struct.unpack_from("<II", rec, pos)
        if atype == _END:
            return found, None
        if length < 16 or pos + length > used:
            return found, (f"MFT entry {addr}: attribute 0x{atype:x} at offset {pos} has length "
                           f"{length} (record uses {used} bytes); the attributes after it are "
                           "lost")
        found.append((atype, pos))
        pos += length
    return found, f"MFT entry {addr}: attribute list has no end marker"


def damage(fs: Any, addr: int) -> str | None:
    """Why an MFT entry's attribute chain is broken, if it is (None: it is whole)."""
    geo = geometry(fs)
    if geo is None:
        return None
    rec = _record(fs, addr, geo)
    if isinstance(rec, str):
        return rec
    return _attributes(rec, addr)[1]


def unnamed_data(fs: Any, addr: int) -> DataRuns | None:
    """The unnamed ``$DATA`` runs of a plain record, checked against the volume; None for
    anything else (then TSK's refusal stands)."""
    geo = geometry(fs)
    if geo is None:
        return None
    rec = _record(fs, addr, geo)
    if isinstance(rec, str):
        return None
    attrs, broken = _attributes(rec, addr)
    if broken or any(t == _ATTRIBUTE_LIST for t, _ in attrs):
        return None  # extents in other records: not the plain case
    data = [pos for t, pos in attrs if t == _DATA and rec[pos + 9] == 0]  # unnamed
    if len(data) != 1:
        return None
    a = data[0]
    length = struct.unpack_from("<I", rec, a + 4)[0]
    nonresident, flags, attr_id = rec[a + 8], *struct.unpack_from("<HH", rec, a + 0x0C)
    if nonresident != 1 or flags & _COMPRESSED_OR_ENCRYPTED or length < 0x40:
        return None
    low, high = struct.unpack_from("<qq", rec, a + 0x10)
    runs_at = struct.unpack_from("<H", rec, a + 0x20)[0]
    alloc, size, init = struct.unpack_from("<qqq", rec, a + 0x28)
    runs = _mapping_pairs(rec[a + runs_at:a + length], geo.clusters)
    if runs is None or low != 0:
        return None
    clusters = sum(n for _, n in runs)
    if (clusters != high + 1 or not 0 <= size <= alloc <= clusters * geo.cluster
            or not 0 <= init <= size):
        return None
    return DataRuns(attr_id, size, init, tuple(runs))


def _mapping_pairs(raw: bytes, volume_clusters: int) -> list[tuple[int | None, int]] | None:
    runs: list[tuple[int | None, int]] = []
    pos, lcn = 0, 0
    while pos < len(raw) and raw[pos]:
        nlen, noff = raw[pos] & 0x0F, raw[pos] >> 4
        if nlen == 0 or nlen > 8 or noff > 8 or pos + 1 + nlen + noff > len(raw):
            return None
        count = int.from_bytes(raw[pos + 1:pos + 1 + nlen], "little")
        if count <= 0:
            return None
        if noff == 0:
            runs.append((None, count))  # sparse
        else:
            lcn += int.from_bytes(raw[pos + 1 + nlen:pos + 1 + nlen + noff], "little",
                                  signed=True)
            if lcn < 0 or lcn + count > volume_clusters:
                return None  # stored data outside the volume: not ours to guess
            runs.append((lcn, count))
        pos += 1 + nlen + noff
    return runs if pos < len(raw) else None


def reader(read: Callable[[int, int], bytes], volume_offset: int, cluster: int,
           data: DataRuns) -> Callable[[int, int], bytes]:
    """``read(pos, n)`` over the file's content for ``hashing.hash_reads``: zeros for sparse
    runs and past the initialized size, media bytes otherwise; each read stops at a run end."""
    starts, pos = [], 0
    for _, count in data.runs:
        starts.append(pos)
        pos += count * cluster
    zeros_from = data.initialized

    def read_at(offset: int, length: int) -> bytes:
        length = min(length, data.size - offset)
        if length <= 0:
            return b""
        if offset >= zeros_from:
            return bytes(length)
        length = min(length, zeros_from - offset)
        i = bisect.bisect_right(starts, offset) - 1
        lcn, count = data.runs[i]
        into = offset - starts[i]
        length = min(length, count * cluster - into)
        if lcn is None:
            return bytes(length)
        return read(volume_offset + lcn * cluster + into, length)

    return read_at
