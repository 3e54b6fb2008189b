"""The block-set file (``.tbs``): sorted block digests of reference files, memory-mapped.

Layout (little-endian; the preamble and aligned-section writer are ``.tdb``'s)::

    0    preamble, 64 bytes: b"TRIAGEBS", u32 version, u32 minor, u64 header offset,
         u64 header length, SHA-256 of the header bytes
    64   data sections, each 64-byte aligned:
           keys          rows x 12 bytes: the first 12 bytes of each kept block's digest, sorted
                         (memcmp order); a key repeats once per occurrence (row)
           refs          rows x u32: the occurrence's global block number g, sorted within a key
           buckets       2**bits + 1 x u32/u64: first row whose top ``bits`` bits >= b
           file_starts   (files + 1) x u64: global block number of each file's block 0
           file_md5      files x 16, file_sha1 files x 20 (zeros: unknown, e.g. piecewise import)
           file_size     files x u64
           file_category files x u16 (index into the header's category list)
           file_blocks   files x u32: blocks of the file kept in the set
           name_offsets  (files + 1) x u64 into ``names`` (UTF-8, concatenated)
    end  header: UTF-8 JSON (``TbsHeader``), checked with msgspec before anything in it is used

Why this shape: 16 bytes per kept block (12-byte key + 4-byte reference) plus a bucket table of
at most 1/4 byte per block. A reference g names the file *and* the offset at once: file f owns
global blocks ``file_starts[f] .. file_starts[f+1]-1`` and g's offset in it is
``(g - file_starts[f]) * block_size``; so no per-block file index or offset is stored (the cost:
at most 2**32 reference blocks per set, 16 TiB at 4 KiB). A 96-bit key: with 10**9 blocks the
chance that one looked-up digest falsely matches is about 10**9 / 2**96 ~ 10**-20.

An *entry* is one distinct key: the row index of its first row. ``refs(entry)`` lists every
occurrence (the same block in several reference files, or repeated inside one).

Opening reads the preamble and header and maps the file: no work proportional to its size
(< 0.2 s whatever the size). The data sections' SHA-256 is checked by ``verify()`` (``info``),
which reads the whole file.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import msgspec
import numpy as np
from msgspec import Meta, Struct

from triage.version import __version__
from triage.blocks.digest import DIGEST_BYTES
from triage.errors import ExitCode, TriageError
from triage.hashsets.table import DigestTable, bucket_bits, offsets_from_counts, top_bits
from triage.hashsets.tdb import ALIGN, PREAMBLE, DataCheck, _Out, read_framed, sections_digest

MAGIC = b"TRIAGEBS"
FORMAT_VERSION = 1
FORMAT_MINOR = 0
KEY_BYTES = 12
MAX_GLOBAL_BLOCKS = 2**32 - 1  # g fits a u32; 0xFFFFFFFF is reserved (exclusion marker)
MIN_BLOCK, MAX_BLOCK = 512, 1 << 20


class BlockSetError(TriageError):
    """A block set that cannot be used (bad, truncated, foreign file, wrong options): exit 2."""

    exit_code = ExitCode.USAGE


# -- the header -----------------------------------------------------------------------------

Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Hex64 = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]


class Span(Struct):
    offset: Count
    length: Count


class Sections(Struct):
    keys: Span
    refs: Span
    buckets: Span
    file_starts: Span
    file_md5: Span
    file_sha1: Span
    file_size: Span
    file_category: Span
    file_blocks: Span
    name_offsets: Span
    names: Span


class Source(Struct, omit_defaults=True):
    """What the set was built from (counts only; paths are the reference root folders)."""

    kind: Literal["files", "piecewise", "subtract"]
    files: Count  # reference files in the set
    bytes: Count
    blocks: Count  # full blocks cut from them (before any drop)
    duplicate_files: Count = 0  # same MD5 as an earlier file: its blocks were not added again
    empty_files: Count = 0  # shorter than one block
    exclude_files: Count = 0
    exclude_blocks: Count = 0
    uncategorised_files: Count = 0  # --categories-from did not know the file
    roots: list[str] = []
    inputs: list[str] = []  # piecewise files / the sets subtracted


class Tool(Struct):
    name: str
    version: str


class TbsHeader(Struct, omit_defaults=True):
    format: Literal["triage-blockset"]
    format_version: int
    format_minor: Count
    name: str
    block_size: Annotated[int, Meta(ge=MIN_BLOCK, le=MAX_BLOCK, multiple_of=512)]
    digest: Literal["xxh3-128", "md5"]
    key_bytes: Literal[12]
    rows: Count
    entries: Count
    files: Annotated[int, Meta(ge=0, le=2**32)]
    global_blocks: Annotated[int, Meta(ge=0, le=MAX_GLOBAL_BLOCKS)]
    bucket_bits: Annotated[int, Meta(ge=8, le=24)]
    bucket_dtype: Literal["<u4", "<u8"]
    sections: Sections
    categories: Annotated[list[str | None], Meta(min_length=1, max_length=65536)]
    category_blocks: dict[str, Count]
    dropped: dict[str, Count]
    source: Source
    created: str
    tool: Tool
    sections_sha256: Hex64
    max_files: Count | None = None
    low_entropy_values: Count | None = None


_DECODER = msgspec.json.Decoder(TbsHeader)

_ITEM = {"keys": KEY_BYTES, "refs": 4, "file_starts": 8, "file_md5": 16, "file_sha1": 20,
         "file_size": 8, "file_category": 2, "file_blocks": 4, "name_offsets": 8, "names": 1}


def _check(h: TbsHeader, data_end: int) -> None:
    """The numbers agree with each other and with the file (``data_end``: header offset)."""
    files = h.files
    expected = {"keys": h.rows, "refs": h.rows, "file_starts": files + 1, "file_md5": files,
                "file_sha1": files, "file_size": files, "file_category": files,
                "file_blocks": files, "name_offsets": files + 1}
    bucket_item = 4 if h.bucket_dtype == "<u4" else 8
    for name in Sections.__struct_fields__:
        span: Span = getattr(h.sections, name)
        if span.offset < PREAMBLE.size or span.offset % ALIGN or span.offset + span.length > data_end:
            raise ValueError(f"{name} section {span.offset}+{span.length} is outside the data "
                             f"area (64..{data_end})")
        item = bucket_item if name == "buckets" else _ITEM[name]
        count = (1 << h.bucket_bits) + 1 if name == "buckets" else expected.get(name)
        if count is not None and span.length != count * item:
            raise ValueError(f"{name} section of {span.length} bytes, expected {count} x {item}")
    if h.entries > h.rows or (h.rows and not h.entries):
        raise ValueError(f"{h.entries} entries for {h.rows} rows")
    if sum(h.category_blocks.values()) != h.rows:
        raise ValueError("per-category block counts do not add up to the rows")


# -- public reading API ---------------------------------------------------------------------


@dataclass(frozen=True)
class RefFile:
    """A reference file; md5/sha1 are "" when the source did not give them (piecewise)."""

    md5: str
    sha1: str
    size: int
    name: str
    category: str | None


@dataclass(frozen=True)
class BlockRef:
    file: RefFile
    offset: int  # offset of the block inside the reference file


def _section(mapped: mmap.mmap | bytes, span: Span, dtype: str | np.dtype) -> np.ndarray:
    dt = np.dtype(dtype)
    return np.frombuffer(mapped, dtype=dt, count=span.length // dt.itemsize, offset=span.offset)


def read_header(path: Path) -> tuple[TbsHeader, int, int]:
    """(checked header, header offset, file size); any damage is a one-line BlockSetError."""
    data, minor, offset, size, digest = read_framed(
        path, MAGIC, FORMAT_VERSION, label="block set", kind="triage block set",
        advice="rebuild it", error=BlockSetError, suffix=".tbs")
    if hashlib.sha256(data).digest() != digest:
        raise BlockSetError(f"block set {path}: damaged header (its SHA-256 is not the one in "
                            "the preamble: altered or corrupt)")
    try:
        header = _DECODER.decode(data)
        if header.format_minor != minor:
            raise ValueError(f"minor version {header.format_minor} in the header, {minor} in "
                             "the preamble")
        _check(header, offset)
    except msgspec.DecodeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "not JSON"
        raise BlockSetError(f"block set {path}: damaged header ({first})") from None
    except (ValueError, RecursionError) as exc:
        raise BlockSetError(f"block set {path}: damaged header ({exc})") from None
    return header, offset, size


class BlockSet:
    """An opened ``.tbs`` (see the module docstring); lookups are vectorised over the mmap."""

    def __init__(self, path: Path, header: TbsHeader, mapped: mmap.mmap, data_end: int) -> None:
        self.path = path
        self.header = header
        self._mapped = mapped
        self._data_end = data_end
        self.name = header.name
        self.block_size = header.block_size
        self.digest = header.digest
        self.n_blocks = header.rows
        self.n_entries = header.entries
        self.n_files = header.files
        self.categories: dict[str, int] = dict(header.category_blocks)
        s = header.sections
        self.keys = _section(mapped, s.keys, f"S{KEY_BYTES}")
        self.refs_g = _section(mapped, s.refs, "<u4")
        buckets = _section(mapped, s.buckets, header.bucket_dtype)
        self._table = DigestTable(self.keys, None, 0, buckets, header.bucket_bits, header.entries)
        self.file_starts = _section(mapped, s.file_starts, "<u8")
        self.file_md5 = _section(mapped, s.file_md5, "u1").reshape(-1, 16)
        self.file_sha1 = _section(mapped, s.file_sha1, "u1").reshape(-1, 20)
        self.file_size = _section(mapped, s.file_size, "<u8")
        self.file_category = _section(mapped, s.file_category, "<u2")
        self.file_blocks = _section(mapped, s.file_blocks, "<u4")
        self._name_offsets = _section(mapped, s.name_offsets, "<u8")
        self._names = s.names
        self._files: dict[int, RefFile] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> BlockSet:
        """Map a ``.tbs`` read-only; a bad file raises ``BlockSetError`` (exit 2, one line)."""
        file = Path(path)
        header, data_end, _ = read_header(file)
        try:
            with open(file, "rb") as stream:
                mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise BlockSetError(f"block set {file}: cannot map: {exc}") from None
        if hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_RANDOM)
        return cls(file, header, mapped, data_end)

    # -- lookups ----------------------------------------------------------------------------

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """(n, 16) uint8 digests -> int64 entry index (first row of the key), -1 when absent."""
        keys = np.asarray(keys)
        if keys.ndim != 2 or keys.shape[1] != DIGEST_BYTES or keys.dtype != np.uint8:
            raise ValueError(f"lookup wants (n, {DIGEST_BYTES}) uint8 digests, got "
                             f"{keys.shape} {keys.dtype}")
        if not len(keys) or not self.n_blocks:
            return np.full(len(keys), -1, dtype=np.int64)
        queries = np.ascontiguousarray(keys[:, :KEY_BYTES]).view(f"S{KEY_BYTES}").reshape(-1)
        start, count = self._table.find_many(queries)
        return np.where(count > 0, start, -1).astype(np.int64)

    def rows_of(self, entry: int) -> range:
        """The rows (occurrences) of one entry."""
        if not 0 <= entry < self.n_blocks:
            raise IndexError(f"entry {entry} outside the set (0..{self.n_blocks - 1})")
        key = self.keys[entry]
        end = entry + 1
        while end < self.n_blocks and self.keys[end] == key:
            end += 1
        return range(entry, end)

    def refs(self, entry: int) -> list[BlockRef]:
        """Reference files and offsets of one entry (one per occurrence)."""
        out = []
        for row in self.rows_of(entry):
            f, offset = self.locate(int(self.refs_g[row]))
            out.append(BlockRef(self.file(f), offset))
        return out

    def locate(self, g: int) -> tuple[int, int]:
        """Global block number -> (file index, byte offset in that file)."""
        f = int(np.searchsorted(self.file_starts, g, side="right")) - 1
        if not 0 <= f < self.n_files or g >= int(self.file_starts[f + 1]):
            raise BlockSetError(f"block set {self.path}: damaged (block reference {g} outside "
                                "every file)")
        return f, (g - int(self.file_starts[f])) * self.block_size

    def file(self, index: int) -> RefFile:
        """The reference file ``index`` (cached)."""
        found = self._files.get(index)
        if found is not None:
            return found
        lo, hi = int(self._name_offsets[index]), int(self._name_offsets[index + 1])
        if not 0 <= lo <= hi <= self._names.length:
            raise BlockSetError(f"block set {self.path}: damaged (name of file {index})")
        raw = self._mapped[self._names.offset + lo : self._names.offset + hi]
        md5, sha1 = bytes(self.file_md5[index]), bytes(self.file_sha1[index])
        cat_id = int(self.file_category[index])
        if cat_id >= len(self.header.categories):
            raise BlockSetError(f"block set {self.path}: damaged (category of file {index})")
        found = RefFile(md5=md5.hex() if any(md5) else "", sha1=sha1.hex() if any(sha1) else "",
                        size=int(self.file_size[index]),
                        name=raw.decode("utf-8", errors="surrogateescape"),
                        category=self.header.categories[cat_id])
        self._files[index] = found
        return found

    # -- description ------------------------------------------------------------------------

    def verify(self) -> tuple[str, str | None]:
        """(computed SHA-256 of the data sections, problem or None); reads the whole file."""
        computed = sections_digest(self.path, self._data_end)
        if computed != self.header.sections_sha256:
            return computed, "data does not match the SHA-256 in its header (damaged or altered)"
        return computed, None

    def verification(self) -> Verification:
        """Start ``verify`` on a thread (beside a sample or a scan, as a ``.tdb``'s check runs);
        ``wait()`` says whether the data is what the header records."""
        return Verification(self)

    def info(self, verify: bool = True) -> dict[str, Any]:
        """Counts, dropped blocks by reason, provenance, SHA-256 recorded (and computed)."""
        h = self.header
        out: dict[str, Any] = {
            "path": str(self.path), "name": h.name, "format": h.format,
            "format_version": f"{h.format_version}.{h.format_minor}",
            "block_size": h.block_size, "digest": h.digest, "key_bytes": h.key_bytes,
            "blocks": h.rows, "entries": h.entries, "files": h.files,
            "files_with_blocks": int(np.count_nonzero(self.file_blocks)),
            "categories": dict(h.category_blocks),
            "dropped": dict(h.dropped),
            "source": msgspec.to_builtins(h.source),
            "max_files": h.max_files, "low_entropy_values": h.low_entropy_values,
            "created": h.created, "tool": msgspec.to_builtins(h.tool),
            "file_bytes": os.path.getsize(self.path),
            "bytes_per_block": round(os.path.getsize(self.path) / h.rows, 2) if h.rows else None,
            "sha256_recorded": h.sections_sha256,
        }
        if verify:
            started = time.monotonic()
            computed, problem = self.verify()
            out["sha256_computed"] = computed
            out["verified"] = problem is None
            out["problem"] = problem
            out["verify_seconds"] = round(time.monotonic() - started, 3)
        return out

    def close(self) -> None:
        for name in ("keys", "refs_g", "file_starts", "file_md5", "file_sha1", "file_size",
                     "file_category", "file_blocks", "_name_offsets"):
            setattr(self, name, None)
        self._table = None  # type: ignore[assignment]
        try:
            self._mapped.close()
        except BufferError:  # a caller still holds a view; the map goes with it
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Verification(DataCheck):
    """The data check of one opened set (the same check as a ``.tdb``'s, on a thread)."""

    noun = "block set"

    def __init__(self, blockset: BlockSet) -> None:
        super().__init__(blockset.path, blockset.header.sections_sha256, blockset._data_end)


# -- writing --------------------------------------------------------------------------------


@dataclass
class FileTable:
    """The reference files of a set being written (in global-block order)."""

    starts: np.ndarray  # u64, files + 1
    md5: np.ndarray  # (files, 16) u1
    sha1: np.ndarray  # (files, 20) u1
    size: np.ndarray  # u64
    category: np.ndarray  # u16
    names: list[str]

    def __len__(self) -> int:
        return len(self.size)

    def file_of(self, g: np.ndarray) -> np.ndarray:
        g = np.asarray(g).astype(np.uint64)
        return np.searchsorted(self.starts, g, side="right").astype(np.int64) - 1


class TbsWriter:
    """Streams sorted rows into a ``.tbs`` (atomically: a temp file renamed at ``finish``).

    Rows must come in ascending key order (then ascending g); ``estimate`` (rows expected)
    only sizes the bucket table.
    """

    def __init__(self, path: Path, *, files: FileTable, categories: list[str | None],
                 estimate: int) -> None:
        self.path = Path(path)
        self.files = files
        self.categories = categories
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.bits = bucket_bits(max(estimate, 1))
        self.counts = np.zeros(1 << self.bits, dtype=np.int64)
        self.per_file = np.zeros(len(files), dtype=np.int64)
        self.rows = 0
        self.entries = 0
        self._last: bytes | None = None
        try:
            self.stream = open(self.tmp, "wb")
            self.refs_tmp = open(self.tmp.with_name(self.tmp.name + ".refs"), "w+b")
        except OSError as exc:
            raise BlockSetError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.out = _Out(self.stream)
        self.keys_offset = self.out.align()

    def add(self, keys: np.ndarray, g: np.ndarray) -> None:
        """Append rows: ``S12`` keys (sorted, continuing the previous call's order), u32 g."""
        if not len(keys):
            return
        first = keys[0].tobytes().ljust(KEY_BYTES, b"\0")
        if self._last is not None and first < self._last:
            raise AssertionError("block set rows out of order")
        new = np.ones(len(keys), dtype=bool)
        new[1:] = keys[1:] != keys[:-1]
        if self._last is not None and first == self._last:
            new[0] = False
        self.entries += int(new.sum())
        self._last = keys[-1].tobytes().ljust(KEY_BYTES, b"\0")
        self.out.write(memoryview(np.ascontiguousarray(keys).view(np.uint8)))
        np.ascontiguousarray(g, dtype="<u4").tofile(self.refs_tmp)
        ids = top_bits(keys, self.bits)
        lo = int(ids[0])
        self.counts[lo : int(ids[-1]) + 1] += np.bincount(ids - lo)
        owners = self.files.file_of(g)
        if 4 * len(owners) < len(self.files):  # few rows, many files: no files-long temporary
            found, counts = np.unique(owners, return_counts=True)
            self.per_file[found] += counts
        else:
            self.per_file += np.bincount(owners, minlength=len(self.files))
        self.rows += len(keys)

    def finish(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Write the other sections and the header; rename into place; returns the header."""
        try:
            return self._finish(meta)
        except OSError as exc:
            raise BlockSetError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        finally:
            self.abort()

    def _finish(self, meta: dict[str, Any]) -> dict[str, Any]:
        out, files = self.out, self.files
        sections: dict[str, dict[str, int]] = {}

        def put(name: str, data: np.ndarray | bytes) -> None:
            offset = out.align()
            view = memoryview(np.ascontiguousarray(data)) if isinstance(data, np.ndarray) else memoryview(data)
            out.write(view)
            sections[name] = {"offset": offset, "length": out.pos - offset}

        sections["keys"] = {"offset": self.keys_offset, "length": self.rows * KEY_BYTES}
        offset = out.align()
        self.refs_tmp.seek(0)
        while chunk := self.refs_tmp.read(1 << 24):
            out.write(chunk)
        sections["refs"] = {"offset": offset, "length": out.pos - offset}
        buckets = offsets_from_counts(self.counts, self.rows)
        bucket_dtype = buckets.dtype.newbyteorder("<")
        put("buckets", buckets.astype(bucket_dtype))
        put("file_starts", files.starts.astype("<u8"))
        put("file_md5", files.md5.astype(np.uint8).reshape(-1, 16))
        put("file_sha1", files.sha1.astype(np.uint8).reshape(-1, 20))
        put("file_size", files.size.astype("<u8"))
        put("file_category", files.category.astype("<u2"))
        put("file_blocks", self.per_file.astype("<u4"))
        encoded = [n.encode("utf-8", errors="surrogateescape") for n in files.names]
        name_offsets = np.zeros(len(encoded) + 1, dtype="<u8")
        np.cumsum([len(e) for e in encoded], out=name_offsets[1:])
        put("name_offsets", name_offsets)
        put("names", b"".join(encoded))
        per_category = np.bincount(files.category.astype(np.int64), weights=self.per_file,
                                   minlength=len(self.categories)) if len(files) else np.zeros(0)
        category_blocks = {("null" if self.categories[i] is None else self.categories[i]): int(n)
                           for i, n in enumerate(per_category.tolist()) if n}
        header: dict[str, Any] = {
            "format": "triage-blockset", "format_version": FORMAT_VERSION,
            "format_minor": FORMAT_MINOR, "key_bytes": KEY_BYTES, "rows": self.rows,
            "entries": self.entries, "files": len(files),
            "global_blocks": int(files.starts[-1]) if len(files.starts) else 0,
            "bucket_bits": self.bits, "bucket_dtype": bucket_dtype.str, "sections": sections,
            "categories": list(self.categories), "category_blocks": category_blocks,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tool": {"name": "triage", "version": __version__},
        }
        header.update(meta)
        offset = out.align()
        header["sections_sha256"] = out.sha.hexdigest()
        data = msgspec.json.encode(header)
        _DECODER.decode(data)  # what we write must be what we read
        self.stream.write(data)
        self.stream.seek(0)
        self.stream.write(PREAMBLE.pack(MAGIC, FORMAT_VERSION, FORMAT_MINOR, offset, len(data),
                                        hashlib.sha256(data).digest()))
        self.stream.close()
        os.replace(self.tmp, self.path)
        return header

    def abort(self) -> None:
        """Close and remove the temporary files (after ``finish`` only the spool remains)."""
        for stream in (self.stream, self.refs_tmp):
            if not stream.closed:
                stream.close()
        for file in (self.tmp, self.tmp.with_name(self.tmp.name + ".refs")):
            file.unlink(missing_ok=True)

