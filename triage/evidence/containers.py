"""Evidence: open any supported container as one read-only byte stream for TSK.

Each container format registers a detector (magic bytes first, file extension second) and an
opener. Raw is tried last. A format whose Python binding is missing stays registered but refuses
with a clear message, so a VHD is never scanned as raw bytes by accident (the pytsk3 trap).
Workers reopen evidence from the picklable ``EvidenceSpec``: every process has its own handles.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytsk3

from triage.errors import EvidenceError
from triage.evidence.buffers import Buffer, as_bytes

log = logging.getLogger(__name__)

HEAD_SIZE = 4096


@dataclass(frozen=True)
class EvidenceSpec:
    """What a worker needs to reopen one piece of evidence."""

    path: str  # as given by the user
    format: str
    segments: tuple[str, ...]
    size: int
    parent: str | None = None  # differential VHD/VMDK parent, when there is one
    stored_hashes: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


class StreamImage(pytsk3.Img_Info):
    """A pytsk3 image over any object with ``read_buffer_at_offset(size, offset)`` (libyal)."""

    def __init__(self, handle: Any, size: int, closers: list[Any] | None = None) -> None:
        self._handle = handle
        self._size = size
        self._closers = closers or [handle]
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read(self, offset: int, length: int) -> bytes:
        """TSK's (and ``--verify-image``'s) read: always ``bytes`` (``hashing.as_bytes``),
        whatever buffer type the binding hands back."""
        try:
            return as_bytes(self._handle.read_buffer_at_offset(length, offset))
        except Exception as e:  # noqa: BLE001 - libyal raises IOError/RuntimeError/ValueError
            # TSK turns an OSError from this callback into a read error on that one request
            raise OSError(f"{type(e).__name__}: {_first_line(e)}") from None

    def get_size(self) -> int:
        return self._size

    def checksum_errors(self) -> list[tuple[int, int]]:
        """Corrupt chunks met so far (EWF through the system libewf; [] where unknown)."""
        probe = getattr(self._handle, "checksum_errors", None)
        return probe() if probe else []

    def close(self) -> None:
        for c in self._closers:
            c.close()


class SegmentedFile:
    """Concatenated raw segments read with ``os.pread`` (no shared file offset, no GIL held)."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        self._fds = [os.open(p, os.O_RDONLY) for p in paths]
        self._starts: list[int] = []
        total = 0
        for fd in self._fds:
            self._starts.append(total)
            total += os.fstat(fd).st_size
        self.size = total

    def read_buffer_at_offset(self, length: int, offset: int) -> bytes:
        out = []
        while length > 0 and offset < self.size:
            i = max(j for j, s in enumerate(self._starts) if s <= offset)
            chunk = os.pread(self._fds[i], length, offset - self._starts[i])
            if not chunk:
                break
            out.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(out)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)


@dataclass(frozen=True)
class ContainerFormat:
    name: str
    detect: Callable[[bytes, bytes, str], bool]  # (head, tail, path) -> bool
    segments: Callable[[str], tuple[str, ...]]
    open: Callable[[EvidenceSpec], pytsk3.Img_Info]
    describe: Callable[[str, tuple[str, ...]], tuple[int, str | None, dict[str, str]]]
    binding: str | None = None  # module that must import for this format to work


def _single(path: str) -> tuple[str, ...]:
    return (path,)


_SPLIT_DIGITS = re.compile(r"^(.*\.)(\d{2,4})$")
_SPLIT_ALPHA = re.compile(r"^(.*\.)([a-z]{2})$")


def split_raw_segments(path: str) -> tuple[str, ...]:
    """All segments of a split raw image given its first one (.000/.001/.aa and so on)."""
    m = _SPLIT_DIGITS.match(path)
    if m:
        stem, num = m.group(1), m.group(2)
        width, n = len(num), int(num)
        names = []
        while os.path.exists(f"{stem}{n:0{width}d}"):
            names.append(f"{stem}{n:0{width}d}")
            n += 1
        return tuple(names) or (path,)
    m = _SPLIT_ALPHA.match(path)
    if m:
        stem, names = m.group(1), []
        for a in "abcdefghijklmnopqrstuvwxyz":
            for b in "abcdefghijklmnopqrstuvwxyz":
                if a + b < m.group(2):
                    continue
                cand = f"{stem}{a}{b}"
                if not os.path.exists(cand):
                    return tuple(names) or (path,)
                names.append(cand)
        return tuple(names)
    return (path,)


