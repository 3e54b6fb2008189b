"""File-system walk: every regular file, allocated or deleted, as a ``FileRecord`` (no content).

Semantics follow ``fls -r -p`` so that TSK's command-line tools can serve as independent truth:
recursion into a directory only when name and metadata agree it is one and it is not a
reallocated entry; loops are cut by refusing to enter a directory that is already an ancestor;
NTFS yields one record per $DATA stream (and per named $INDEX_ROOT of a regular file, as fls).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytsk3

from triage.records import FileRecord, ReadTarget, iso_time

MAX_DEPTH = 128  # TSK's own recursion bound
ORPHAN_DIR = "$OrphanFiles"

_DIR_META = (pytsk3.TSK_FS_META_TYPE_DIR, pytsk3.TSK_FS_META_TYPE_VIRT_DIR)
_DIR_NAME = (pytsk3.TSK_FS_NAME_TYPE_DIR, pytsk3.TSK_FS_NAME_TYPE_VIRT_DIR,
             pytsk3.TSK_FS_NAME_TYPE_UNDEF)
_NTFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)
_NTFS_IDXROOT = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_IDXROOT)
_NTFS_BADCLUS = 8  # MFT entry of $BadClus


@dataclass
class WalkOptions:
    include_orphans: bool = True
    max_orphans: int = 1_000_000


@dataclass
class WalkStats:
    """What the walk could not do; ends up in the volume's entry of summary.json."""

    errors: list[str] = field(default_factory=list)
    orphans: int = 0
    orphans_truncated: bool = False
    loops: int = 0


