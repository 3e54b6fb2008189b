"""Every buffer type a reader can return reaches the content stage as ``bytes`` (issue 13).

The system libewf's direct reads return ``bytearray``; the census looked the head up in sets
(``head[4:8] in _BMFF_TYPES``) and every E01 file read that way with ``--pdq`` became
``not read: TypeError``. ``hashing.as_bytes`` at the reader boundary (``hash_reads``) is the one
normalisation: here every reader return type (bytes, bytearray, memoryview, mmap), read whole
or in many short pieces, must give exactly the record that plain ``bytes`` give — the digests
hashlib computes over the bytes written, the census kind and signature, and the PDQ hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from triage.evidence import ewf_native
from triage.evidence.containers import StreamImage
from triage.content.hashing import CHUNK, hash_reads
from triage.evidence.buffers import as_bytes
from triage.run.inspect import inspectors
from triage.perceptual.compute import PdqOptions, PdqWorker
from triage.records import FileRecord, ReadTarget

from conftest import TESTIMAGES

ALGS = ("md5", "sha1", "sha256", "xxh128")


def _picture(fmt: str, pad: int = 0) -> bytes:
    rng = random.Random(7)
    img = Image.new("RGB", (96, 80))
    img.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256))
                 for _ in range(96 * 80)])
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue() + bytes(pad)  # trailing bytes: decoders ignore them


def _bmff(brand: bytes, compat: tuple[bytes, ...] = ()) -> bytes:
    box = brand + b"\0\0\0\0" + b"".join(compat)
    return struct.pack(">I", 8 + len(box)) + b"ftyp" + box + b"\0" * 64


def _tar() -> bytes:
    head = bytearray(512)
    head[:8] = b"file.txt"
    head[257:262] = b"ustar"
    return bytes(head) + b"x" * 512


# name -> (content, expected signature): every census dispatch route (prefix table, check
# functions, the ISO BMFF set lookups, the tar offset) and both read paths (one read, chunks)
CONTENTS: dict[str, tuple[bytes, str | None]] = {
    "a.png": (_picture("PNG"), "png"),
    "b.jpg": (_picture("JPEG"), "jpeg"),
    "big.png": (_picture("PNG", CHUNK + 12345), "png"),
    "c.mp4": (_bmff(b"isom", (b"isom", b"mp41")), "mp4"),
    "d.heic": (_bmff(b"mif1", (b"heic",)), "heic"),
    "e.avif": (_bmff(b"mif1", (b"avif",)), "avif"),
    "f.mov": (b"\0\0\0\x08moov" + b"\0" * 100, "mov"),
    "g.tar": (_tar(), "tar"),
    "h.zip": (b"PK\x03\x04" + b"\0" * 22 + b"\x04\0\0\0word" + b"\0" * 100, "zip"),
    "i.pdf": (b"%PDF-1.7\n" + b"x" * 3000, "pdf"),
    "j.exe": (b"MZ" + b"\0" * 58 + struct.pack("<I", 64) + b"PE\0\0" + b"\0" * 64, "pe"),
    "k.txt": (b"plain text\n" * 10, None),
    "l.bin": (bytes(range(256)) * 8192, None),  # 2 MiB: several chunks
    "m.ts": ((b"G" + b"\0" * 187) * 4, "mpeg-ts"),
}


def _mmap_of(data: bytes) -> mmap.mmap:
    m = mmap.mmap(-1, max(1, len(data)))
    m.write(data)
    if not data:
        return mmap.mmap(-1, 1)[:0]  # an empty slice (mmap cannot be empty)
    return m


CONVERTERS: dict[str, Callable[[bytes], object]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": lambda b: memoryview(bytearray(b)),
    "memoryview-readonly": memoryview,
    "mmap": _mmap_of,
}


def _reader(content: bytes, convert: Callable[[bytes], object], piece: int | None):
    """read(offset, length) returning ``convert``ed buffers, at most ``piece`` bytes each."""
    def read(offset: int, length: int):
        n = length if piece is None else min(length, piece)
        return convert(content[offset:offset + n])
    return read


@pytest.fixture
def pdq_on() -> PdqWorker:
    """A worker's --pdq state (no PDQ sets): passed to the read and the inspectors."""
    worker = PdqWorker.start(PdqOptions())
    assert worker is not None
    return worker


