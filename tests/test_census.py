"""Census: content signatures, kinds and extension mismatches.

Truth comes from the generators: every sample below is a tiny valid file of a known type, made
here (Pillow, the standard library, or the format's documented header bytes), never by the code
under test.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import wave
import zipfile
from collections import Counter
from pathlib import Path

import pillow_heif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from triage.content.census import (
    KINDS,
    SIGNATURE_KIND,
    USUAL_EXTENSIONS,
    extension,
    identify,
    signature,
)
from triage.content.hashing import HEAD, Digest
from triage.run.inspect import INSPECTORS, census, inspectors
from triage.records import FileRecord

# ---------------------------------------------------------------------------------------------
# Sample builders: (signature, kind, proper extension) -> bytes


def _picture(fmt: str, **kw) -> bytes:
    img = Image.new("RGB", (64, 48), (200, 30, 60))
    for x in range(64):
        img.putpixel((x, x % 48), (0, 0, 0))
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def _heic() -> bytes:
    pillow_heif.register_heif_opener()
    return _picture("HEIF")


def _psd() -> bytes:
    w, h = 4, 2
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + bytes(3 * w * h)


def _tiff_ifd(prefix: bytes) -> bytes:
    """A little-endian TIFF-like header followed by an empty IFD at offset 16."""
    return prefix + struct.pack("<H", 0) + struct.pack("<I", 0) + bytes(16)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _ftyp(major: bytes, *compat: bytes) -> bytes:
    return _box(b"ftyp", major + struct.pack(">I", 0x200) + b"".join(compat)) + \
        _box(b"free", b"") + _box(b"mdat", b"\0" * 16)


def _ebml(doctype: bytes) -> bytes:
    def el(eid: bytes, data: bytes) -> bytes:
        return eid + bytes([0x80 | len(data)]) + data
    body = (el(b"\x42\x86", b"\x01") + el(b"\x42\xf7", b"\x01") + el(b"\x42\xf2", b"\x04")
            + el(b"\x42\xf3", b"\x08") + el(b"\x42\x82", doctype) + el(b"\x42\x87", b"\x04")
            + el(b"\x42\x85", b"\x02"))
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + \
        b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"


def _asf() -> bytes:
    guid = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
    return guid + struct.pack("<QIBB", 30, 0, 1, 2)


def _riff(form: bytes, chunk: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + form + chunk


def _avi() -> bytes:
    avih = b"avih" + struct.pack("<I", 56) + bytes(56)
    hdrl = b"LIST" + struct.pack("<I", 4 + len(avih)) + b"hdrl" + avih
    return _riff(b"AVI ", hdrl)


def _mpeg_ps() -> bytes:
    pack = b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8"
    return pack + b"\x00\x00\x01\xb9"


def _mpeg_es() -> bytes:
    return b"\x00\x00\x01\xb3\x01\x40\xf0\x13\xff\xff\xe0\x18" + b"\x00\x00\x01\xb7"


def _mpeg_ts(m2ts: bool = False) -> bytes:
    packet = b"\x47\x1f\xff\x10" + b"\xff" * 184  # null packets
    return b"".join((b"\0\0\0\0" if m2ts else b"") + packet for _ in range(4))


def _flv() -> bytes:
    return b"FLV\x01\x05" + struct.pack(">I", 9) + struct.pack(">I", 0)


def _zip(entries: list[tuple[str, bytes]], stored_first: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for i, (name, data) in enumerate(entries):
            z.writestr(name, data, zipfile.ZIP_STORED if stored_first and i == 0 else None)
    return out.getvalue()


_CT = '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'


def _ooxml(part: str) -> bytes:
    return _zip([("[Content_Types].xml", _CT.encode()), ("_rels/.rels", b"<Relationships/>"),
                 (part, b"<x/>")])


def _odf(mime: str) -> bytes:
    return _zip([("mimetype", mime.encode()), ("content.xml", b"<x/>")], stored_first=True)


def _7z() -> bytes:
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<IQQI", 0, 0, 0, 0)


def _rar() -> bytes:
    return b"Rar!\x1a\x07\x01\x00" + bytes.fromhex("33 92 b5 e5 0a 01 05 06 00 05 01 01 80 80 00")


def _tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo("a.txt")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    return out.getvalue()


def _cab() -> bytes:
    return b"MSCF\0\0\0\0" + struct.pack("<I", 44) + bytes(4) + struct.pack("<I", 44) + \
        bytes(4) + b"\x03\x01" + struct.pack("<HHHHH", 0, 0, 0, 0, 0) + bytes(8)


def _zstd() -> bytes:
    # frame: magic, descriptor (single segment, 1-byte size), size 5, one raw last block
    return b"\x28\xb5\x2f\xfd" + b"\x20\x05" + b"\x29\x00\x00" + b"hello"


def _pdf() -> bytes:
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def _ole() -> bytes:
    header = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(16) + struct.pack(
        "<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6) + struct.pack("<IIIIIIII", 0, 1, 1, 0,
                                                                   0x1000, 0xFFFFFFFE, 0,
                                                                   0xFFFFFFFE)
    header += struct.pack("<I", 0) + struct.pack("<I", 0) + b"\xff" * (512 - len(header) - 8)
    return header[:512] + b"\xfd\xff\xff\xff" + b"\xff" * 508


def _pe() -> bytes:
    mz = b"MZ" + bytes(58) + struct.pack("<I", 64)
    coff = struct.pack("<HHIIIHH", 0x8664, 0, 0, 0, 0, 0, 0x22)
    return mz + b"PE\0\0" + coff + bytes(64)


def _elf() -> bytes:
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0)


def _macho() -> bytes:
    return struct.pack("<IiiIIIII", 0xFEEDFACF, 0x01000007, 3, 2, 0, 0, 0, 0)


def _macho_fat() -> bytes:
    return struct.pack(">II", 0xCAFEBABE, 1) + struct.pack(">iiIII", 0x01000007, 3, 4096, 0, 12)


def _java_class() -> bytes:
    return struct.pack(">IHH", 0xCAFEBABE, 0, 52) + bytes(16)


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(80))
    return out.getvalue()


def _sqlite(tmp: Path) -> bytes:
    path = tmp / "x.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("create table t (a)")
    data = path.read_bytes()
    path.unlink()
    return data


SAMPLES: list[tuple[str, str, str, object]] = [
    # (signature, kind, proper extension, builder)
    ("jpeg", "picture", "jpg", lambda t: _picture("JPEG")),
    ("png", "picture", "png", lambda t: _picture("PNG")),
    ("gif", "picture", "gif", lambda t: _picture("GIF")),
    ("bmp", "picture", "bmp", lambda t: _picture("BMP")),
    ("webp", "picture", "webp", lambda t: _picture("WEBP")),
    ("tiff", "picture", "tif", lambda t: _picture("TIFF")),
    ("tiff", "picture", "nef", lambda t: _picture("TIFF")),  # NEF/ARW/DNG are TIFF files
    ("ico", "picture", "ico", lambda t: _picture("ICO")),
    ("jp2", "picture", "jp2", lambda t: _picture("JPEG2000")),
    ("avif", "picture", "avif", lambda t: _picture("AVIF")),
    ("heic", "picture", "heic", lambda t: _heic()),
    ("psd", "picture", "psd", lambda t: _psd()),
    ("jxl", "picture", "jxl", lambda t: b"\xff\x0a\xfa\x7f\x01\x90\x08\x06\x01\x00\x48\x02"),
    ("jxl", "picture", "jxl", lambda t: _box(b"JXL ", b"\r\n\x87\n") + _box(b"ftyp", b"jxl \0\0\0\0jxl ")),
    ("cr2", "picture", "cr2", lambda t: _tiff_ifd(b"II*\x00\x10\x00\x00\x00CR\x02\x00")),
    ("cr3", "picture", "cr3", lambda t: _ftyp(b"crx ", b"crx ", b"isom")),
    ("orf", "picture", "orf", lambda t: _tiff_ifd(b"IIRO\x08\x00\x00\x00")),
    ("rw2", "picture", "rw2", lambda t: _tiff_ifd(b"IIU\x00\x08\x00\x00\x00")),
    ("raf", "picture", "raf", lambda t: b"FUJIFILMCCD-RAW 0201FF383501" + bytes(100)),
    ("x3f", "picture", "x3f", lambda t: b"FOVb" + struct.pack("<I", 0x00020003) + bytes(32)),
    ("mp4", "video", "mp4", lambda t: _ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41")),
    ("mov", "video", "mov", lambda t: _ftyp(b"qt  ", b"qt  ")),
    ("mov", "video", "mov", lambda t: _box(b"wide", b"") + _box(b"mdat", bytes(16))),
    ("3gp", "video", "3gp", lambda t: _ftyp(b"3gp4", b"isom", b"3gp4")),
    ("avi", "video", "avi", lambda t: _avi()),
    ("mkv", "video", "mkv", lambda t: _ebml(b"matroska")),
    ("webm", "video", "webm", lambda t: _ebml(b"webm")),
    ("asf", "video", "wmv", lambda t: _asf()),
    ("mpeg-ps", "video", "mpg", lambda t: _mpeg_ps()),
    ("mpeg", "video", "m2v", lambda t: _mpeg_es()),
    ("mpeg-ts", "video", "m2ts", lambda t: _mpeg_ts()),
    ("mpeg-ts", "video", "mts", lambda t: _mpeg_ts(m2ts=True)),
    ("flv", "video", "flv", lambda t: _flv()),
    ("zip", "archive", "zip", lambda t: _zip([("a.txt", b"hello")])),
    ("rar", "archive", "rar", lambda t: _rar()),
    ("7z", "archive", "7z", lambda t: _7z()),
    ("gzip", "archive", "gz", lambda t: gzip.compress(b"hello")),
    ("bzip2", "archive", "bz2", lambda t: bz2.compress(b"hello")),
    ("xz", "archive", "xz", lambda t: lzma.compress(b"hello")),
    ("zstd", "archive", "zst", lambda t: _zstd()),
    ("tar", "archive", "tar", lambda t: _tar()),
    ("cab", "archive", "cab", lambda t: _cab()),
    ("pdf", "document", "pdf", lambda t: _pdf()),
    ("ole", "document", "doc", lambda t: _ole()),
    ("docx", "document", "docx", lambda t: _ooxml("word/document.xml")),
    ("xlsx", "document", "xlsx", lambda t: _ooxml("xl/workbook.xml")),
    ("pptx", "document", "pptx", lambda t: _ooxml("ppt/presentation.xml")),
    ("odt", "document", "odt", lambda t: _odf("application/vnd.oasis.opendocument.text")),
    ("ods", "document", "ods",
     lambda t: _odf("application/vnd.oasis.opendocument.spreadsheet")),
    ("odp", "document", "odp",
     lambda t: _odf("application/vnd.oasis.opendocument.presentation")),
    ("epub", "document", "epub", lambda t: _odf("application/epub+zip")),
    ("rtf", "document", "rtf", lambda t: b"{\\rtf1\\ansi hello}"),
    ("pe", "executable", "exe", lambda t: _pe()),
    ("elf", "executable", "so", lambda t: _elf()),
    ("macho", "executable", "dylib", lambda t: _macho()),
    ("macho", "executable", "dylib", lambda t: _macho_fat()),
    ("mp3", "other", "mp3", lambda t: b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400)),
    ("mp3", "other", "mp3", lambda t: b"\xff\xfb\x90\x64" + bytes(413)),
    ("m4a", "other", "m4a", lambda t: _ftyp(b"M4A ", b"M4A ", b"mp42", b"isom")),
    ("wav", "other", "wav", lambda t: _wav()),
    ("flac", "other", "flac", lambda t: b"fLaC\x80\x00\x00\x22" + bytes(34)),
    ("ogg", "other", "ogg", lambda t: b"OggS\x00\x02" + bytes(22) + b"\x01\x1e\x01vorbis"),
    ("sqlite", "other", "sqlite", _sqlite),
    ("java-class", "other", "class", lambda t: _java_class()),
]

# For each kind, an extension of another kind (and not one it is allowed under).
WRONG = {"picture": "txt", "video": "jpg", "archive": "pdf", "document": "mp4",
         "executable": "png", "other": "exe"}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[tuple[str, str, str, bytes]]:
    tmp = tmp_path_factory.mktemp("samples")
    # every codec is in the dependencies (Pillow's AVIF and JPEG 2000, pillow-heif's HEIC): a
    # sample that cannot be built is a broken install, and fails here rather than thinning the set
    return [(sig, kind, ext, build(tmp)) for sig, kind, ext, build in SAMPLES]


def test_every_listed_type_is_sampled():
    assert {kind for _, kind, _, _ in SAMPLES} == set(KINDS)
    assert {sig for sig, _, _, _ in SAMPLES} == set(SIGNATURE_KIND)


def test_samples_are_what_their_generator_made(samples):
    for sig, kind, ext, data in samples:
        assert identify(data[:HEAD], f"dir/sample.{ext}") == (kind, sig, False), (sig, ext)


def test_pictures_open_with_pillow(samples):
    """The picture samples Pillow can read really are pictures (validity of the generator)."""
    for sig, kind, _, data in samples:
        if sig in ("jpeg", "png", "gif", "bmp", "webp", "tiff", "ico", "jp2", "avif", "psd"):
            with Image.open(io.BytesIO(data)) as img:
                img.load()


def test_wrong_extension_is_a_mismatch_and_counts_by_content(samples):
    counts = Counter()
    for sig, kind, _, data in samples:
        got_kind, got_sig, mismatch = identify(data[:HEAD], f"hidden.{WRONG[kind]}")
        assert (got_kind, got_sig, mismatch) == (kind, sig, True), sig
        counts[got_kind] += 1
    assert counts == Counter(kind for _, kind, _, _ in samples)


def test_pictures_videos_archives_need_a_usual_extension(samples):
    """Autopsy's rule for pictures, videos and archives: any extension that is not one of the
    type's usual ones is a mismatch - the names one hides a picture under (.dat, .tmp, .db, no
    extension) included. The web picture types may carry each other's extensions."""
    by_sig = {sig: data for sig, _, _, data in samples}
    hidden = ("cache/f_000123", "dir.d/noext", ".hidden", "a.", "a.dat", "a.tmp", "a.db",
              "a.bin", "a.xyz123", "thumbs.db", "a.jpg.dat")
    for sig, kind, ext, data in samples:
        if kind not in ("picture", "video", "archive"):
            continue
        for name in hidden:
            assert identify(data, name) == (kind, sig, True), (sig, name)
        assert identify(data, f"UPPER.{ext.upper()}")[2] is False, sig
    assert identify(by_sig["png"], "photo.jpg") == ("picture", "png", False)
    assert identify(by_sig["jpeg"], "photo.webp")[2] is False
    assert identify(by_sig["jpeg"], "photo.bmp")[2] is True  # not a web picture name
    assert identify(by_sig["tiff"], "DSC_0001.NEF")[2] is False  # camera raw in TIFF
    assert identify(by_sig["heic"], "IMG_0001.heif")[2] is False
    assert identify(by_sig["rar"], "a.zip") == ("archive", "rar", True)
    assert identify(by_sig["rar"], "a.r07")[2] is False  # old-style RAR volume
    assert identify(by_sig["7z"], "backup.7z.001")[2] is False  # first volume of a split 7z
    assert identify(by_sig["avi"], "clip.mp4") == ("video", "avi", True)
    assert identify(by_sig["mov"], "clip.mp4")[2] is False  # ISO BMFF: MP4 and MOV agree
    assert identify(by_sig["webm"], "clip.mkv")[2] is False  # WebM is Matroska
    assert identify(by_sig["mpeg-ts"], "clip.ts")[2] is False
    assert identify(by_sig["zip"], "report.docx")[2] is False  # OOXML the head did not reveal
    assert identify(by_sig["zip"], "app.apk")[2] is False
    assert identify(by_sig["zip"], "report.pdf")[2] is True