def _name(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    # keep undecodable bytes recoverable instead of failing or dropping the file
    return raw.decode("utf-8", "surrogateescape")


def walk_volume(
    fs: pytsk3.FS_Info,
    evidence: str,
    volume_offset: int,
    fs_type: str,
    options: WalkOptions,
    stats: WalkStats,
) -> Iterator[FileRecord]:
    """Yield one record per regular file (or NTFS stream) in directory order, depth first."""
    is_ntfs = fs_type == "ntfs"
    root = fs.info.root_inum
    # stack of (dir address, dir path, ancestor addresses, inside $OrphanFiles)
    stack: list[tuple[int, str, frozenset[int], bool]] = [(root, "", frozenset([root]), False)]
    while stack:
        addr, dpath, ancestors, in_orphans = stack.pop()
        try:
            directory = fs.open_dir(inode=addr)
        except OSError as e:
            stats.errors.append(f"cannot open directory {dpath or '/'}: {_msg(e)}")
            continue
        subdirs: list[tuple[int, str, frozenset[int], bool]] = []
        try:
            for f in directory:
                name_info = f.info.name
                name = _name(name_info.name)
                if name in (".", ".."):
                    continue
                path = f"{dpath}/{name}"
                meta = f.info.meta
                if meta is None and in_orphans:
                    f, meta = _orphan_meta(fs, f, name_info)
                orphan = in_orphans
                if dpath == "" and name == ORPHAN_DIR and meta is not None and \
                        meta.type == pytsk3.TSK_FS_META_TYPE_VIRT_DIR:
                    if options.include_orphans:
                        subdirs.append((meta.addr, path, ancestors | {meta.addr}, True))
                    continue
                if orphan:
                    if stats.orphans >= options.max_orphans:
                        stats.orphans_truncated = True
                        break
                    stats.orphans += 1
                if _should_recurse(f, name_info, meta):
                    child = meta.addr
                    if child in ancestors:
                        stats.loops += 1
                    elif len(ancestors) < MAX_DEPTH:
                        subdirs.append((child, path, ancestors | {child}, orphan))
                yield from _records(f, name_info, meta, path, evidence, volume_offset, fs_type,
                                    is_ntfs, orphan)
        except OSError as e:
            stats.errors.append(f"error while listing {dpath or '/'}: {_msg(e)}")
        stack.extend(reversed(subdirs))


def _orphan_meta(fs: pytsk3.FS_Info, f: pytsk3.File, name_info):
    """Orphan names carry no sequence number, so TSK leaves their metadata unloaded; fls loads
    it by address, and so do we (the orphan *is* that metadata entry)."""
    try:
        g = fs.open_meta(inode=int(name_info.meta_addr))
    except OSError:
        return f, None
    return g, g.info.meta


def _should_recurse(f: pytsk3.File, name_info, meta) -> bool:
    if meta is None or meta.type not in _DIR_META or name_info.type not in _DIR_NAME:
        return False
    name_alloc = bool(int(name_info.flags) & pytsk3.TSK_FS_NAME_FLAG_ALLOC)
    meta_unalloc = bool(int(meta.flags) & pytsk3.TSK_FS_META_FLAG_UNALLOC)
    return name_alloc or meta_unalloc  # a deleted name pointing at live metadata: reallocated


def _records(f, name_info, meta, path, evidence, volume_offset, fs_type, is_ntfs, orphan):
    is_reg_name = name_info.type == pytsk3.TSK_FS_NAME_TYPE_REG
    is_reg_meta = meta is not None and meta.type == pytsk3.TSK_FS_META_TYPE_REG
    name_unalloc = bool(int(name_info.flags) & pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
    meta_unalloc = meta is not None and bool(int(meta.flags) & pytsk3.TSK_FS_META_FLAG_UNALLOC)
    addr = int(name_info.meta_addr)

    def record(inode: str, size: int | None, target: ReadTarget | None, suffix: str = "",
               error: str | None = None) -> FileRecord:
        r = FileRecord(
            evidence=evidence, volume_offset=volume_offset, fs_type=fs_type,
            path=path + suffix, inode=inode, size=size,
            deleted=name_unalloc or meta_unalloc, orphan=orphan,
            realloc=name_unalloc and meta is not None and not meta_unalloc,
            error=error, target=target,
        )
        if meta is not None:
            r.mtime = iso_time(meta.mtime, getattr(meta, "mtime_nano", 0))
            r.atime = iso_time(meta.atime, getattr(meta, "atime_nano", 0))
            r.ctime = iso_time(meta.ctime, getattr(meta, "ctime_nano", 0))
            r.crtime = iso_time(meta.crtime, getattr(meta, "crtime_nano", 0))
        return r

    if meta is None:
        if is_reg_name:
            yield record(str(addr), None, None, error="no metadata: name only (deleted entry)")
        return
    if is_ntfs:
        yield from _ntfs_records(f, record, addr, is_reg_name or is_reg_meta)
        return
    if is_reg_name or is_reg_meta:
        yield record(str(addr), int(meta.size), ReadTarget(addr))


def _ntfs_records(f, record, addr: int, regular: bool):
    emitted = False
    try:
        attrs = [(int(a.info.type), int(a.info.id), a.info.name, int(a.info.size)) for a in f]
    except OSError as e:
        if regular:
            yield record(str(addr), None, None, error=f"cannot list attributes: {_msg(e)}")
        return
    for atype, aid, aname, asize in attrs:
        stream = _name(aname)
        if atype == _NTFS_DATA:
            if not regular and not stream:
                continue  # a directory's unnamed data is not a file; its named streams are
        elif atype == _NTFS_IDXROOT:
            if not regular:
                continue
            if stream == "$I30":
                stream = ""
        else:
            continue
        emitted = True
        inode, suffix = f"{addr}-{atype}-{aid}", f":{stream}" if stream else ""
        if addr == _NTFS_BADCLUS and stream == "$Bad":
            # sized like the whole volume, fully sparse: nothing to read, never hash terabytes
            yield record(inode, asize, None, suffix, error="not read: sparse bad-cluster map")
            continue
        yield record(inode, asize, ReadTarget(addr, atype, aid), suffix)
    if regular and not emitted:
        yield record(str(addr), None, None, error="no data attribute")


def _msg(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]