def _inspect(name: str, content: bytes, read, pdq: PdqWorker) -> FileRecord:
    record = FileRecord("e", 0, "ext4", "/" + name, "1", len(content), False,
                        target=ReadTarget(1))
    got = hash_reads(read, len(content), ALGS, keep=pdq.keep)
    assert got.error is None and got.nbytes == len(content)
    record.hashes = got.hashes
    assert type(got.head) is bytes
    for inspect in inspectors(pdq):
        inspect(record, got)
    return record


def _fields(r: FileRecord) -> tuple:
    return (r.hashes, r.kind, r.signature, r.extension_mismatch, r.pdq, r.pdq_quality,
            r.pdq_error)


@pytest.mark.parametrize("piece", [None, 1000], ids=["whole", "pieces"])
@pytest.mark.parametrize("kind", list(CONVERTERS))
def test_every_buffer_type_gives_the_bytes_record(pdq_on, kind: str, piece: int | None) -> None:
    for name, (content, sig) in CONTENTS.items():
        want = _inspect(name, content, _reader(content, bytes, None), pdq_on)
        for a in ("md5", "sha1", "sha256"):
            assert want.hashes[a] == hashlib.new(a, content).hexdigest(), name
        assert want.signature == sig, name
        got = _inspect(name, content, _reader(content, CONVERTERS[kind], piece), pdq_on)
        assert _fields(got) == _fields(want), (name, kind)
    # the pictures really were decoded: PDQ is part of what must not differ
    png = CONTENTS["big.png"][0]
    assert _inspect("big.png", png, _reader(png, CONVERTERS[kind], piece), pdq_on).pdq is not None


def test_as_bytes_types() -> None:
    for convert in CONVERTERS.values():
        out = as_bytes(convert(b"abc"))
        assert type(out) is bytes and out == b"abc"
    same = b"xyz"
    assert as_bytes(same) is same  # no copy for bytes
    for wrong in (42, "text", None):  # never bytes(42) == 42 zero bytes
        with pytest.raises(TypeError):
            as_bytes(wrong)


class _ByteArrayHandle:
    """A binding whose reads return bytearray (as ewf_native.Handle.read_into_new does)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_buffer_at_offset(self, size: int, offset: int) -> bytearray:
        return bytearray(self.data[offset:offset + size])

    def close(self) -> None:
        pass


def test_stream_image_hands_tsk_bytes() -> None:
    img = StreamImage(_ByteArrayHandle(b"0123456789"), 10)
    out = img.read(2, 4)
    assert type(out) is bytes and out == b"2345"


def _core(out: Path) -> set[tuple]:
    return {(r["volume_offset"], r["inode"], r["path"], r["size"], r["md5"], r["sha1"],
             r["sha256"], r["category"], r["error"])
            for r in map(json.loads, (out / "files.jsonl").read_text().splitlines())}


def test_readme_example_with_pdq_on_e01(tmp_path: Path) -> None:
    """The issue's command: with --pdq on the E01 (system libewf direct reads) every file is
    read, and the records equal those of the same disk as a raw image."""
    assert ewf_native.available(), "the system libewf (Debian libewf2) is a CI dependency"
    from triage.run.scan import ScanConfig, run_scan

    sets = TESTIMAGES / "hashsets"
    common = dict(hashsets=[str(sets / "caid.csv"), str(sets / "projectvic.json")],
                  known_good=[str(sets / "known-good.md5")], workers=1, pdq=True)
    e01 = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "mbr.E01")], out=tmp_path / "e01",
                              **common))
    raw = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "mbr.img")], out=tmp_path / "raw",
                              **common))
    got = _core(tmp_path / "e01")
    assert not [r for r in got if r[-1]], "no file of the E01 may fail"
    assert got == _core(tmp_path / "raw")
    assert e01.summary["categories"] == raw.summary["categories"]
    assert e01.summary["categories"]["C"] == 3
    blobs = [r for r in got if r[2] == "/data/archive/blob.bin"]
    assert len(blobs) == 3 and all(r[7] == "C" for r in blobs)  # FAT, ext4, ext2 copies