def test_other_content_mismatches_by_kind(samples):
    """Documents, programs and the rest: a known extension of another kind is a mismatch, an
    unknown or missing extension says nothing (None)."""
    by_sig = {sig: data for sig, _, _, data in samples}
    assert identify(by_sig["ole"], "setup.msi")[2] is False
    assert identify(by_sig["ole"], "setup.exe")[2] is True
    assert identify(by_sig["m4a"], "song.mp4")[2] is False  # audio-only MP4 brand
    assert identify(by_sig["docx"], "lib.jar")[2] is False
    assert identify(by_sig["pe"], "holiday.jpg")[2] is True
    assert identify(by_sig["pdf"], "film.mp4")[2] is True
    assert identify(by_sig["pdf"], "a.docx")[2] is False  # same kind
    for sig in ("pdf", "pe", "sqlite", "mp3"):
        for name in ("noext", "dir.d/noext", ".hidden", "a.xyz123", "a.", "a.bin", "a.ts"):
            assert identify(by_sig[sig], name)[2] is None, (sig, name)
    assert extension("DIR/Photo.JPG") == "jpg"


def test_usual_extensions_cover_exactly_pictures_videos_archives():
    rule1 = {s for s, k in SIGNATURE_KIND.items() if k in ("picture", "video", "archive")}
    assert set(USUAL_EXTENSIONS) == rule1
    for sig, names in USUAL_EXTENSIONS.items():
        assert names and all(n == n.lower() and "." not in n for n in names), sig


