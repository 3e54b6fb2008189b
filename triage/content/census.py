"""Census: what a file is, from its first bytes, and whether its name's extension agrees.

``identify(head, name)`` returns ``(kind, signature, extension_mismatch)``:

- ``kind``: picture, video, archive, document, executable or other;
- ``signature``: the content type found in the first bytes (``"jpeg"``, ``"mp4"`` ...), None when
  no signature is recognised (the kind is then ``other``);
- ``extension_mismatch``, two rules (see ``mismatch``):

  * a picture, video or archive (the content is what matters: the things one hides) follows
    Autopsy's extension mismatch detector: True unless the extension is one of its type's usual
    extensions (``USUAL_EXTENSIONS``) - so a JPEG named ``.dat``, ``.tmp``, ``.db`` or with no
    extension at all is flagged, as is an AVI named ``.mp4``. As in Autopsy's list, the common
    web picture types (JPEG, PNG, GIF, WebP) may carry each other's extensions: such files are
    everywhere (web downloads) and harmless;
  * any other content: True when the extension is known and names another *kind* (a program
    named ``.jpg``, a PDF named ``.mp4``), False when it agrees, None when the extension is
    unknown or absent (text and data files carry any name).

A small signature table dispatched on the first byte: about a microsecond per file, several
times faster than ``puremagic`` or ``filetype`` (``benchmarks/pdq.py`` measures all three) and it
knows the few container details that matter here (ISO BMFF brands, RIFF forms, EBML doc types,
OOXML part names). It runs inside the worker on the head that the single read already kept.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from triage.records import FileRecord

PICTURE, VIDEO, ARCHIVE, DOCUMENT, EXECUTABLE, OTHER = (
    "picture", "video", "archive", "document", "executable", "other")
KINDS = (PICTURE, VIDEO, ARCHIVE, DOCUMENT, EXECUTABLE, OTHER)

# signature -> kind. Signatures not listed here are never produced.
SIGNATURE_KIND: dict[str, str] = {
    # pictures (camera raw formats whose container says so cheaply; NEF/ARW/DNG are TIFF)
    "jpeg": PICTURE, "png": PICTURE, "gif": PICTURE, "bmp": PICTURE, "webp": PICTURE,
    "heic": PICTURE, "avif": PICTURE, "tiff": PICTURE, "ico": PICTURE, "psd": PICTURE,
    "jp2": PICTURE, "jxl": PICTURE, "cr2": PICTURE, "cr3": PICTURE, "orf": PICTURE,
    "rw2": PICTURE, "raf": PICTURE, "x3f": PICTURE,
    # videos
    "mp4": VIDEO, "mov": VIDEO, "3gp": VIDEO, "avi": VIDEO, "mkv": VIDEO, "webm": VIDEO,
    "asf": VIDEO, "mpeg-ps": VIDEO, "mpeg": VIDEO, "mpeg-ts": VIDEO, "flv": VIDEO,
    # archives
    "zip": ARCHIVE, "rar": ARCHIVE, "7z": ARCHIVE, "gzip": ARCHIVE, "bzip2": ARCHIVE,
    "xz": ARCHIVE, "zstd": ARCHIVE, "tar": ARCHIVE, "cab": ARCHIVE,
    # documents
    "pdf": DOCUMENT, "ole": DOCUMENT, "docx": DOCUMENT, "xlsx": DOCUMENT, "pptx": DOCUMENT,
    "odt": DOCUMENT, "ods": DOCUMENT, "odp": DOCUMENT, "epub": DOCUMENT, "rtf": DOCUMENT,
    # executables
    "pe": EXECUTABLE, "elf": EXECUTABLE, "macho": EXECUTABLE,
    # recognised, counted as other (audio, databases, bytecode)
    "mp3": OTHER, "m4a": OTHER, "wav": OTHER, "flac": OTHER, "ogg": OTHER,
    "sqlite": OTHER, "java-class": OTHER,
}

# ---------------------------------------------------------------------------------------------
# Signatures


def _u32be(b: bytes, at: int) -> int:
    return struct.unpack_from(">I", b, at)[0]


_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs",
                b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


def _iso_bmff(head: bytes) -> str | None:
    """ISO base media (``....ftyp<brand>``): MP4/MOV/3GP videos, HEIC/AVIF/CR3 pictures."""
    if head[4:8] != b"ftyp":
        return "mov" if head[4:8] in _QT_ATOMS and len(head) >= 8 else None
    major = head[8:12]
    size = _u32be(head, 0) if len(head) >= 4 else 0
    compat = {head[i:i + 4] for i in range(16, min(size, len(head), 256) - 3, 4)}
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIF_BRANDS:
        if major in (b"mif1", b"msf1", b"mif2") and compat & _AVIF_BRANDS:
            return "avif"
        return "heic"
    if major == b"crx ":
        return "cr3"
    if major == b"qt  ":
        return "mov"
    if major.startswith((b"3gp", b"3g2", b"3ge", b"3gg", b"3gs")):
        return "3gp"
    if major in _M4A_BRANDS:
        return "m4a"
    if compat & _HEIF_BRANDS and not compat & {b"isom", b"mp41", b"mp42"}:
        return "heic"
    return "mp4"


def _riff(head: bytes) -> str | None:
    form = head[8:12]
    if form == b"WEBP":
        return "webp"
    if form in (b"AVI ", b"AVIX"):
        return "avi"
    if form == b"WAVE":
        return "wav"
    return None


def _tiff(head: bytes) -> str:
    if head[8:10] == b"CR" and head[:2] == b"II":
        return "cr2"
    return "tiff"


def _bmp(head: bytes) -> str | None:
    # "BM" alone is too weak (text starts with it): reserved words zero, a known DIB header size
    if len(head) >= 18 and head[6:10] == b"\0\0\0\0" and \
            struct.unpack_from("<I", head, 14)[0] in (12, 16, 40, 52, 56, 64, 108, 124):
        return "bmp"
    return None


def _ico(head: bytes) -> str | None:
    if len(head) >= 22:
        count = struct.unpack_from("<H", head, 4)[0]
        if 0 < count <= 256 and head[9] == 0 and head[10:12] in (b"\0\0", b"\1\0"):
            return "ico"
    return None


def _ebml(head: bytes) -> str:
    return "webm" if b"webm" in head[:64] else "mkv"


def _ts(head: bytes) -> str | None:
    """MPEG transport stream: sync byte every 188 bytes (192 for M2TS, with a 4-byte prefix)."""
    if len(head) >= 565 and head[188] == 0x47 and head[376] == 0x47 and head[564] == 0x47:
        return "mpeg-ts"
    return None


def _m2ts(head: bytes) -> str | None:
    if len(head) >= 580 and head[4] == 0x47 and head[196] == 0x47 and head[388] == 0x47:
        return "mpeg-ts"
    return None


def _zip(head: bytes) -> str:
    """ZIP, or an office/e-book container told by its first entry names."""
    name_len = struct.unpack_from("<H", head, 26)[0] if len(head) >= 30 else 0
    first = head[30:30 + name_len]
    if first == b"mimetype":
        extra = struct.unpack_from("<H", head, 28)[0]
        mime = head[30 + name_len + extra:30 + name_len + extra + 64]
        if mime.startswith(b"application/epub+zip"):
            return "epub"
        for tag, sig in ((b"opendocument.text", "odt"), (b"opendocument.spreadsheet", "ods"),
                         (b"opendocument.presentation", "odp")):
            if tag in mime:
                return sig
    window = head[:8192]
    if b"[Content_Types].xml" in window or first.startswith((b"word/", b"xl/", b"ppt/",
                                                             b"_rels/", b"docProps/")):
        if b"word/" in window:
            return "docx"
        if b"xl/" in window:
            return "xlsx"
        if b"ppt/" in window:
            return "pptx"
    return "zip"


def _mz(head: bytes) -> str | None:
    if len(head) >= 64:
        pe = struct.unpack_from("<I", head, 60)[0]
        if pe + 4 <= len(head) and head[pe:pe + 4] == b"PE\0\0":
            return "pe"
    return "pe" if len(head) >= 28 else None  # plain DOS executable


def _cafebabe(head: bytes) -> str | None:
    # Mach-O universal binary (a handful of architectures) vs Java class (version >= 45)
    if len(head) >= 8:
        return "macho" if _u32be(head, 4) < 40 else "java-class"
    return None


def _mp3_frame(head: bytes) -> str | None:
    # MPEG audio layer III frame header (no ID3 tag): FF FB, FF F3 ... (never FF FE, a BOM)
    if head[1] in (0xFB, 0xFA, 0xF3, 0xF2, 0xE3, 0xE2) and \
            (head[2] >> 4) not in (0, 15) and (head[2] >> 2) & 3 != 3:
        return "mp3"
    return None


def _jpeg(head: bytes) -> str | None:
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] == b"\xff\x4f\xff\x51":
        return "jp2"  # JPEG 2000 codestream
    if head[:2] == b"\xff\x0a":
        return "jxl"
    return _mp3_frame(head)


def _mpeg(head: bytes) -> str | None:
    if head[3:4] == b"\xba":
        return "mpeg-ps"
    if head[3:4] == b"\xb3":
        return "mpeg"
    return None


Check = tuple[bytes, "str | Callable[[bytes], str | None]"]

# first byte -> [(prefix, signature or check function)], tried in order
_TABLE: dict[int, list[Check]] = {}


def _add(prefix: bytes, what: "str | Callable[[bytes], str | None]") -> None:
    _TABLE.setdefault(prefix[0], []).append((prefix, what))


for _prefix, _what in [
    (b"\xff", _jpeg),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"), (b"GIF89a", "gif"),
    (b"G", _ts),
    (b"BM", _bmp),
    (b"BZh", "bzip2"),
    (b"RIFF", _riff),
    (b"Rar!\x1a\x07", "rar"),
    (b"II*\x00", _tiff), (b"MM\x00*", "tiff"), (b"MM\x00+", "tiff"), (b"II+\x00", "tiff"),
    (b"IIRO", "orf"), (b"IIRS", "orf"), (b"IIU\x00", "rw2"),
    (b"FUJIFILMCCD-RAW", "raf"), (b"FOVb", "x3f"),
    (b"8BPS", "psd"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
    (b"\x00\x00\x01\x00", _ico),
    (b"\x00\x00\x01", _mpeg),
    (b"\x1aE\xdf\xa3", _ebml),
    (b"0&\xb2u\x8ef\xcf\x11", "asf"),
    (b"FLV\x01", "flv"),
    (b"PK\x03\x04", _zip), (b"PK\x05\x06", "zip"), (b"PK\x07\x08", "zip"),
    (b"7z\xbc\xaf'\x1c", "7z"),
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"(\xb5/\xfd", "zstd"),
    (b"MSCF\0\0\0\0", "cab"),
    (b"%PDF-", "pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (b"{\\rtf", "rtf"),
    (b"MZ", _mz),
    (b"\x7fELF", "elf"),
    (b"\xfe\xed\xfa\xce", "macho"), (b"\xfe\xed\xfa\xcf", "macho"),
    (b"\xce\xfa\xed\xfe", "macho"), (b"\xcf\xfa\xed\xfe", "macho"),
    (b"\xca\xfe\xba\xbe", _cafebabe),
    (b"ID3", "mp3"),
    (b"fLaC", "flac"),
    (b"OggS", "ogg"),
    (b"SQLite format 3\x00", "sqlite"),
]:
    _add(_prefix, _what)
del _prefix, _what


def signature(head: bytes) -> str | None:
    """The content type of ``head`` (a file's first bytes), None when not recognised."""
    if len(head) < 4:
        return None
    checks = _TABLE.get(head[0])
    if checks is not None:
        for prefix, what in checks:
            if head.startswith(prefix):
                sig = what if what.__class__ is str else what(head)
                if sig is not None:
                    return sig
    if head[4:8] in _BMFF_TYPES:
        return _iso_bmff(head)
    if head[0] == 0 and len(head) > 4 and head[4] == 0x47:
        return _m2ts(head)
    if head[257:262] == b"ustar":
        return "tar"
    return None


_BMFF_TYPES = {b"ftyp"} | _QT_ATOMS - {b"free", b"skip"}

# ---------------------------------------------------------------------------------------------
# Extensions, rule 1 - pictures, videos, archives: the usual extensions of each type (after
# Autopsy's mismatch_config.xml, extended to the types this table recognises). Anything else,
# no extension included, is a mismatch. Documented in docs/pdq.md ("Extension mismatch").


def _names(*groups: str) -> frozenset[str]:
    return frozenset(" ".join(groups).split())


_WEB_PICTURE = "jpg jpeg jpe jfif jfi jif png apng gif webp"  # interchangeable on the web
_TIFF_RAW = "nef nrw arw srf sr2 dng pef srw 3fr erf kdc mef mos iiq"  # camera raw in TIFF
_BMFF_VIDEO = "mp4 m4v mp4v mpg4 m4p m4s m4a m4b m4r mov qt 3gp 3gpp 3g2 3gp2 f4v f4p"
_MATROSKA = "mkv mk3d mka mks webm"
_MPEG = "mpg mpeg mpe mpv m1v m2v m2p vob mod tod"
_ZIP_BASED = ("zip zipx z01 001 jar war ear apk aab ipa xpi kmz wmz amo vsix nupkg whl cbz "
              "docx docm dotx dotm xlsx xlsm xlsb xltx xltm pptx pptm ppsx ppsm potx potm "
              "ppam xlam odt ods odp odg ott ots otp epub")  # ZIP containers: office, e-books...

USUAL_EXTENSIONS: dict[str, frozenset[str]] = {
    # pictures
    "jpeg": _names(_WEB_PICTURE), "png": _names(_WEB_PICTURE), "gif": _names(_WEB_PICTURE),
    "webp": _names(_WEB_PICTURE),
    "bmp": _names("bmp dib bm"),
    "heic": _names("heic heif hif heics heifs"),
    "avif": _names("avif avifs"),
    "tiff": _names("tif tiff", _TIFF_RAW),
    "ico": _names("ico cur"),
    "psd": _names("psd psb"),
    "jp2": _names("jp2 j2k j2c jpc jpf jpx jpm"),
    "jxl": _names("jxl"),
    "cr2": _names("cr2"), "cr3": _names("cr3"), "orf": _names("orf"),
    "rw2": _names("rw2 rwl raw"), "raf": _names("raf"), "x3f": _names("x3f"),
    # videos
    "mp4": _names(_BMFF_VIDEO), "mov": _names(_BMFF_VIDEO), "3gp": _names(_BMFF_VIDEO),
    "avi": _names("avi divx"),
    "mkv": _names(_MATROSKA), "webm": _names(_MATROSKA),
    "asf": _names("asf wmv wma dvr-ms"),
    "mpeg-ps": _names(_MPEG), "mpeg": _names(_MPEG),
    "mpeg-ts": _names("ts mts m2ts m2t tp trp"),
    "flv": _names("flv"),
    # archives (first volumes of split sets too: .7z.001, .z01, .r00)
    "zip": _names(_ZIP_BASED),
    "rar": _names("rar cbr 001", " ".join(f"r{i:02d}" for i in range(100))),
    "7z": _names("7z cb7 001"),
    "gzip": _names("gz gzip tgz taz svgz"),
    "bzip2": _names("bz2 bz bzip2 tbz tbz2 tb2"),
    "xz": _names("xz txz"),
    "zstd": _names("zst zstd tzst"),
    "tar": _names("tar cbt ova"),
    "cab": _names("cab msu"),
}

# ---------------------------------------------------------------------------------------------
# Extensions, rule 2 - everything else: what each known extension promises (ambiguous ones -
# .ts for MPEG-TS or TypeScript, .com, .raw, .bin, .dat - are left unknown). Kind-level
# agreement, plus signatures that are fine despite another kind (audio-only MP4 under a video
# name; an office or e-book file under an archive name such as .jar; an .msi is an OLE file).

_EXT_KIND: dict[str, str] = {}
_EXT_ALSO: dict[str, frozenset[str]] = {}


def _ext(kind: str, names: str, also: tuple[str, ...] = ()) -> None:
    for name in names.split():
        _EXT_KIND[name] = kind
        if also:
            _EXT_ALSO[name] = frozenset(also)


_ext(PICTURE, "jpg jpeg jpe jfif png apng gif bmp dib webp heic heif hif avif tif tiff ico cur "
              "psd jp2 j2k jpf jpx jxl cr2 cr3 crw nef nrw arw srf sr2 dng orf rw2 raf x3f pef "
              "srw rwl 3fr erf kdc mef mos mrw")
_ext(VIDEO, "mp4 m4v mov qt 3gp 3g2 avi mkv webm wmv asf mpg mpeg mpe m1v m2v vob mts m2ts "
            "flv f4v divx", also=("m4a",))  # audio-only MP4 brand in a video name: fine
_ext(VIDEO, "ogv", also=("ogg",))
_ext(ARCHIVE, "zip rar 7z gz tgz bz2 tbz tbz2 xz txz zst tar cab")
_ext(ARCHIVE, "jar war apk ipa xpi", also=("docx", "xlsx", "pptx", "odt", "ods", "odp", "epub"))
_ext(DOCUMENT, "pdf doc dot xls xlt ppt pps pot msg rtf")
_ext(DOCUMENT, "docx docm dotx xlsx xlsm pptx pptm ppsx odt ods odp epub")
_ext(EXECUTABLE, "exe dll sys scr ocx cpl drv efi so ko dylib")
_ext(EXECUTABLE, "msi", also=("ole",))  # installers are OLE compound files
_ext(OTHER, "txt text log csv tsv json xml html htm css js md ini cfg conf yaml yml sql "
            "wav flac ogg oga opus db sqlite sqlite3 class")
_ext(OTHER, "mp3 m4a m4b aac wma")  # MP4/ASF content under these: rule 1 decides


def extension(name: str) -> str:
    """The lower-case extension of a path's last component, "" when there is none."""
    dot = name.rfind(".")
    if dot <= name.rfind("/") + 1:  # none, or a dot file such as ".profile"
        return ""
    return name[dot + 1:].lower()


def mismatch(sig: str | None, kind: str, ext: str) -> bool | None:
    """``extension_mismatch`` of content ``sig`` (of ``kind``) under extension ``ext`` ("" for
    none): rule 1 for pictures, videos and archives, rule 2 for the rest (module docstring)."""
    usual = USUAL_EXTENSIONS.get(sig)  # type: ignore[arg-type]
    if usual is not None:
        return ext not in usual
    promised = _EXT_KIND.get(ext)
    if promised is None:
        return None
    if promised == kind:
        return False
    also = _EXT_ALSO.get(ext)
    return also is None or sig not in also


def identify(head: bytes, name: str) -> tuple[str, str | None, bool | None]:
    """``(kind, signature, extension_mismatch)`` of a file from its first bytes and its name."""
    sig = signature(head)
    kind = _KIND_OF.get(sig, OTHER)
    return kind, sig, mismatch(sig, kind, extension(name))


_KIND_OF: dict[str | None, str] = dict(SIGNATURE_KIND)


def inspect_census(record: FileRecord, head: bytes) -> None:
    """Inspector: fills ``kind``, ``signature`` and ``extension_mismatch`` (``identify``,
    partly inlined: it runs for every file). Never raises for hostile bytes (every check is
    bounded; ``test_census`` fuzzes it): an exception here is a defect of this code, so it is
    not swallowed but counted by the worker as an internal error (the file keeps its hashes)."""
    sig = signature(head)
    record.signature = sig
    record.kind = kind = _KIND_OF.get(sig, OTHER)
    name = record.path
    dot = name.rfind(".")
    ext = name[dot + 1:].lower() if dot > name.rfind("/") + 1 else ""
    record.extension_mismatch = mismatch(sig, kind, ext)




# ---------------------------------------------------------------------------------------------
# Counting: the kind x category table of summary.json


def census_key(kind: str | None, category: str | None) -> str:
    """``Tally.census`` key of one file: ``"picture/unknown"``; ``none`` where a file has no kind
    (empty, unreadable) or no category (unreadable)."""
    return f"{kind or 'none'}/{category or 'none'}"


def census_summary(counts: dict[str, int], near_duplicates: int | None = None
                   ) -> dict[str, object]:
    """summary.json ``census``: files by kind and category, and the headline.

    ``unknown`` is the category of content that matched no hash set, so the headline counts
    pictures and videos whose category is ``unknown``. ``near_duplicates`` (with ``--pdq``) is
    the number of files with a PDQ near match: not a category, a call for review.
    """
    table: dict[str, dict[str, int]] = {}
    for key, n in counts.items():
        kind, _, category = key.partition("/")
        row = table.setdefault(kind, {})
        row[category] = row.get(category, 0) + n
    order = {k: i for i, k in enumerate(KINDS + ("none",))}
    kinds = {k: dict(sorted(table[k].items())) for k in sorted(table, key=lambda k: (
        order.get(k, len(order)), k))}
    pictures = kinds.get(PICTURE, {}).get("unknown", 0)
    videos = kinds.get(VIDEO, {}).get("unknown", 0)
    headline = (f"{pictures} picture{'s' * (pictures != 1)} and {videos} "
                f"video{'s' * (videos != 1)} matched no hash set")
    if near_duplicates:
        headline += (f"; {near_duplicates} file{'s' * (near_duplicates != 1)} "
                     f"{'are' if near_duplicates != 1 else 'is a'} PDQ near-duplicate"
                     f"{'s' * (near_duplicates != 1)} of hash-set pictures: review "
                     f"{'them' if near_duplicates != 1 else 'it'}")
    return {"kinds": kinds, "unmatched_pictures": pictures, "unmatched_videos": videos,
            "near_duplicates": near_duplicates, "headline": headline}
