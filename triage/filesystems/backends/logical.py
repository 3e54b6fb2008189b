"""Logical folders: ``triage scan DIRECTORY`` (a mounted device, an extracted phone dump).

Same records as the TSK walk, from ``os.lstat``: path relative to the folder (starting with
"/"), inode = ``st_ino``, ``fs_type: "logical"``, never deleted. Nothing is ever followed:
every path component is opened with ``O_NOFOLLOW`` below the folder's own descriptor, so a
symbolic link (recorded, with its target, as a record without content) cannot lead out of the
tree and a directory loop cannot form; bind-mount loops are cut by the ancestors' inodes, and
other file systems mounted inside the folder are not entered (reported, like ``find -xdev``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from triage.filesystems.backends.base import PROBERS, Found, Probed, VolumeRef, register
from triage.evidence.containers import EvidenceSpec
from triage.content.hashing import Keep, Read, hash_reads
from triage.records import FileRecord, ReadTarget, iso_time
from triage.filesystems.walk import MAX_DEPTH, DirRef, VolumeContext, WalkOptions, WalkStats

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)  # only the owner (or root) may; tried, then dropped


@dataclass
class LogicalHandle:
    root: str
    fd: int  # the folder itself; everything else is opened relative to it
    dev: int


def probe_logical(img: Any, spec: EvidenceSpec, volume: Any) -> Probed | None:
    """A folder given as evidence is one file system, scanned by this backend."""
    if img is not None or spec.format != "logical":
        return None
    try:
        st = os.stat(spec.path)
    except OSError as e:
        return Probed("error", f"cannot read folder: {e.strerror}", "logical")
    return Probed("scanned", None, "logical", found=(
        Found("logical", 0, "logical", DirRef(st.st_ino, "", frozenset([st.st_ino])),
              f"logical folder {spec.path}"),))


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def _open_dir(h: LogicalHandle, path: str) -> int:
    """Descend from the folder one component at a time, refusing symbolic links."""
    fd = os.dup(h.fd)
    try:
        for part in _components(path):
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno == errno.ENOTDIR and _is_link(part, fd):
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
                raise
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_file(h: LogicalHandle, path: str) -> int:
    parts = _components(path)
    dfd = _open_dir(h, "/".join(parts[:-1]))
    try:
        try:
            return os.open(parts[-1], _FILE_FLAGS | _NOATIME, dir_fd=dfd)
        except PermissionError:
            if not _NOATIME:
                raise
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=dfd)
    finally:
        os.close(dfd)


def _iso_ns(ns: int) -> str | None:
    return iso_time(ns // 1_000_000_000, ns % 1_000_000_000)


def _record(vol: VolumeContext, path: str, st: os.stat_result, size: int | None,
            target: ReadTarget | None, error: str | None = None) -> FileRecord:
    birth = getattr(st, "st_birthtime", None)  # macOS/BSD; Linux lstat has none
    return FileRecord(vol.evidence, vol.volume_offset, vol.fs_type, path, str(st.st_ino), size,
                      False, mtime=_iso_ns(st.st_mtime_ns), atime=_iso_ns(st.st_atime_ns),
                      ctime=_iso_ns(st.st_ctime_ns),
                      crtime=iso_time(int(birth)) if birth else None,
                      error=error, target=target)


class LogicalBackend:
    def open(self, ref: VolumeRef) -> LogicalHandle:
        fd = os.open(ref.evidence.path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        return LogicalHandle(ref.evidence.path, fd, os.fstat(fd).st_dev)

    def root(self, h: LogicalHandle) -> DirRef:
        ino = os.fstat(h.fd).st_ino
        return DirRef(ino, "", frozenset([ino]))

    def list_directory(self, h: LogicalHandle, d: DirRef, vol: VolumeContext,
                       options: WalkOptions, stats: WalkStats, subdirs: list[DirRef],
                       start: int = 0, limit: int | None = None) -> Iterator[FileRecord]:
        """Entries ``start .. start+limit`` of one directory in name order (stable across the
        slices of a huge directory)."""
        stats.more = None
        where = d.path or "/"
        try:
            fd = _open_dir(h, d.path)
        except OSError as e:
            stats.errors.append(f"cannot open directory {where}: {_why(e)}")
            return
        try:
            if os.fstat(fd).st_ino != d.addr:
                stats.errors.append(f"directory {where} changed since it was listed")
                return
            names = sorted(os.listdir(fd))
            end = len(names) if limit is None else min(len(names), start + limit)
            for name in names[start:end]:
                yield from self._entry(h, fd, d, name, vol, stats, subdirs)
            if end < len(names):
                stats.more = end
        except OSError as e:
            stats.errors.append(f"error while listing {where}: {_why(e)}")
        finally:
            os.close(fd)

    def _entry(self, h: LogicalHandle, fd: int, d: DirRef, name: str, vol: VolumeContext,
               stats: WalkStats, subdirs: list[DirRef]) -> Iterator[FileRecord]:
        path = f"{d.path}/{name}"
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as e:
            stats.errors.append(f"cannot stat {path}: {_why(e)}")
            return
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            if st.st_dev != h.dev:
                stats.errors.append(f"{path}: another file system is mounted here; not entered")
            elif st.st_ino in d.ancestors:
                stats.loops += 1
            elif len(d.ancestors) < MAX_DEPTH:
                subdirs.append(DirRef(st.st_ino, path, d.ancestors | {st.st_ino}))
            else:
                stats.errors.append(f"{path}: deeper than {MAX_DEPTH} levels; not entered")
        elif stat.S_ISREG(mode):
            yield _record(vol, path, st, st.st_size, ReadTarget(path, None, st.st_ino))
        elif stat.S_ISLNK(mode):
            try:
                to = os.readlink(name, dir_fd=fd)
            except OSError as e:
                to = f"? ({_why(e)})"
            yield _record(vol, path, st, None, None,
                          f"symbolic link to '{to}': recorded, not followed")

    def hash_content(self, h: LogicalHandle, target: ReadTarget, size: int,
                     algorithms: tuple[str, ...], progress: Callable[[], None] = lambda: None,
                     keep: Keep | None = None) -> Read:
        """Same contract as ``triage.content.hashing.hash_content``; a file that is no longer the one
        listed (other inode, other size, not regular) is an error, never silently hashed."""
        try:
            fd = _open_file(h, str(target.addr))
        except OSError as e:
            return Read(None, f"read error: {_why(e)}", 0)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (target.attr_id is not None
                                                and st.st_ino != target.attr_id):
                return Read(None, "not read: the file was replaced since it was listed", 0)
            if st.st_size != size:
                return Read(None, (f"not read: the file changed size since it was listed "
                                   f"({size} -> {st.st_size} bytes)"), 0)
            return hash_reads(lambda p, n: os.pread(fd, n, p), size, algorithms, progress, keep)
        except OSError as e:
            return Read(None, f"read error: {_why(e)}", 0)
        finally:
            os.close(fd)


def _why(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "a path component is a symbolic link (not followed)"
    return e.strerror or str(e)


register("logical", LogicalBackend())
PROBERS.append(probe_logical)