def test_unrecognised_content():
    for head in (b"", b"a", b"abc", b"plain text, nothing more\n" * 4,
                 "UTF-16 text".encode("utf-16"), b"BMW and BMX are not bitmaps" + bytes(40),
                 b"MZ", b"\x00" * 600, b"GIF8", b"RIFF\x10\x00\x00\x00XXXX"):
        kind, sig, _ = identify(head, "x.txt")
        assert (kind, sig) == ("other", None), head[:20]
    assert identify(b"hello", "x.txt")[2] is False  # text under a text name agrees
    assert identify(os.urandom(0) + b"\x00" * 10, "x.jpg") == ("other", None, True)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700), st.text(max_size=30))
def test_identify_never_raises(head, name):
    kind, sig, mismatch = identify(head, name)
    assert kind in KINDS
    assert sig is None or SIGNATURE_KIND[sig] == kind
    assert mismatch in (None, True, False)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([s for s in SAMPLES if s[0] not in ("heic", "avif", "jp2", "sqlite")]),
       st.binary(max_size=64))
def test_trailing_bytes_do_not_change_the_signature(sample, tail):
    sig, kind, ext, build = sample
    data = build(None) + tail
    assert signature(data[:HEAD]) == sig


def test_inspector_through_digest_in_chunks(samples):
    """The census reads the head the single read kept, whatever the chunking."""
    assert INSPECTORS[0] is census
    for sig, kind, _, data in samples:
        digest = Digest(("md5",))
        for i in range(0, len(data), 7):
            digest.update(data[i:i + 7])
        read = digest.result(len(data))
        record = FileRecord("e", 0, "ext4", f"/x/hidden.{WRONG[kind]}", "1", len(data), False)
        for inspect in inspectors(None):
            inspect(record, read)
        assert (record.kind, record.signature, record.extension_mismatch) == (kind, sig, True)
        assert record.pdq is None  # PDQ is off by default
        assert read.content is None  # and nothing but the head was kept


