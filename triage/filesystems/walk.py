"""File-system walk: every regular file, allocated or deleted, as a ``FileRecord`` (no content).

Semantics follow ``fls -r -p`` so that TSK's command-line tools can serve as independent truth:
recursion into a directory only when name and metadata agree it is one and it is not a
reallocated entry; loops are cut by refusing to enter a directory that is already an ancestor;
NTFS yields one record per $DATA stream (and per named $INDEX_ROOT of a regular file, as fls).
A deleted NTFS file keeps its metadata when its MFT entry was not reused, as in fls (pytsk3's
own directory iteration drops it: see ``_Entry.load_named_meta``). Unlike fls, the walk does
not stop at depth 128: it goes ``MAX_DEPTH`` levels deep and notes any directory it leaves out.
An allocated file whose metadata TSK cannot read is an error with TSK's reason, never "no
content".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytsk3

from triage.filesystems import ntfs_raw
from triage.filesystems.fatnames import FAT_TYPES, corrected, orphan_long_names
from triage.records import FileRecord, ReadTarget, iso_time

# Far beyond any real tree (TSK's fls stops at 128; PATH_MAX allows 2048 levels of one-letter
# names) yet bounded, because every queued directory carries its ancestors (loop cut). A
# directory deeper than this is noted on its volume (exit code 4), never silently skipped.
MAX_DEPTH = int(os.environ.get("TRIAGE_MAX_DEPTH", "4096"))
ORPHAN_DIR = "$OrphanFiles"

_DIR_META = (int(pytsk3.TSK_FS_META_TYPE_DIR), int(pytsk3.TSK_FS_META_TYPE_VIRT_DIR))
_DIR_NAME = (int(pytsk3.TSK_FS_NAME_TYPE_DIR), int(pytsk3.TSK_FS_NAME_TYPE_VIRT_DIR),
             int(pytsk3.TSK_FS_NAME_TYPE_UNDEF))
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
    more: int | None = None  # next entry index when a directory slice ended early


def _name(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    # keep undecodable bytes recoverable instead of failing or dropping the file
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class DirRef:
    """A directory still to be listed; ``ancestors`` cuts loops the way TSK's walk does."""

    addr: int
    path: str  # "" for the root
    ancestors: frozenset[int]
    in_orphans: bool = False


@dataclass(frozen=True, slots=True)
class VolumeContext:
    evidence: str
    volume_offset: int
    fs_type: str


def root_dir(fs: pytsk3.FS_Info) -> DirRef:
    root = int(fs.info.root_inum)
    return DirRef(root, "", frozenset([root]))


def list_directory(
    fs: pytsk3.FS_Info,
    d: DirRef,
    vol: VolumeContext,
    options: WalkOptions,
    stats: WalkStats,
    subdirs: list[DirRef],
    start: int = 0,
    limit: int | None = None,
) -> Iterator[FileRecord]:
    """Yield the records of entries ``start .. start+limit`` of one directory, appending the
    directories to descend into to ``subdirs``. Sets ``stats.more`` to the next start index
    when the slice ended before the directory did (huge directories are listed in slices so
    no single task holds millions of records)."""
    stats.more = None
    try:
        directory = fs.open_dir(inode=d.addr)
    except OSError as e:
        stats.errors.append(f"cannot open directory {d.path or '/'}: {_msg(e)}")
        return
    in_orphans = d.in_orphans
    ntfs = vol.fs_type == "ntfs"
    hfs = vol.fs_type == "hfs+"
    # FAT: entries whose long name fails its checksum are named by their 8.3 name; 8.3 names
    # with OEM bytes keep those bytes (TSK shows '^')
    lfn_orphans = (orphan_long_names(fs, d.addr)
                   if vol.fs_type in FAT_TYPES and not in_orphans else None)
    index = -1
    try:
        for f in directory:
            index += 1
            if index < start:
                continue
            if limit is not None and index >= start + limit:
                stats.more = index
                return
            info = f.info
            name_info = info.name
            name = _name(name_info.name)
            if name == "." or name == "..":
                continue
            fat_name = lfn_orphans.get(int(name_info.meta_addr)) if lfn_orphans else None
            if fat_name is not None:
                fat_name = corrected(name, fat_name)  # None: TSK named another entry
                if fat_name is not None:
                    name = fat_name[0]
            e = _Entry(f, name_info, info.meta, f"{d.path}/{name}", in_orphans)
            if fat_name is not None:
                e.orphan_lfn = fat_name[1]
            if e.meta is None:
                if in_orphans:
                    e.load_orphan_meta(fs)
                elif e.addr:
                    e.load_named_meta(fs, ntfs, int(name_info.meta_seq))
            if d.path == "" and name == ORPHAN_DIR and e.meta_type == _VIRT_DIR:
                if options.include_orphans:
                    subdirs.append(DirRef(e.meta_addr, e.path, d.ancestors | {e.meta_addr}, True))
                continue
            if in_orphans:
                if stats.orphans >= options.max_orphans:
                    stats.orphans_truncated = True
                    return
                stats.orphans += 1
            if e.should_recurse():
                if e.meta_addr in d.ancestors:
                    stats.loops += 1
                elif len(d.ancestors) < MAX_DEPTH:
                    subdirs.append(DirRef(e.meta_addr, e.path, d.ancestors | {e.meta_addr},
                                          in_orphans))
                else:
                    stats.errors.append(f"directory {e.path} is deeper than {MAX_DEPTH} levels: "
                                        "not entered")
            if e.meta is None:
                yield from _name_only(e, vol, stats)
            elif ntfs:
                yield from _ntfs_records(e, vol, fs)
            elif e.regular:
                if e.size > _size_limit(fs, vol.fs_type):
                    yield e.record(vol, str(e.addr), e.size, None, unreadable=True, error=(
                        f"size {e.size:,} is larger than {vol.fs_type} allows "
                        f"({_size_limit(fs, vol.fs_type):,} bytes): metadata damaged"))
                    continue
                yield e.record(vol, str(e.addr), e.size, ReadTarget(e.addr, file=e.file))
                if hfs:
                    yield from _hfs_resource_fork(e, vol)
    except OSError as e:
        stats.errors.append(f"error while listing {d.path or '/'}: {_msg(e)}")