def _is_first_split_segment(path: str) -> bool:
    m = _SPLIT_DIGITS.match(path)
    if m:
        return int(m.group(2)) in (0, 1)
    m = _SPLIT_ALPHA.match(path)
    return bool(m and m.group(2) == "aa")


# --- raw ------------------------------------------------------------------------------------


def _open_raw(spec: EvidenceSpec) -> pytsk3.Img_Info:
    if len(spec.segments) == 1 and _tsk_can_name(spec.segments[0]):
        return pytsk3.Img_Info(spec.segments[0], type=pytsk3.TSK_IMG_TYPE_RAW)
    # several segments, or a path pytsk3 cannot take (bytes that are not UTF-8): read in Python
    seg = SegmentedFile(spec.segments)
    return StreamImage(seg, seg.size)


def _tsk_can_name(path: str) -> bool:
    """pytsk3 takes a path as UTF-8 text only; a name with raw bytes (surrogateescape) fails."""
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _describe_raw(path: str, segments: tuple[str, ...]) -> tuple[int, str | None, dict[str, str]]:
    size = 0
    for s in segments:
        with open(s, "rb") as fh:  # block devices report st_size 0: seek to the end instead
            size += fh.seek(0, os.SEEK_END)
    return size, None, {}


# --- EWF (libewf) -----------------------------------------------------------------------------


def _ewf():
    """The system libewf through ctypes when present (fast), else the pyewf wheel."""
    from triage.evidence import ewf_native

    if ewf_native.available():
        return ewf_native.glob, ewf_native.Handle
    import pyewf

    return pyewf.glob, pyewf.handle


def _ewf_segments(path: str) -> tuple[str, ...]:
    glob, _ = _ewf()
    return tuple(glob(path))


def _open_ewf(spec: EvidenceSpec) -> pytsk3.Img_Info:
    _, handle = _ewf()
    h = handle()
    h.open(list(spec.segments), "r")
    return StreamImage(h, h.get_media_size())


def _describe_ewf(path: str, segments: tuple[str, ...]) -> tuple[int, str | None, dict[str, str]]:
    _, handle = _ewf()
    h = handle()
    h.open(list(segments), "r")
    try:
        hashes = {}
        for name in ("MD5", "SHA1"):
            try:
                value = h.get_hash_value(name)
            except Exception:  # noqa: BLE001 - libewf raises IOError for absent values
                value = None
            if value:
                hashes[name.lower()] = value.lower()
        return h.get_media_size(), None, hashes
    finally:
        h.close()


# --- libyal virtual disks (VHD/VHDX, VMDK, QCOW) ----------------------------------------------


def _parent_path(path: str, parent_name: str | None) -> str | None:
    if not parent_name:
        return None
    base = re.split(r"[\\/]", parent_name)[-1]
    candidate = os.path.join(os.path.dirname(path), base)
    if not os.path.exists(candidate):
        raise EvidenceError(
            f"{path}: differential disk whose parent '{parent_name}' is missing "
            f"(put '{base}' beside it)"
        )
    return candidate


def _open_vhdi(path: str) -> tuple[Any, list[Any], str | None]:
    """Open a VHD/VHDX and, for a differential disk, its parent chain found beside it."""
    import pyvhdi

    f = pyvhdi.file()
    f.open(path)
    closers, parent = [f], None
    if f.get_disk_type() == 4:  # differential
        parent = _parent_path(path, f.get_parent_filename())
        p, more, _ = _open_vhdi(parent)  # type: ignore[arg-type]
        f.set_parent(p)
        closers += more
    return f, closers, parent


def _open_vhd(spec: EvidenceSpec) -> pytsk3.Img_Info:
    f, closers, _ = _open_vhdi(spec.segments[0])
    return StreamImage(f, f.get_media_size(), closers)


