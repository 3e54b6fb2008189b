"""APFS through libfsapfs (pyfsapfs): pytsk3 has no pool API, so TSK cannot open APFS volumes.

The prober recognises an APFS container (``NXSB`` at byte 32) in a volume TSK could not open and
reports one file system per APFS volume; workers reopen the container over their own pytsk3
image. Records follow the TSK walk (``fls -r -p`` as in ``triage.filesystems.walk``): regular files only,
symbolic links not followed, inode = file-entry identifier, no deleted entries (libfsapfs reads
the current file-system tree only).

Locked (encrypted, no key given) volumes are never scanned. When a container holds only locked
volumes the container's volume gets status "encrypted"; when it mixes both, each locked volume
is its own volume entry with status "encrypted" (see ``_part``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from triage.filesystems.backends.base import PROBERS, Found, Probed, VolumeRef, register
from triage.evidence.containers import EvidenceSpec, open_image
from triage.content.hashing import Keep, Read, hash_reads
from triage.records import FileRecord, ReadTarget, iso_time
from triage.filesystems.walk import MAX_DEPTH, DirRef, VolumeContext, WalkOptions, WalkStats

log = logging.getLogger(__name__)

NXSB_OFFSET = 32
NXSB_MAGIC = b"NXSB"
ROOT_DIR_ID = 2  # APFS ROOT_DIR_INO_NUM: fixed, so even a locked volume has a known root
RESOURCE_FORK = "com.apple.ResourceFork"
DECMPFS = "com.apple.decmpfs"  # a compressed file keeps its compressed data in the fork
XATTR = 1  # ReadTarget.attr_type for an extended attribute (attr_id = its index)

_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, 0o100000, 0o040000


class ImageSlice:
    """A read-only file-like object over a pytsk3 image from ``offset``: what
    ``pyfsapfs.container().open_file_object`` needs (read, seek, tell, get_size)."""

    def __init__(self, img: Any, offset: int, size: int | None = None) -> None:
        self._img, self._offset = img, offset
        self._size = size if size is not None else max(0, img.get_size() - offset)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        size = max(0, min(size, self._size - self._pos))
        if size == 0:
            return b""
        data = self._img.read(self._offset + self._pos, size)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def get_size(self) -> int:
        return self._size

    def close(self) -> None:
        pass


def is_container(img: Any, offset: int) -> bool:
    """The APFS container superblock (block 0) carries ``NXSB`` at byte 32."""
    try:
        head = img.read(offset, NXSB_OFFSET + 4)
    except OSError:
        return False
    return head[NXSB_OFFSET:NXSB_OFFSET + 4] == NXSB_MAGIC


def open_container(img: Any, offset: int, size: int | None = None) -> tuple[Any, ImageSlice]:
    """Open the container; keep the file object alive as long as the container."""
    import pyfsapfs

    f = ImageSlice(img, offset, size)
    c = pyfsapfs.container()
    c.open_file_object(f)
    return c, f


@dataclass(frozen=True)
class ApfsVolumeInfo:
    """What ``triage info`` and the prober say about one APFS volume (no file is read)."""

    index: int
    name: str | None
    identifier: str | None
    size: int | None
    locked: bool
    error: str | None = None


def describe_container(img: Any, offset: int, size: int | None = None) -> list[ApfsVolumeInfo]:
    """Volumes of the container at ``offset``; raises OSError if it cannot be read."""
    c, _f = open_container(img, offset, size)
    out = []
    try:
        for i in range(c.number_of_volumes):
            try:
                v = c.get_volume(i)
                out.append(ApfsVolumeInfo(i, _safe(v.get_name), _safe(v.get_identifier),
                                          _safe(v.get_size), bool(v.is_locked())))
            except OSError as e:
                out.append(ApfsVolumeInfo(i, None, None, None, False, _msg(e)))
    finally:
        c.close()
    return out


def _safe(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except (OSError, UnicodeError):
        return None


def _label(v: ApfsVolumeInfo, count: int) -> str:
    name = f" '{v.name}'" if v.name else ""
    return f"APFS volume {v.index + 1} of {count}{name}"


def _root() -> DirRef:
    return DirRef(ROOT_DIR_ID, "", frozenset([ROOT_DIR_ID]))


def _part(v: ApfsVolumeInfo, count: int) -> Found:
    """One APFS volume: scanned when readable; a locked one is its own "encrypted" entry, an
    unreadable one an "error" entry (never listed as empty)."""
    extra: dict[str, Any] = {"label": v.name, "size": v.size,
                             "notes": (f"UUID {v.identifier}",) if v.identifier else ()}
    if v.error:
        return Found("apfs", v.index, "apfs", None, f"{_label(v, count)}: error {v.error}",
                     status="error", error=v.error, **extra)
    if v.locked:
        return Found("apfs", v.index, "apfs", _root(),
                     f"{_label(v, count)}: encrypted (APFS, locked), not scanned",
                     status="encrypted", error="encrypted (APFS), not scanned",
                     encryption="APFS (locked)", **extra)
    return Found("apfs", v.index, "apfs", _root(), _label(v, count), **extra)


def probe_apfs(img: Any, spec: EvidenceSpec, volume: Any) -> Probed | None:
    """An APFS container where TSK found no file system: one ``Found`` per APFS volume, and
    the container's own status (what it is when none of its volumes can be scanned)."""
    if img is None or volume.status != "no-filesystem":
        return None
    if not is_container(img, volume.offset):
        return None
    try:
        infos = describe_container(img, volume.offset, volume.length or None)
    except ImportError:
        return Probed("error", "APFS container: libfsapfs-python (pyfsapfs) is not installed",
                      "apfs")
    except OSError as e:
        return Probed("error", f"APFS container that libfsapfs cannot read: {_msg(e)}", "apfs")
    count = len(infos)
    unreadable = [v for v in infos if v.error]
    locked = [v for v in infos if v.locked]
    found = tuple(_part(v, count) for v in infos)
    if any(f.status == "scanned" for f in found):
        # the container's own entry is replaced by its volumes: it no longer counts as unreadable
        return Probed("scanned", None, "apfs", found=found)
    parts = tuple(f"{_label(v, count)}: " + ("locked" if v.locked else f"error {v.error}")
                  for v in infos)
    if locked and not unreadable:
        return Probed("encrypted", (f"encrypted (APFS: {len(locked)} of {count} volumes "
                                    "locked), not scanned"), "apfs", "APFS (locked)", parts,
                      found)
    return Probed("error", "APFS container with no readable volume: " + "; ".join(parts),
                  "apfs", None, parts, found)


