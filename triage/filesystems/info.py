"""``triage info``: what an examiner checks before a scan (img_stat + mmls + fsstat in one).

Format, size, segments, stored acquisition hashes, the partition table as TSK reads it, and per
volume the file system, label, size and encryption. Reads only metadata and a few sampled MiB
(the same checks the scan makes to call a volume empty or encrypted); hashes nothing.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytsk3

from triage.filesystems.discovery import discover
from triage.errors import EvidenceError
from triage.evidence.containers import EvidenceSpec, identify, open_image
from triage.evidence.volumes import (
    VS_TYPE_NAMES,
    SectorSized,
    Volume,
    find_volumes,
    read_at,
    sector_size_hint,
)


def evidence_info(path: str) -> dict[str, Any]:
    """Describe one piece of evidence; raises EvidenceError when it cannot be opened."""
    spec = identify(path)
    out: dict[str, Any] = {
        "path": path, "format": spec.format, "size": spec.size,
        "segments": [{"path": s, "size": _file_size(s)} for s in spec.segments],
        "parent": spec.parent, "stored_hashes": dict(spec.stored_hashes), "warnings": [],
    }
    if spec.format == "logical":
        out.update(volume_system="logical", sector_size=None, partitions=[],
                   volumes=[_logical_volume(spec)], size=None)
        return out
    if spec.format == "ewf":
        out["acquisition"] = ewf_header(spec)
    img = open_image(spec)
    try:
        hint = sector_size_hint(img)
        table_img = img
        if hint:
            try:
                table_img = SectorSized(img, hint)
                out["warnings"].append(
                    f"the partition table uses {hint}-byte sectors (detected; TSK's default of "
                    "512 gives a wrong layout): offsets below are in bytes at that sector size")
            except TypeError:  # pytsk3 older than 20260715 takes no sector_size
                out["warnings"].append(
                    f"the partition table looks like it uses {hint}-byte sectors, but this "
                    "pytsk3 cannot be told so: the layout below (512-byte sectors) is wrong")
        out.update(_partition_table(table_img))
        vs_name, volumes = find_volumes(table_img)
        if out["volume_system"] == "none":  # an MBR TSK refused and triage read itself
            out["volume_system"] = vs_name
        out["volumes"] = [d for v in volumes for d in describe_volume(img, spec, v)]
    finally:
        img.close()
    return out


# The acquisition header fields libewf exposes, in the order ewfinfo prints them.
EWF_HEADER = ("case_number", "description", "examiner_name", "evidence_number", "notes",
              "acquiry_date", "system_date", "acquiry_operating_system",
              "acquiry_software", "acquiry_software_version", "model", "serial_number",
              "device_label")


def ewf_header(spec: EvidenceSpec) -> dict[str, str]:
    """The E01's acquisition header (case number, examiner, dates, notes...): values typed by
    whoever acquired the image, so they are evidence text, shown escaped."""
    from triage.evidence.containers import _ewf

    _, handle = _ewf()
    h = handle()
    h.open(list(spec.segments), "r")
    try:
        found = {}
        for name in EWF_HEADER:
            try:
                value = h.get_header_value(name)
            except Exception:  # noqa: BLE001 - pyewf raises IOError for an absent value
                value = None
            if value:
                found[name] = value
        return found
    finally:
        h.close()


def _file_size(path: str) -> int | None:
    try:
        with open(path, "rb") as fh:
            return fh.seek(0, os.SEEK_END)
    except OSError:
        return None


def _logical_volume(spec: EvidenceSpec) -> dict[str, Any]:
    """A folder: no partitions, one "file system"; say whether it is mounted read-only."""
    path = spec.path
    v = discover(None, spec, Volume(0, 0, "logical folder")).volume
    if v.status != "scanned":
        return {"offset": 0, "length": None, "slot": None,
                "description": f"logical folder {path}", "fs_type": "logical", "label": None,
                "fs_size": None, "block_size": None, "status": v.status, "encryption": None,
                "error": v.error, "notes": list(v.notes)}
    try:
        read_only: bool | None = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = None
    return {"offset": 0, "length": None, "slot": None, "description": f"logical folder {path}",
            "fs_type": "logical", "label": None, "fs_size": None, "block_size": None,
            "status": "readable", "encryption": None, "error": None,
            "notes": [] if read_only is None else
            [f"mounted {'read-only' if read_only else 'read-write'}"]}


def _partition_table(img: Any) -> dict[str, Any]:
    """Every entry TSK lists (like mmls): allocated partitions, meta entries, unallocated gaps."""
    try:
        vs = pytsk3.Volume_Info(img)
    except OSError:
        return {"volume_system": "none", "sector_size": None, "partitions": []}
    block = int(vs.info.block_size)
    parts = []
    for p in vs:
        flags = int(p.flags)
        kind = ("allocated" if flags & pytsk3.TSK_VS_PART_FLAG_ALLOC else
                "meta" if flags & pytsk3.TSK_VS_PART_FLAG_META else "unallocated")
        desc = p.desc.decode("utf-8", "replace") if isinstance(p.desc, bytes) else str(p.desc)
        parts.append({"slot": f"{p.table_num}:{p.slot_num}" if kind == "allocated" else None,
                      "kind": kind, "start_sector": int(p.start), "sectors": int(p.len),
                      "offset": int(p.start) * block, "length": int(p.len) * block,
                      "description": desc})
    name = VS_TYPE_NAMES.get(int(vs.info.vstype), str(vs.info.vstype))
    return {"volume_system": name, "sector_size": block, "partitions": parts}


# scan's word for a volume it can read (or reads only in part: truncated) is info's "readable"
_INFO_STATUS = {"scanned": "readable", "incomplete": "readable"}


def describe_volume(img: Any, spec: EvidenceSpec, volume: Volume) -> list[dict[str, Any]]:
    """One entry per file system: a TSK volume, or each volume of an APFS container. What each
    is comes from ``discovery.discover``, the function ``triage scan`` uses."""
    verdict = discover(img, spec, volume)
    v = verdict.volume
    base = {"offset": volume.offset, "length": volume.length, "slot": volume.slot,
            "description": volume.description, "fs_type": None, "label": None,
            "fs_size": None, "block_size": None, "status": None, "encryption": None,
            "error": None, "notes": []}
    fs = verdict.fs
    if fs is not None:
        base.update(fs_type=v.fs_type, status=_INFO_STATUS.get(v.status, v.status),
                    block_size=int(fs.info.block_size),
                    fs_size=int(fs.info.block_count) * int(fs.info.block_size),
                    label=fs_label(img, fs, volume.offset, v.fs_type or ""))
        if verdict.encryption:  # BitLocker To Go: a readable FAT discovery volume, data encrypted
            base.update(encryption=verdict.encryption, error=v.error, notes=list(v.notes))
        return [base]
    if verdict.found and spec.format != "logical":  # an APFS container: each of its volumes
        count = len(verdict.found)
        return [dict(base, fs_type=f.fs_type, label=f.label, fs_size=f.size, apfs_volume=f.sub,
                     description=f"APFS volume {f.sub + 1} of {count}", notes=list(f.notes),
                     status=_INFO_STATUS.get(f.status, f.status), encryption=f.encryption,
                     error=f.error)
                for f in verdict.found]
    base.update(fs_type=v.fs_type if v.status == "error" else None,
                status=_INFO_STATUS.get(v.status, v.status), encryption=verdict.encryption,
                error=v.error, notes=list(v.notes))
    return [base]


# --- labels: read from each file system's own structures ------------------------------------


def fs_label(img: Any, fs: Any, offset: int, fs_type: str) -> str | None:
    """The volume label, or None when the type has none we read (HFS+ keeps it in the
    catalog B-tree, which pytsk3 does not expose)."""
    try:
        if fs_type.startswith("ext"):
            sb = read_at(img, offset + 1024, 1024)
            return _clean(sb[120:136]) if sb[56:58] == b"\x53\xef" else None
        if fs_type.startswith("fat"):
            return _fat_label(img, offset, fs_type)
        if fs_type == "ntfs":
            return _ntfs_label(fs)
        if fs_type == "exfat":
            return _exfat_label(img, offset)
        if fs_type == "iso9660":
            pvd = read_at(img, offset + 16 * 2048, 2048)
            return _clean(pvd[40:72]) if pvd[1:6] == b"CD001" else None
    except (OSError, struct.error, UnicodeError):
        return None
    return None


def _clean(raw: bytes, encoding: str = "utf-8") -> str | None:
    text = raw.split(b"\0", 1)[0].decode(encoding, "replace").strip()
    return text or None


def _fat_label(img: Any, offset: int, fs_type: str) -> str | None:
    """The root directory's volume-label entry (what Windows shows), else the boot sector's."""
    bs = read_at(img, offset, 512)
    bps, spc, reserved, nfats, root_entries = struct.unpack("<HBHBH", bs[11:19])
    fat32 = fs_type == "fat32"
    boot_label = _clean(bs[71:82] if fat32 else bs[43:54], "cp437")
    fat_size = struct.unpack("<I", bs[36:40])[0] if fat32 else struct.unpack("<H", bs[22:24])[0]
    first = reserved + nfats * fat_size
    if fat32:
        root_cluster = struct.unpack("<I", bs[44:48])[0]
        start, length = (first + (root_cluster - 2) * spc) * bps, spc * bps
    else:
        start, length = first * bps, root_entries * 32
    root = read_at(img, offset + start, min(length, 1 << 16))
    for i in range(0, len(root) - 31, 32):
        e = root[i:i + 32]
        if e[0] == 0:
            break
        if e[0] != 0xE5 and e[11] & 0x08 and e[11] != 0x0F:
            return _clean(e[:11], "cp437")
    return None if boot_label == "NO NAME" else boot_label


def _ntfs_label(fs: Any) -> str | None:
    """$VOLUME_NAME (0x60) of $Volume (MFT entry 3), UTF-16LE."""
    f = fs.open_meta(inode=3)
    for attr in f:
        if int(attr.info.type) == 0x60:
            size = int(attr.info.size)
            raw = f.read_random(0, size, 0x60, int(attr.info.id)) if size else b""
            return raw.decode("utf-16-le", "replace") or None
    return None


def _exfat_label(img: Any, offset: int) -> str | None:
    """Volume-label entry (type 0x83) in the first cluster of the root directory."""
    bs = read_at(img, offset, 512)
    heap, root_cluster = struct.unpack("<I", bs[88:92])[0], struct.unpack("<I", bs[96:100])[0]
    bps_shift, spc_shift = bs[108], bs[109]
    cluster = 1 << (bps_shift + spc_shift)
    root = read_at(img, offset + (heap << bps_shift) + (root_cluster - 2) * cluster,
                 min(cluster, 1 << 16))
    for i in range(0, len(root) - 31, 32):
        if root[i] == 0:
            break
        if root[i] == 0x83:
            n = min(root[i + 1], 11)
            return root[i + 2:i + 2 + 2 * n].decode("utf-16-le", "replace") or None
    return None


def info_many(paths: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """(one entry per path, whether every one could be opened); errors become entries."""
    out, ok = [], True
    for p in paths:
        try:
            out.append(evidence_info(p))
        except EvidenceError as e:
            ok = False
            out.append({"path": p, "error": str(e)})
    return out, ok