def _describe_vhd(path: str, segments: tuple[str, ...]) -> tuple[int, str | None, dict[str, str]]:
    f, closers, parent = _open_vhdi(path)
    try:
        return f.get_media_size(), parent, {}
    finally:
        for c in closers:
            c.close()


def _open_vmdk(spec: EvidenceSpec) -> pytsk3.Img_Info:
    import pyvmdk

    h = pyvmdk.handle()
    h.open(spec.segments[0])
    h.open_extent_data_files()
    if h.get_parent_filename():
        raise EvidenceError(f"{spec.path}: differential VMDK is not supported yet")
    return StreamImage(h, h.get_media_size())


def _open_qcow(spec: EvidenceSpec) -> pytsk3.Img_Info:
    import pyqcow

    f = pyqcow.file()
    f.open(spec.segments[0])
    if f.get_backing_filename():
        raise EvidenceError(f"{spec.path}: QCOW with a backing file is not supported yet")
    return StreamImage(f, f.get_media_size())


def _describe_by_open(opener: Callable[[EvidenceSpec], pytsk3.Img_Info], fmt: str):
    def describe(path: str, segments: tuple[str, ...]) -> tuple[int, str | None, dict[str, str]]:
        img = opener(EvidenceSpec(path, fmt, segments, 0))
        try:
            return img.get_size(), None, {}
        finally:
            img.close()

    return describe


def _magic(*prefixes: bytes) -> Callable[[bytes, bytes, str], bool]:
    def detect(head: bytes, tail: bytes, path: str) -> bool:
        return any(head.startswith(p) for p in prefixes)

    return detect


def _vhd_detect(head: bytes, tail: bytes, path: str) -> bool:
    # dynamic/differential VHDs copy the footer to offset 0; fixed VHDs have it only at the end
    return head.startswith(b"conectix") or tail[-512:].startswith(b"conectix")


def _vmdk_detect(head: bytes, tail: bytes, path: str) -> bool:
    return head.startswith(b"KDMV") or head.lstrip().startswith(b"# Disk DescriptorFile")


def _refuse(name: str, why: str) -> Callable[[EvidenceSpec], pytsk3.Img_Info]:
    def opener(spec: EvidenceSpec) -> pytsk3.Img_Info:
        raise EvidenceError(f"{spec.path}: {name} {why}")

    return opener


FORMATS: list[ContainerFormat] = [
    ContainerFormat("ewf", _magic(b"EVF\x09\x0d\x0a\xff\x00", b"EVF2\r\n\x81\x00"), _ewf_segments,
                    _open_ewf, _describe_ewf, "pyewf"),
    ContainerFormat("vhdx", _magic(b"vhdxfile"), _single, _open_vhd, _describe_vhd, "pyvhdi"),
    ContainerFormat("vhd", _vhd_detect, _single, _open_vhd, _describe_vhd, "pyvhdi"),
    ContainerFormat("vmdk", _vmdk_detect, _single, _open_vmdk,
                    _describe_by_open(_open_vmdk, "vmdk"), "pyvmdk"),
    ContainerFormat("qcow", _magic(b"QFI\xfb"), _single, _open_qcow,
                    _describe_by_open(_open_qcow, "qcow"), "pyqcow"),
    ContainerFormat("ewf-logical", _magic(b"LVF\x09\x0d\x0a\xff\x00"), _single,
                    _refuse("logical evidence file (L01)", "is not supported"),
                    _describe_by_open(_refuse("logical evidence file (L01)", "is not supported"),
                                      "ewf-logical")),
    ContainerFormat("aff", _magic(b"AFF10\r\n\x00"), _single,
                    _refuse("AFF image", "is not supported"),
                    _describe_by_open(_refuse("AFF image", "is not supported"), "aff")),
    ContainerFormat("split-raw", lambda h, t, p: _is_first_split_segment(p), split_raw_segments,
                    _open_raw, _describe_raw),
    ContainerFormat("raw", lambda h, t, p: True, _single, _open_raw, _describe_raw),
]