# ---------------------------------------------------------------------------------------------
# End to end: an ext4 image holding the samples under wrong names


def _mke2fs(src: Path, image: Path, size: str = "8M") -> None:
    env = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000")
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), size],
                   check=True, env=env, capture_output=True)


@pytest.mark.skipif(shutil.which("mke2fs") is None, reason="mke2fs not installed")
def test_scan_counts_kinds_and_mismatches(samples, tmp_path):
    from triage.run.scan import ScanConfig, run_scan

    src = tmp_path / "src"
    (src / "hidden").mkdir(parents=True)
    (src / "named").mkdir()
    expected = {}
    for i, (sig, kind, ext, data) in enumerate(samples):
        (src / "hidden" / f"s{i:02d}.{WRONG[kind]}").write_bytes(data)
        (src / "named" / f"s{i:02d}.{ext}").write_bytes(data)
        expected[f"/hidden/s{i:02d}.{WRONG[kind]}"] = (kind, sig, True)
        expected[f"/named/s{i:02d}.{ext}"] = (kind, sig, False)
    (src / "notes.txt").write_text("plain text\n")
    (src / "empty.jpg").write_bytes(b"")
    expected["/notes.txt"] = ("other", None, False)
    (src / "cache").mkdir()  # pictures hidden under names that name no kind: still flagged
    by_sig = {sig: data for sig, _, _, data in samples}
    for name, sig, want in (("f_000001", "jpeg", True), ("index.dat", "png", True),
                            ("thumbs.db", "gif", True), ("x.tmp", "mp4", True),
                            ("manual", "pdf", None)):
        (src / "cache" / name).write_bytes(by_sig[sig])
        expected[f"/cache/{name}"] = (SIGNATURE_KIND[sig], sig, want)
    image = tmp_path / "census.img"
    _mke2fs(src, image)
    outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "out", workers=2))
    rows = [json.loads(line) for line in
            (outcome.out / "files.jsonl").read_text(encoding="utf-8").splitlines()]
    by_path = {r["path"]: r for r in rows}
    for path, want in expected.items():
        r = by_path[path]
        assert (r["kind"], r["signature"], r["extension_mismatch"]) == want, path
    assert by_path["/empty.jpg"]["kind"] is None  # zero-length files are not inspected
    hidden = Counter(by_path[p]["kind"] for p in expected if p.startswith("/hidden/"))
    assert hidden == Counter(kind for _, kind, _, _ in samples)
    assert all(r["pdq"] is None for r in rows)


def test_documented_extension_lists_are_the_code():
    """docs/pdq.md lists every type's usual extensions: the table must be what the code does."""
    text = (Path(__file__).parent.parent / "docs" / "pdq.md").read_text(encoding="utf-8")
    documented: dict[str, set[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2:
            continue
        sigs = re.findall(r"`([^`]+)`", cells[0])
        if not sigs or not all(sig in SIGNATURE_KIND for sig in sigs):
            continue
        names = set(" ".join(re.findall(r"`([^`]+)`", cells[1])).split())
        if "…" in cells[1]:  # r00…r99
            names |= {f"r{i:02d}" for i in range(100)}
        for sig in sigs:
            documented[sig] = {sig} if "own name" in cells[1] else names
    assert documented == {k: set(v) for k, v in USUAL_EXTENSIONS.items()}
