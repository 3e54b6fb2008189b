"""Whole-media reads for block sampling and block scans: any container ``scan`` opens, as one
read-only byte stream, with several reads in flight where the media allows it.

Raw images and block devices are read with ``os.pread`` from a small thread pool (pread
releases the GIL; an SSD's queue and a disk's command queue then see several requests at
once), with ``POSIX_FADV_RANDOM`` so the kernel does not read ahead around each sample.
Containers (E01, VHD/VHDX, VMDK, QCOW2) go through their own library's read, one at a time
(libyal handles are not thread-safe). O_DIRECT is not used: it needs aligned buffers per
read and bypasses the page cache the benchmark relies on; on a seized device the kernel's
cache holds nothing anyway.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from triage.errors import EvidenceError
from triage.evidence.containers import EvidenceSpec, SegmentedFile, identify, open_image

# Test seam (as triage.run.faults): ``TRIAGE_MEDIA_BAD=START-END[,START-END]`` makes reads that
# touch those byte ranges fail with EIO, as a failing sector would. Unset in every real run.
BAD_ENV = "TRIAGE_MEDIA_BAD"


def _bad_ranges() -> list[tuple[int, int]]:
    spec = os.environ.get(BAD_ENV, "")
    out = []
    for part in filter(None, spec.split(",")):
        a, _, b = part.partition("-")
        out.append((int(a), int(b)))
    return out


class Media:
    """One piece of evidence as a byte stream of ``size`` bytes."""

    def __init__(self, path: str) -> None:
        spec = identify(path)
        if spec.format == "logical":
            raise EvidenceError(f"{path}: a folder has no media to sample; give the disk image "
                                "or device")
        self.spec: EvidenceSpec = spec
        self.path = path
        self.size = spec.size
        self._img: Any = None
        self._fd: int | None = None
        self._seg: SegmentedFile | None = None
        self._lock = threading.Lock()
        self._bad = _bad_ranges()
        if spec.format in ("raw", "split-raw") and len(spec.segments) == 1:
            self._fd = os.open(spec.segments[0], os.O_RDONLY)
            try:
                os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)
            except OSError:
                pass
        elif spec.format in ("raw", "split-raw"):
            self._seg = SegmentedFile(spec.segments)
        self.parallel = self._fd is not None or self._seg is not None

    @property
    def img(self) -> Any:
        """The pytsk3 image (for volumes and file systems), opened on first use."""
        if self._img is None:
            self._img = open_image(self.spec)
        return self._img

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer only at the end of the media); OSError when
        the media fails to deliver them."""
        length = max(0, min(length, self.size - offset))
        for a, b in self._bad:
            if offset < b and offset + length > a:
                raise OSError(5, f"input/output error at byte {max(a, offset):,}")
        if self._fd is not None:
            data = os.pread(self._fd, length, offset)
        elif self._seg is not None:
            data = self._seg.read_buffer_at_offset(length, offset)
        else:
            with self._lock:
                data = self.img.read(offset, length)
        if len(data) != length:
            raise OSError(5, f"short read at byte {offset:,}: {len(data):,} of {length:,} bytes")
        return data

    def read_batches(self, requests: Iterable[tuple[int, int]], depth: int = 8,
                     batch: int = 256) -> Iterator[list[tuple[int, bytes | OSError]]]:
        """Lists of (offset, data or the OSError), ``batch`` requests each, in the order
        given; ``depth`` threads each read one batch in order (so ``depth`` reads are in
        flight). Why batches: a future per 4 KiB read cost more CPU than the read itself."""
        it = iter(requests)

        def chunks() -> Iterator[list[tuple[int, int]]]:
            while True:
                part = [r for _, r in zip(range(batch), it)]
                if not part:
                    return
                yield part

        def run(part: list[tuple[int, int]]) -> list[tuple[int, bytes | OSError]]:
            return [(off, self._try(off, ln)) for off, ln in part]

        if not self.parallel or depth <= 1:
            for part in chunks():
                yield run(part)
            return
        with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="media") as pool:
            window: deque = deque()
            for part in chunks():
                window.append(pool.submit(run, part))
                if len(window) >= depth * 2:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()

    def _try(self, offset: int, length: int) -> bytes | OSError:
        try:
            return self.read(offset, length)
        except OSError as e:
            return e

    def rotational(self) -> bool | None:
        """True for a spinning disk, False for solid state, None when unknown: from
        /sys/dev/block/MAJ:MIN/queue/rotational of the device or of the disk holding the
        image file."""
        try:
            st = os.stat(self.spec.segments[0])
        except OSError:
            return None
        dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
        base = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
        for cand in (base / "queue/rotational", base / "../queue/rotational"):
            try:
                return cand.read_text().strip() == "1"
            except OSError:
                continue
        return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._seg is not None:
            self._seg.close()
        if self._img is not None:
            try:
                self._img.close()
            except Exception:  # noqa: BLE001 - closing never decides a result
                pass
