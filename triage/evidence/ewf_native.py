"""EWF through the system's libewf (Debian ``libewf2``, pulled in by ``ewf-tools``) via ctypes.

Why: the libewf-python wheel on PyPI inflates compressed chunks at ~25 MB/s; the distribution's
libewf, linked to zlib, does ~450 MB/s on the same E01, and ctypes releases the GIL during each
read. The handle offers the ``read_buffer_at_offset``/``get_media_size``/``get_hash_value``/
``close`` subset of ``pyewf.handle`` that ``triage.evidence.containers`` uses, so either can serve. When the
library is absent, ``available()`` is False and pyewf is used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache

_c_ssize_t = ctypes.c_ssize_t
_ERR = ctypes.POINTER(ctypes.c_void_p)


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    if os.environ.get("TRIAGE_NO_NATIVE_EWF"):
        return None
    for name in ("libewf.so.2", ctypes.util.find_library("ewf")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            _declare(lib)
        except AttributeError:
            continue
        return lib
    return None


def _declare(lib: ctypes.CDLL) -> None:
    vp, err = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
    lib.libewf_handle_initialize.argtypes = [ctypes.POINTER(vp), err]
    lib.libewf_glob.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint8,
                                ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)),
                                ctypes.POINTER(ctypes.c_int), err]
    lib.libewf_glob_free.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, err]
    lib.libewf_handle_open.argtypes = [vp, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                       ctypes.c_int, err]
    lib.libewf_handle_read_random.argtypes = [vp, ctypes.c_void_p, ctypes.c_size_t,
                                              ctypes.c_int64, err]
    lib.libewf_handle_read_random.restype = _c_ssize_t
    lib.libewf_handle_get_media_size.argtypes = [vp, ctypes.POINTER(ctypes.c_uint64), err]
    lib.libewf_handle_get_utf8_hash_value.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t,
                                                      ctypes.c_char_p, ctypes.c_size_t, err]
    lib.libewf_handle_get_utf8_header_value.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t,
                                                        ctypes.c_char_p, ctypes.c_size_t, err]
    lib.libewf_handle_segment_files_corrupted.argtypes = [vp, err]
    lib.libewf_handle_get_number_of_checksum_errors.argtypes = [vp, ctypes.POINTER(ctypes.c_uint32),
                                                                err]
    lib.libewf_handle_get_checksum_error.argtypes = [vp, ctypes.c_uint32,
                                                     ctypes.POINTER(ctypes.c_uint64),
                                                     ctypes.POINTER(ctypes.c_uint64), err]
    lib.libewf_handle_close.argtypes = [vp, err]
    lib.libewf_handle_free.argtypes = [ctypes.POINTER(vp), err]
    lib.libewf_error_sprint.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t]
    lib.libewf_error_free.argtypes = [ctypes.POINTER(vp)]


def available() -> bool:
    return _lib() is not None


def version() -> str:
    lib = _lib()
    assert lib is not None
    lib.libewf_get_version.restype = ctypes.c_char_p
    return f"{lib.libewf_get_version().decode()} (system library)"


def _raise(lib: ctypes.CDLL, error: ctypes.c_void_p, what: str) -> None:
    text = what
    if error:
        buf = ctypes.create_string_buffer(2048)
        lib.libewf_error_sprint(error, buf, len(buf))
        lib.libewf_error_free(ctypes.byref(error))
        text = f"{what}: {' '.join(buf.value.decode('utf-8', 'replace').split())}"
    raise OSError(text)


def glob(path: str) -> list[str]:
    lib = _lib()
    assert lib is not None
    names = ctypes.POINTER(ctypes.c_char_p)()
    count = ctypes.c_int(0)
    error = ctypes.c_void_p()
    raw = os.fsencode(path)
    if lib.libewf_glob(raw, len(raw), 0, ctypes.byref(names), ctypes.byref(count),
                       ctypes.byref(error)) != 1:
        _raise(lib, error, "unable to find the EWF segments")
    try:
        return [os.fsdecode(names[i]) for i in range(count.value)]
    finally:
        lib.libewf_glob_free(names, count, None)


class Handle:
    """A read-only libewf handle; reads release the GIL (ctypes)."""

    def __init__(self) -> None:
        self._lib = _lib()
        assert self._lib is not None
        self._h = ctypes.c_void_p()
        error = ctypes.c_void_p()
        if self._lib.libewf_handle_initialize(ctypes.byref(self._h), ctypes.byref(error)) != 1:
            _raise(self._lib, error, "unable to initialise libewf")

    def open(self, filenames: list[str], mode: str = "r") -> None:
        if mode != "r":
            raise ValueError("evidence is opened read-only")
        array = (ctypes.c_char_p * len(filenames))(*[os.fsencode(f) for f in filenames])
        error = ctypes.c_void_p()
        if self._lib.libewf_handle_open(self._h, array, len(filenames), 1,
                                        ctypes.byref(error)) != 1:  # 1: LIBEWF_ACCESS_FLAG_READ
            _raise(self._lib, error, "unable to open the EWF image")
        # libewf opens an incomplete segment set and reads the missing chunks as zeros
        if self._lib.libewf_handle_segment_files_corrupted(self._h, None) != 0:
            self.close()
            raise OSError("EWF segment files incomplete or corrupted (a segment missing or cut?)")

    def read_buffer_at_offset(self, size: int, offset: int) -> bytes:
        return bytes(self.read_into_new(offset, size))

    def read_into_new(self, offset: int, size: int) -> bytearray:
        """``size`` bytes at ``offset`` (fewer at the end) in a new buffer, copied once."""
        buf = bytearray(size)
        n = self.readinto(memoryview(buf), offset)
        del buf[n:]
        return buf

    def readinto(self, buf: memoryview, offset: int) -> int:
        """Read into a writable buffer without an intermediate copy; bytes read."""
        target = (ctypes.c_char * len(buf)).from_buffer(buf)
        error = ctypes.c_void_p()
        n = self._lib.libewf_handle_read_random(self._h, target, len(buf), offset,
                                                ctypes.byref(error))
        if n < 0:
            _raise(self._lib, error, f"unable to read {len(buf)} bytes at offset {offset}")
        return n

    def get_media_size(self) -> int:
        size = ctypes.c_uint64(0)
        error = ctypes.c_void_p()
        if self._lib.libewf_handle_get_media_size(self._h, ctypes.byref(size),
                                                  ctypes.byref(error)) != 1:
            _raise(self._lib, error, "unable to read the media size")
        return size.value

    def get_hash_value(self, name: str) -> str | None:
        out = ctypes.create_string_buffer(256)
        key = name.encode()
        if self._lib.libewf_handle_get_utf8_hash_value(self._h, key, len(key), out, len(out),
                                                       None) != 1:
            return None
        return out.value.decode("ascii", "replace") or None

    def get_header_value(self, name: str) -> str | None:
        """An acquisition header value (``case_number``, ``examiner_name``, ...) or None."""
        out = ctypes.create_string_buffer(64 * 1024)
        key = name.encode()
        if self._lib.libewf_handle_get_utf8_header_value(self._h, key, len(key), out, len(out),
                                                         None) != 1:
            return None
        return out.value.decode("utf-8", "replace") or None

    def checksum_errors(self) -> list[tuple[int, int]]:
        """(first sector, sector count) of every chunk whose checksum failed so far: libewf
        still returns those bytes, so a reader must ask."""
        count = ctypes.c_uint32(0)
        self._lib.libewf_handle_get_number_of_checksum_errors(self._h, ctypes.byref(count), None)
        out = []
        for i in range(count.value):
            start, n = ctypes.c_uint64(0), ctypes.c_uint64(0)
            self._lib.libewf_handle_get_checksum_error(self._h, i, ctypes.byref(start),
                                                       ctypes.byref(n), None)
            out.append((start.value, n.value))
        return out

    def close(self) -> None:
        if self._h:
            self._lib.libewf_handle_close(self._h, None)
            self._lib.libewf_handle_free(ctypes.byref(self._h), None)
            self._h = ctypes.c_void_p()