def _binding_ok(fmt: ContainerFormat) -> bool:
    if fmt.binding is None:
        return True
    try:
        __import__(fmt.binding)
        return True
    except ImportError:
        log.info("format %s disabled: Python module %s not installed", fmt.name, fmt.binding)
        return False


def identify(path: str) -> EvidenceSpec:
    """Detect the container format of ``path`` and describe it, or raise EvidenceError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise EvidenceError(f"{path}: no such file") from None
    except OSError as e:
        raise EvidenceError(f"{path}: cannot access ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):  # a folder: read by the logical backend (backends/logical.py)
        return EvidenceSpec(path, "logical", (path,), 0)
    _check_kind(path, st.st_mode)
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_SIZE)
            end = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, end - 512))
            tail = fh.read(512)
    except OSError as e:
        raise EvidenceError(f"{path}: cannot read ({e.strerror})") from None
    if not head:
        raise EvidenceError(f"{path}: empty file")
    fmt = next(f for f in FORMATS if f.detect(head, tail, path))
    if not _binding_ok(fmt):
        raise EvidenceError(
            f"{path}: {fmt.name} container detected but the Python module '{fmt.binding}' "
            "is not installed; refusing to scan it as raw bytes"
        )
    try:
        segments = fmt.segments(path)
        for segment in segments[1:]:
            _check_kind(segment, os.stat(segment).st_mode)
        size, parent, hashes = fmt.describe(path, segments)
    except EvidenceError:
        raise
    except Exception as e:  # noqa: BLE001 - binding errors are opaque IOErrors
        raise EvidenceError(f"{path}: cannot open as {fmt.name}: {_first_line(e)}") from None
    return EvidenceSpec(path, fmt.name, tuple(segments), size, parent, hashes)


_NOT_EVIDENCE = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISSOCK, "a socket"))


def check_kind(path: str) -> None:
    """``EvidenceError`` unless ``path`` is a regular file, a block device or a folder (a
    missing path is left to the caller's own message)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISDIR(mode):
        _check_kind(path, mode)


def _check_kind(path: str, mode: int) -> None:
    """Only regular files and block devices are evidence. Why: opening a FIFO blocks for ever
    (scan and info hung), and a character device such as /dev/zero reads as an endless or
    empty stream, which was scanned as a 0-byte raw image with exit 0."""
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode):
        return
    kind = next((name for test, name in _NOT_EVIDENCE if test(mode)), "not a regular file")
    raise EvidenceError(f"{path}: is {kind}, not a disk image or block device")


def open_image(spec: EvidenceSpec) -> pytsk3.Img_Info:
    """Open the evidence read-only as a pytsk3 image (each caller gets its own handle)."""
    fmt = next(f for f in FORMATS if f.name == spec.format)
    try:
        return fmt.open(spec)
    except EvidenceError:
        raise
    except Exception as e:  # noqa: BLE001
        raise EvidenceError(f"{spec.path}: cannot open as {spec.format}: {_first_line(e)}") from None


def direct_reader(spec: EvidenceSpec, img: Any) -> Callable[[int, int], Buffer] | None:
    """``read(offset, length)`` straight from the media, under TSK, or None.

    Why: for large files the hash loop reads the file's block runs itself into one reused
    buffer, which spares TSK's copy, pytsk3's copy and the callback per request: 30% of the
    CPU of a raw scan and half of an E01 scan. Raw media get their own descriptors (closed
    with the process, like the TSK image); EWF through the system libewf shares the handle TSK
    uses (one thread per worker) and returns ``bytearray``s: ``hashing.hash_reads``, the only
    caller's loop, turns them into ``bytes`` (``as_bytes``) before anything else sees them."""
    if spec.format == "raw" and len(spec.segments) == 1:  # a file or a block device
        fd = os.open(spec.segments[0], os.O_RDONLY)
        return lambda offset, length: os.pread(fd, length, offset)
    if spec.format == "raw":
        seg = SegmentedFile(spec.segments)
        return lambda offset, length: seg.read_buffer_at_offset(length, offset)
    handle = getattr(img, "_handle", None)
    if isinstance(img, StreamImage) and hasattr(handle, "readinto"):
        return handle.read_into_new
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def display_name(path: str) -> str:
    return Path(path).name