NO_META = "no metadata: name only (deleted entry)"
_REG_NAME = int(pytsk3.TSK_FS_NAME_TYPE_REG)
_REG_META = int(pytsk3.TSK_FS_META_TYPE_REG)
_UNDEF_NAME = int(pytsk3.TSK_FS_NAME_TYPE_UNDEF)
_VIRT_DIR = int(pytsk3.TSK_FS_META_TYPE_VIRT_DIR)
_NAME_ALLOC = int(pytsk3.TSK_FS_NAME_FLAG_ALLOC)
_NAME_UNALLOC = int(pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
_META_UNALLOC = int(pytsk3.TSK_FS_META_FLAG_UNALLOC)


class _Entry:
    """One directory entry with TSK's enums read once as plain ints (pytsk3 access is slow)."""

    __slots__ = ("file", "meta", "path", "orphan", "addr", "name_type", "name_flags",
                 "meta_type", "meta_flags", "meta_addr", "size", "orphan_lfn", "meta_error")

    def __init__(self, f: pytsk3.File, name_info, meta, path: str, orphan: bool) -> None:
        self.file, self.path, self.orphan = f, path, orphan
        self.orphan_lfn: str | None = None  # FAT long name that fails its checksum
        self.addr = int(name_info.meta_addr)
        self.name_type = int(name_info.type)
        self.name_flags = int(name_info.flags)
        self.meta_error: str | None = None  # TSK's reason when it could not load the metadata
        self._set_meta(meta)

    def _set_meta(self, meta) -> None:
        self.meta = meta
        if meta is None:
            self.meta_type = self.meta_flags = self.meta_addr = self.size = 0
        else:
            self.meta_type, self.meta_flags = int(meta.type), int(meta.flags)
            self.meta_addr, self.size = int(meta.addr), int(meta.size)

    def load_orphan_meta(self, fs: pytsk3.FS_Info) -> None:
        """Orphan names carry no sequence number, so TSK leaves their metadata unloaded; fls
        loads it by address, and so do we (the orphan *is* that metadata entry)."""
        try:
            self.file = fs.open_meta(inode=self.addr)
        except OSError:
            return
        self._set_meta(self.file.info.meta)

    def load_named_meta(self, fs: pytsk3.FS_Info, ntfs: bool, name_seq: int) -> None:
        """Load what pytsk3's directory iteration left out, the way fls does. That iteration
        drops an NTFS entry's metadata whenever the MFT entry's sequence number differs from
        the name's; but NTFS increments the sequence when it frees an entry, so every deleted
        file would lose its metadata. TSK's own walk (``ntfs_inode_lookup``) compares a free
        entry's sequence minus one with the name's: equal, the entry still holds that file's
        metadata; different, the entry was reused and the name is all that is left. An entry
        TSK cannot load at all (damaged record) keeps TSK's reason in ``meta_error``."""
        try:
            f = fs.open_meta(inode=self.addr)
        except OSError as err:
            self.meta_error = _msg(err)
            return
        meta = f.info.meta
        if meta is None:
            return
        if ntfs:
            seq = int(meta.seq)
            if int(meta.flags) & _META_UNALLOC and seq > 0:
                seq -= 1
            if seq != name_seq:
                return
        self.file = f
        self._set_meta(meta)

    @property
    def regular(self) -> bool:
        return self.name_type == _REG_NAME or self.meta_type == _REG_META

    def should_recurse(self) -> bool:
        """TSK's rule: name and metadata both say directory, and not a reallocated entry."""
        if self.meta_type not in _DIR_META or self.name_type not in _DIR_NAME:
            return False
        return bool(self.name_flags & _NAME_ALLOC) or bool(self.meta_flags & _META_UNALLOC)

    def record(self, vol: VolumeContext, inode: str, size: int | None,
               target: ReadTarget | None, suffix: str = "", error: str | None = None,
               unreadable: bool = False) -> FileRecord:
        name_unalloc = bool(self.name_flags & _NAME_UNALLOC)
        meta_unalloc = bool(self.meta_flags & _META_UNALLOC)
        r = FileRecord(
            vol.evidence, vol.volume_offset, vol.fs_type, self.path + suffix, inode, size,
            name_unalloc or meta_unalloc, self.orphan,
            name_unalloc and self.meta is not None and not meta_unalloc,
            error=error, target=target, orphan_long_name=self.orphan_lfn,
            unreadable=unreadable,
        )
        m = self.meta
        if m is not None:
            r.mtime = iso_time(m.mtime, m.mtime_nano)
            r.atime = iso_time(m.atime, m.atime_nano)
            r.ctime = iso_time(m.ctime, m.ctime_nano)
            r.crtime = iso_time(m.crtime, m.crtime_nano)
        return r


_NTFS_BITMAP = 6  # MFT entry of $Bitmap: one bit per cluster, set when a file owns it
_NONRES = int(pytsk3.TSK_FS_ATTR_NONRES)
_BITMAP_CHUNK = 1 << 20  # bytes of $Bitmap read at a time (8 Mi clusters)


def _overwritten(fs: pytsk3.FS_Info, f: pytsk3.File, atype: int, aid: int) -> tuple[int, int]:
    """(clusters now owned by other files, clusters stored) of a deleted file's attribute.
    NTFS clears a file's clusters in $Bitmap when it deletes the file, so a set bit means the
    cluster was given to another file since: what TSK would read there is no longer this
    file's content (ntfsundelete reports the same as a recovery percentage below 100).
    (0, 0) when it cannot tell: the content is then read as icat reads it."""
    try:
        runs: list[tuple[int, int]] = []
        for a in f:
            if (int(a.info.type), int(a.info.id)) != (atype, aid):
                continue
            if int(a.info.flags) & _NONRES:
                runs = [(int(r.addr), int(r.len)) for r in a if not int(r.flags) & 0x03]
            break
        if not runs:
            return 0, 0
        bitmap = fs.open_meta(inode=_NTFS_BITMAP)
        taken = 0
        for addr, count in runs:
            pos, end = addr, addr + count
            while pos < end:
                n = min(end - pos, _BITMAP_CHUNK * 8 - pos % 8)
                lo = pos // 8
                raw = bitmap.read_random(lo, (pos % 8 + n + 7) // 8)
                bits = int.from_bytes(raw, "little") >> (pos % 8)
                taken += (bits & ((1 << n) - 1)).bit_count()
                pos += n
        return taken, sum(count for _, count in runs)
    except OSError:
        return 0, 0


def _name_only(e: _Entry, vol: VolumeContext, stats: WalkStats) -> Iterator[FileRecord]:
    """An entry without metadata. A deleted name is what is left of a file (no content to
    read); an allocated name whose metadata TSK cannot read is damage: an error with TSK's
    reason for a file, a note on the volume for a directory that cannot be entered."""
    if e.meta_error and not e.name_flags & _NAME_UNALLOC:
        if e.name_type in _DIR_NAME and e.name_type != _UNDEF_NAME:
            stats.errors.append(f"directory {e.path} not entered: cannot read its metadata: "
                                f"{e.meta_error}")
            return
        yield e.record(vol, str(e.addr), None, None, unreadable=True,
                       error=f"cannot read metadata: {e.meta_error}")
    elif e.name_type == _REG_NAME:
        yield e.record(vol, str(e.addr), None, None, error=NO_META)


def _size_limit(fs: pytsk3.FS_Info, fs_type: str) -> int:
    """The largest file a file system can hold, where its format bounds it: ext2/3/4 address a
    file's blocks with 32-bit logical numbers. A larger size is a damaged inode; hashing it
    would read zeros for ever."""
    if fs_type.startswith("ext"):
        return int(fs.info.block_size) << 32
    return 1 << 63


def _ntfs_records(e: _Entry, vol: VolumeContext, fs: pytsk3.FS_Info) -> Iterator[FileRecord]:
    regular = e.regular
    try:
        attrs = [(int(a.info.type), int(a.info.id), a.info.name, int(a.info.size))
                 for a in e.file]
    except OSError as err:
        if regular:
            yield e.record(vol, str(e.addr), None, None, unreadable=True,
                           error=f"cannot list attributes: {_msg(err)}")
        return
    emitted = False
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
        inode, suffix = f"{e.addr}-{atype}-{aid}", f":{stream}" if stream else ""
        if e.addr == _NTFS_BADCLUS and stream == "$Bad":
            # sized like the whole volume, fully sparse: nothing to read, never hash terabytes
            yield e.record(vol, inode, asize, None, suffix,
                           error="not read: sparse bad-cluster map")
            continue
        if e.meta_flags & _META_UNALLOC:
            taken, stored = _overwritten(fs, e.file, atype, aid)
            if taken:
                yield e.record(vol, inode, asize, None, suffix, error=(
                    f"content overwritten: {taken:,} of {stored:,} clusters of this deleted "
                    "file now belong to other files"))
                continue
        yield e.record(vol, inode, asize, ReadTarget(e.addr, atype, aid, e.file), suffix)
    if regular and not emitted:
        # TSK stops loading attributes at the first damaged one and the directory iteration
        # hides why: opening the entry again gives TSK's reason (as istat shows it)
        try:
            fs.open_meta(inode=e.addr)
        except OSError as err:
            data = ntfs_raw.unnamed_data(fs, e.addr)
            if data is not None:  # TSK refuses a sparse run longer than the volume: read it
                yield e.record(vol, f"{e.addr}-{_NTFS_DATA}-{data.attr_id}", data.size,
                               ReadTarget(e.addr, _NTFS_DATA, data.attr_id))
                return
            yield e.record(vol, str(e.addr), None, None, unreadable=True,
                           error=f"cannot read metadata: {_msg(err)}")
            return
        damage = ntfs_raw.damage(fs, e.addr)
        if damage:
            yield e.record(vol, str(e.addr), None, None, unreadable=True,
                           error=f"cannot read metadata: {damage}")
            return
        yield e.record(vol, str(e.addr), None, None, error="no data attribute")


RESOURCE_FORK = "com.apple.ResourceFork"  # the name macOS (and the APFS backend) give it
_HFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_HFS_DATA)
_HFS_RSRC = int(pytsk3.TSK_FS_ATTR_TYPE_HFS_RSRC)
_ATTR_COMP = int(pytsk3.TSK_FS_ATTR_COMP)


def _hfs_resource_fork(e: _Entry, vol: VolumeContext) -> Iterator[FileRecord]:
    """An HFS+ resource fork as its own record ``path:com.apple.ResourceFork`` (inode
    ``addr-4353-id``, the TSK attribute ``icat`` reads), as the APFS backend lists them; not
    for a compressed file, whose resource fork holds the compressed data fork."""
    try:
        attrs = [(int(a.info.type), int(a.info.id), int(a.info.size), int(a.info.flags))
                 for a in e.file]
    except OSError:
        return  # TSK cannot load this file's attributes: its data fork record says so
    if any(t == _HFS_DATA and flags & _ATTR_COMP for t, _, _, flags in attrs):
        return
    for atype, aid, asize, _ in attrs:
        if atype == _HFS_RSRC:
            yield e.record(vol, f"{e.addr}-{atype}-{aid}", asize,
                           ReadTarget(e.addr, atype, aid, e.file), ":" + RESOURCE_FORK)


def _msg(e: BaseException) -> str:
    """TSK's message without pytsk3's wrapper ("FS_Info_open_meta: (tsk3.cpp:427) Unable to
    open file: "), on one line."""
    text = " ".join(str(e).split())
    _, sep, reason = text.partition("Unable to open file: ")
    return (reason if sep else text)[:300]
