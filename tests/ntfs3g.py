"""Build NTFS test volumes with libntfs-3g itself (through ctypes), without mounting.

FUSE is not available everywhere the tests run, so instead of ``ntfs-3g`` mounts this calls the
library functions the ntfs-3g driver calls for ``mkdir``, ``write`` (``ntfs_attr_pwrite``: a
write past the end leaves a sparse hole, as through a mount) and ``unlink`` (``ntfs_delete``):
the volume is made by the same code as on a mounted volume, and shares no code with TSK or
with triage.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath

S_IFDIR = 0o040000
S_IFREG = 0o100000
AT_DATA = 0x80


def available() -> bool:
    return shutil.which("mkntfs") is not None and _lib_name() is not None


def _lib_name() -> str | None:
    name = ctypes.util.find_library("ntfs-3g")
    if name:
        return name
    try:
        ctypes.CDLL("libntfs-3g.so.89")
        return "libntfs-3g.so.89"
    except OSError:
        return None


def mkntfs(image: Path, size: int, cluster: int = 4096) -> None:
    with open(image, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkntfs", "-q", "-F", "-Q", "-s", "512", "-c", str(cluster), "-p", "0",
                    "-H", "0", "-S", "0", str(image)], check=True, capture_output=True)


class Volume:
    """A volume opened read-write by libntfs-3g; use as a context manager (unmounts)."""

    def __init__(self, image: Path) -> None:
        name = _lib_name()
        if name is None:
            raise OSError("libntfs-3g not found")
        lib = ctypes.CDLL(name, use_errno=True)
        vp = ctypes.c_void_p
        lib.ntfs_mount.restype, lib.ntfs_mount.argtypes = vp, [ctypes.c_char_p, ctypes.c_ulong]
        lib.ntfs_umount.restype, lib.ntfs_umount.argtypes = ctypes.c_int, [vp, ctypes.c_int]
        lib.ntfs_pathname_to_inode.restype = vp
        lib.ntfs_pathname_to_inode.argtypes = [vp, vp, ctypes.c_char_p]
        lib.ntfs_mbstoucs.restype = ctypes.c_int
        lib.ntfs_mbstoucs.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
        lib.ntfs_create.restype = vp
        lib.ntfs_create.argtypes = [vp, ctypes.c_uint32, vp, ctypes.c_uint8, ctypes.c_uint]
        lib.ntfs_inode_close.restype, lib.ntfs_inode_close.argtypes = ctypes.c_int, [vp]
        lib.ntfs_attr_open.restype = vp
        lib.ntfs_attr_open.argtypes = [vp, ctypes.c_uint32, vp, ctypes.c_uint32]
        lib.ntfs_attr_pwrite.restype = ctypes.c_int64
        lib.ntfs_attr_pwrite.argtypes = [vp, ctypes.c_int64, ctypes.c_int64, ctypes.c_char_p]
        lib.ntfs_attr_close.restype, lib.ntfs_attr_close.argtypes = None, [vp]
        lib.ntfs_delete.restype = ctypes.c_int
        lib.ntfs_delete.argtypes = [vp, ctypes.c_char_p, vp, vp, vp, ctypes.c_uint8]
        self.lib = lib
        self.unnamed = ctypes.addressof(ctypes.c_uint16.in_dll(lib, "AT_UNNAMED"))
        self.vol = lib.ntfs_mount(os.fsencode(image), 0)
        if not self.vol:
            raise OSError(ctypes.get_errno(), f"ntfs_mount({image}) failed")

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc) -> None:
        if self.lib.ntfs_umount(self.vol, 0) != 0:
            raise OSError(ctypes.get_errno(), "ntfs_umount failed")

    def _inode(self, path: str) -> int:
        ni = self.lib.ntfs_pathname_to_inode(self.vol, None, path.encode())
        if not ni:
            raise OSError(ctypes.get_errno(), f"no NTFS inode for {path}")
        return ni

    def _uname(self, name: str) -> tuple[ctypes.c_void_p, int]:
        uname = ctypes.c_void_p()
        n = self.lib.ntfs_mbstoucs(name.encode("utf-8"), ctypes.byref(uname))
        if n <= 0:
            raise OSError(ctypes.get_errno(), f"cannot convert {name!r}")
        return uname, n

    def _create(self, path: str, mode: int) -> int:
        p = PurePosixPath(path)
        parent = self._inode(str(p.parent))
        uname, n = self._uname(p.name)
        ni = self.lib.ntfs_create(parent, 0, uname, n, mode)
        self.lib.ntfs_inode_close(parent)
        if not ni:
            raise OSError(ctypes.get_errno(), f"ntfs_create({path}) failed")
        return ni

    def mkdir(self, path: str) -> None:
        self.lib.ntfs_inode_close(self._create(path, S_IFDIR))

    def write(self, path: str, pieces: list[tuple[int, bytes]]) -> None:
        """Create ``path`` and write each (offset, bytes); gaps between them stay sparse."""
        ni = self._create(path, S_IFREG)
        try:
            na = self.lib.ntfs_attr_open(ni, AT_DATA, self.unnamed, 0)
            if not na:
                raise OSError(ctypes.get_errno(), f"ntfs_attr_open({path}) failed")
            try:
                for offset, data in pieces:
                    done = 0
                    while done < len(data):
                        n = self.lib.ntfs_attr_pwrite(na, offset + done, len(data) - done,
                                                      data[done:])
                        if n <= 0:
                            raise OSError(ctypes.get_errno(), f"ntfs_attr_pwrite({path})")
                        done += n
            finally:
                self.lib.ntfs_attr_close(na)
        finally:
            self.lib.ntfs_inode_close(ni)

    def delete(self, path: str) -> None:
        """Unlink ``path`` as the driver does (``ntfs_delete`` closes both inodes)."""
        p = PurePosixPath(path)
        ni = self._inode(path)
        parent = self._inode(str(p.parent))
        uname, n = self._uname(p.name)
        if self.lib.ntfs_delete(self.vol, path.encode(), ni, parent, uname, n) != 0:
            raise OSError(ctypes.get_errno(), f"ntfs_delete({path}) failed")