@dataclass
class ApfsHandle:
    """One worker's open container and volume (the file object must outlive both)."""

    container: Any
    volume: Any
    image: Any
    file: ImageSlice
    locked: bool
    name: str | None
    offset: int = 0  # of the container in the image, bytes


def _times(entry: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """(mtime, atime, ctime, crtime). libfsapfs 2026 reads the inode's first time field
    (Apple's ``create_time``) as "modification" and the second (``mod_time``) as "creation";
    TSK and Apple's reference agree on create, mod, change, access in that order, so the two
    are swapped back here (tests/test_backends_apfs.py pins this against ``istat``)."""
    def t(name: str) -> str | None:
        try:
            ns = getattr(entry, f"get_{name}_time_as_integer")()
        except OSError:
            return None
        if not ns:
            return None
        return iso_time(ns // 1_000_000_000, ns % 1_000_000_000)

    return t("creation"), t("access"), t("inode_change"), t("modification")


class ApfsBackend:
    def open(self, ref: VolumeRef) -> ApfsHandle:
        img = open_image(ref.evidence)
        c, f = open_container(img, ref.offset)
        v = c.get_volume(ref.sub)
        return ApfsHandle(c, v, img, f, bool(v.is_locked()), _safe(v.get_name), ref.offset)

    def root(self, handle: ApfsHandle) -> DirRef:
        return DirRef(ROOT_DIR_ID, "", frozenset([ROOT_DIR_ID]))

    def list_directory(self, h: ApfsHandle, d: DirRef, vol: VolumeContext, options: WalkOptions,
                       stats: WalkStats, subdirs: list[DirRef], start: int = 0,
                       limit: int | None = None) -> Iterator[FileRecord]:
        """Entries ``start .. start+limit`` of one directory, as ``triage.filesystems.walk``."""
        stats.more = None
        if h.locked:
            name = f" '{h.name}'" if h.name else ""
            stats.errors.append(f"APFS volume{name} is encrypted (locked): not scanned")
            return
        try:
            directory = h.volume.get_file_entry_by_identifier(d.addr)
            count = directory.get_number_of_sub_file_entries()
        except OSError as e:
            stats.errors.append(f"cannot open directory {d.path or '/'}: {_msg(e)}")
            return
        end = count if limit is None else min(count, start + limit)
        for index in range(start, end):
            try:
                entry = directory.get_sub_file_entry(index)
                ident = int(entry.get_identifier())
                name = entry.get_name() or f"<unnamed {ident}>"
                mode = int(entry.get_file_mode() or 0)
            except (OSError, UnicodeError) as e:
                stats.errors.append(f"error while listing {d.path or '/'}: {_msg(e)}")
                continue
            path = f"{d.path}/{name}"
            kind = mode & _S_IFMT
            if kind == _S_IFDIR:
                if ident in d.ancestors:
                    stats.loops += 1
                elif len(d.ancestors) < MAX_DEPTH:
                    subdirs.append(DirRef(ident, path, d.ancestors | {ident}))
                else:  # never a silent drop: the volume is incomplete (exit 4)
                    stats.errors.append(f"directory {path} is deeper than {MAX_DEPTH} levels: "
                                        "not entered")
            elif kind == _S_IFREG:
                yield from _file_records(entry, ident, path, vol)
        if end < count:
            stats.more = end

    def location(self, h: ApfsHandle, target: ReadTarget) -> int | None:
        """Offset of the first extent within the container (for --order physical)."""
        try:
            stream = h.volume.get_file_entry_by_identifier(target.addr)
            if target.attr_type == XATTR:
                stream = stream.get_extended_attribute(target.attr_id)
            if stream.get_number_of_extents():
                return int(stream.get_extent(0)[0])
        except OSError:
            return None
        return None

    def hash_content(self, h: ApfsHandle, target: ReadTarget, size: int,
                     algorithms: tuple[str, ...], progress: Callable[[], None] = lambda: None,
                     keep: Keep | None = None) -> Read:
        """Same contract as ``triage.content.hashing.hash_content``: a short read is an error."""
        try:
            stream = h.volume.get_file_entry_by_identifier(target.addr)
            if target.attr_type == XATTR:
                stream = stream.get_extended_attribute(target.attr_id)
            read = hash_reads(lambda p, n: stream.read_buffer_at_offset(n, p),
                              size, algorithms, progress, keep)
        except OSError as e:
            return Read(None, "read error: " + _msg(e), 0)
        bad = _checksum_error(h, stream)
        if bad:
            return Read(None, bad, read.nbytes)
        return read


def _checksum_error(h: ApfsHandle, stream: Any) -> str | None:
    """As the TSK backend: libewf hands back the bytes of a chunk that failed its checksum, so
    a stream whose extents touch one is an error, not a hash."""
    probe = getattr(h.image, "checksum_errors", None)
    bad = probe() if probe else []
    if not bad:
        return None
    try:
        extents = [stream.get_extent(i) for i in range(stream.get_number_of_extents())]
    except OSError:
        return None
    for offset, length, _flags in extents:
        start = h.offset + offset
        for sector, count in bad:
            if start < (sector + count) * 512 and sector * 512 < start + length:
                return (f"EWF chunk checksum error (sectors {sector}-{sector + count - 1}): "
                        "content unreliable")
    return None


def _file_records(entry: Any, ident: int, path: str, vol: VolumeContext) -> Iterator[FileRecord]:
    mtime, atime, ctime, crtime = _times(entry)

    def record(p: str, size: int | None, target: ReadTarget | None,
               error: str | None = None) -> FileRecord:
        return FileRecord(vol.evidence, vol.volume_offset, vol.fs_type, p, str(ident), size,
                          False, mtime=mtime, atime=atime, ctime=ctime, crtime=crtime,
                          error=error, target=target)

    try:
        size = int(entry.get_size() or 0)
        xattrs = [(i, x.get_name(), int(x.get_size() or 0))
                  for i, x in enumerate(entry.extended_attributes)]
    except (OSError, UnicodeError) as e:
        yield record(path, None, None, f"cannot read file metadata: {_msg(e)}")
        return
    names = {n for _, n, _ in xattrs}
    # an empty data fork (no extents) is an empty file: the empty-file digests, as HFS+, ext4
    # and every other file system give (TSK's APFS code finds no data attribute and icat
    # fails; libfsapfs and dissect.apfs read it as zero bytes)
    yield record(path, size, ReadTarget(ident))
    if DECMPFS in names:
        return  # the resource fork holds the compressed data fork, already hashed above
    for i, name, xsize in xattrs:
        if name == RESOURCE_FORK:
            yield record(f"{path}:{name}", xsize, ReadTarget(ident, XATTR, i))


def _msg(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


register("apfs", ApfsBackend())
PROBERS.append(probe_apfs)
