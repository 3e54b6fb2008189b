"""The compiled index file (``.tdb``): written once, opened in microseconds, read via mmap.

Layout (all integers little-endian)::

    0    preamble, 64 bytes: b"TRIAGEDB", u32 format version, u32 minor version, u64 header
         offset, u64 header length, SHA-256 of the header bytes (minor 2; zero bytes before)
    64   data sections, each 64-byte aligned, per algorithm:
           digests     n x w bytes, sorted (memcmp order); a digest repeats once per category
           categories  n x uint8/uint16 category ids (absent when every row has the same id)
           buckets     2**bits + 1 x uint32/uint64: first row whose top ``bits`` bits >= b
         then ``sizes``: sorted distinct declared file sizes (uint32/uint64), if complete
         then (minor 1) ``pdq``: PDQ hashes and their multi-index, if a source had any
         (``pdqsection``)
         then (minor 3) ``vpdq``: vPDQ video frames, their multi-index and video table, if a
         source was a vPDQ file or folder (``vpdqsection``)
    end  header: UTF-8 JSON (name, kind, profile, sources + SHA-256, categories, per-algorithm
         counts and section offsets, conflicts, creation time, SHA-256 of the data sections)

Versions: the major version changes when an older reader could misread the file, and is
refused when it is not ours; a minor version only adds sections and header keys an older
reader ignores (version 1.0 readers never looked at the minor field, which was 0), so every
1.x file opens here and a 1.0 file simply has no PDQ section. Minor 2 fills the preamble's
reserved bytes with the header's SHA-256 (older readers skip them).

Trust: opening checks the preamble, the header's SHA-256 (minor >= 2) and the header against
its one schema (``tdbheader``), so a damaged or crafted header is one line, never a traceback.
The data sections are checked by ``Verification``: their SHA-256 against the header's
``sections_sha256``, on a thread beside the scan (it reads the whole file: ~1 GB/s), then the
ids a lookup would follow (category ids, PDQ rows) against the header's counts.

The header sits at the end so the data can be streamed out before its totals are known.
Opening reads the preamble and the header and maps the file: no work proportional to its size,
and pages are only read when a lookup touches them.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from triage.errors import HashSetError
from triage.hashsets.model import ALGORITHM_HEX_LENGTHS, HashSet
from triage.hashsets.profiles import Profile
from triage.hashsets import tdbheader
from triage.hashsets.store import Finished
from triage.hashsets.table import (
    DigestTable,
    bucket_bits,
    build_buckets,
    offsets_from_counts,
    top_bits,
)

MAGIC = b"TRIAGEDB"
FORMAT_VERSION = 1
FORMAT_MINOR = 3  # 1: optional PDQ section; 2: the header's SHA-256 in the preamble;
#                  3: optional vPDQ section (older 1.x readers ignore it)
HEADER_DIGEST_MINOR = 2
PREAMBLE = struct.Struct("<8sIIQQ32s")
ALIGN = 64
MAX_HEADER = 64 * 1024 * 1024
MAX_EXAMPLES = 100  # conflicting digests listed in the header; `info --conflicts` finds all


def is_index(head: bytes) -> bool:
    return head.startswith(MAGIC)


# -- writing --------------------------------------------------------------------------------


class _Out:
    """Sequential writer that aligns sections and hashes everything after the preamble."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.pos = PREAMBLE.size
        self.sha = hashlib.sha256()
        stream.write(bytes(PREAMBLE.size))

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")  # count bytes, not array items
        self.stream.write(view)
        self.sha.update(view)
        self.pos += view.nbytes

    def align(self) -> int:
        pad = -self.pos % ALIGN
        if pad:
            self.write(bytes(pad))
        return self.pos


def _category_dtype(ids: set[int]) -> np.dtype | None:
    if len(ids) <= 1:
        return None
    return np.dtype(np.uint8) if max(ids) < 256 else np.dtype("<u2")


def write_index(path: Path, finished: Finished, meta: dict[str, Any],
                pdq: Any = None, vpdq: Any = None) -> dict[str, Any]:
    """Stream ``finished`` into ``path`` (atomically: a temp file renamed); returns the header.
    ``pdq`` (``pdqsection.PdqRows``) adds the PDQ section when it holds any hash, ``vpdq``
    (``vpdqsection.VpdqRows``) the vPDQ section when it holds any video."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as stream:
            out = _Out(stream)
            header = dict(meta)
            header.update(format="triage-hashset-index", format_version=FORMAT_VERSION,
                          format_minor=FORMAT_MINOR)
            header["algorithms"] = {}
            examples: list[dict[str, Any]] = []
            categories = finished.store.categories
            for algorithm in finished.algorithms:
                header["algorithms"][algorithm] = _write_table(
                    out, finished, algorithm, categories, examples, Path(tmp).parent
                )
            sizes = finished.store.sizes.result()
            header["sizes"] = _write_sizes(out, sizes, finished.store.sizes)
            if pdq is not None and len(pdq):
                header["pdq"] = pdq.write(out, categories)
            if vpdq is not None and len(vpdq):
                header["vpdq"] = vpdq.write(out, categories)
            header["categories"] = list(categories)
            header["conflicts"] = {
                "total": sum(t["conflicts"] for t in header["algorithms"].values()),
                "examples": examples,
            }
            offset = out.align()
            header["sections_sha256"] = out.sha.hexdigest()
            data = json.dumps(header, ensure_ascii=False, sort_keys=True).encode("utf-8")
            stream.write(data)
            stream.seek(0)
            stream.write(PREAMBLE.pack(MAGIC, FORMAT_VERSION, FORMAT_MINOR, offset, len(data),
                                       hashlib.sha256(data).digest()))
        os.replace(tmp, path)
    except OSError as exc:
        raise HashSetError(f"cannot write index {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return header


def _write_table(
    out: _Out,
    finished: Finished,
    algorithm: str,
    categories: list[str | None],
    examples: list[dict[str, Any]],
    tmpdir: Path,
) -> dict[str, Any]:
    bits = bucket_bits(finished.rows_added(algorithm))
    cat_dtype = _category_dtype(finished.category_ids(algorithm))
    counts = np.zeros(1 << bits, dtype=np.int64)
    per_category = np.zeros(len(categories), dtype=np.int64)
    rows = unique = conflicts = 0
    width = ALGORITHM_HEX_LENGTHS[algorithm] // 2
    start = out.align()
    with tempfile.TemporaryFile(dir=tmpdir) as cat_file:
        for block in finished.blocks(algorithm):
            out.write(memoryview(block.keys.view(np.uint8)))
            if cat_dtype is not None:
                block.cats.astype(cat_dtype).tofile(cat_file)
            if len(block.keys):  # blocks come in order: count only this block's bucket range
                ids = top_bits(block.keys, bits)
                first = int(ids[0])
                counts[first : int(ids[-1]) + 1] += np.bincount(ids - first)
            per_category += np.bincount(block.cats, minlength=len(categories))
            for row in block.conflict_rows[: max(0, MAX_EXAMPLES - len(examples))].tolist():
                examples.append(_example(algorithm, block, row, categories))
            rows += len(block.keys)
            unique += block.unique
            conflicts += block.conflicts
        table: dict[str, Any] = {
            "rows": rows, "unique": unique, "conflicts": conflicts, "digest_bytes": width,
            "digests": {"offset": start, "length": rows * width},
        }
        if cat_dtype is None:
            ids = finished.category_ids(algorithm)
            table["categories"] = {"constant": next(iter(ids)) if ids else 0}
        else:
            offset = out.align()
            cat_file.seek(0)
            while chunk := cat_file.read(1 << 24):
                out.write(chunk)
            table["categories"] = {"offset": offset, "length": out.pos - offset, "dtype": cat_dtype.str}
    buckets = offsets_from_counts(counts, rows)
    offset = out.align()
    out.write(memoryview(buckets.astype(buckets.dtype.newbyteorder("<"))))
    table["buckets"] = {"offset": offset, "length": buckets.nbytes, "bits": bits, "dtype": buckets.dtype.newbyteorder("<").str}
    table["counts"] = {_code(categories[i]): int(n) for i, n in enumerate(per_category.tolist()) if n}
    return table


def _example(algorithm: str, block: Any, row: int, categories: list[str | None]) -> dict[str, Any]:
    key = block.keys[row : row + 1].view(np.uint8).tobytes()
    names = []
    end = row
    while end < len(block.keys) and block.keys[end] == block.keys[row]:
        names.append(categories[int(block.cats[end])])
        end += 1
    return {"algorithm": algorithm, "digest": key.hex(), "categories": names}


def _write_sizes(out: _Out, sizes: np.ndarray | None, source: Any) -> dict[str, Any]:
    if sizes is None:
        reason = "too many distinct sizes" if source.overflow else "not every record declares a size"
        return {"complete": False, "reason": reason}
    dtype = np.dtype("<u4") if int(sizes[-1]) < 2**32 else np.dtype("<u8")
    offset = out.align()
    out.write(memoryview(sizes.astype(dtype)))
    return {"complete": True, "count": len(sizes), "offset": offset, "length": len(sizes) * dtype.itemsize, "dtype": dtype.str}


def _code(category: str | None) -> str:
    return "null" if category is None else category


# -- reading --------------------------------------------------------------------------------


def read_framed(path: Path, magic: bytes, version: int, *, label: str, kind: str,
                advice: str, error: type[Exception], suffix: str | None = None
                ) -> tuple[bytes, int, int, int, bytes]:
    """The header bytes of a file framed by ``PREAMBLE`` (a ``.tdb`` index, a ``.tbs`` block
    set): (header, minor version, header offset, file size, header SHA-256 in the preamble).
    Magic, major version and the header's place are checked; any damage is one ``error`` line
    ("``label`` PATH: ..."); ``suffix``: a folder given instead says so."""
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            pre = stream.read(PREAMBLE.size)
            if len(pre) < PREAMBLE.size or not pre.startswith(magic):
                raise error(f"{label} {path}: not a {kind} (bad magic)")
            _, found, minor, offset, length, digest = PREAMBLE.unpack(pre)
            if found != version:
                raise error(f"{label} {path}: format version {found} (this triage reads "
                            f"{version}); {advice}")
            if offset < PREAMBLE.size or length > MAX_HEADER or offset + length != size:
                raise error(f"{label} {path}: truncated or damaged (header at "
                            f"{offset}+{length}, file {size} bytes)")
            stream.seek(offset)
            data = stream.read(length)
    except OSError as exc:
        if suffix is not None and isinstance(exc, IsADirectoryError):
            raise error(f"{label} {path}: is a folder, not a {suffix} file") from None
        raise error(f"{label} {path}: cannot read: {exc.strerror or exc}") from None
    return data, minor, offset, size, digest


def read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """(header, header offset, file size) of an index whose header passed every check (see
    the module docstring); any damage is a one-line ``HashSetError``."""
    data, minor, offset, size, digest = read_framed(
        path, MAGIC, FORMAT_VERSION, label="index", kind="triage index",
        advice="re-import the sources", error=HashSetError)
    if minor >= HEADER_DIGEST_MINOR and hashlib.sha256(data).digest() != digest:
        raise HashSetError(f"index {path}: damaged header (its SHA-256 is not the one in the "
                           "preamble: altered or corrupt)")
    try:
        header = tdbheader.decode(data)
        if header.format_minor != minor:
            raise tdbheader.HeaderError(f"minor version {header.format_minor} in the header, "
                                        f"{minor} in the preamble")
        tdbheader.check(header, offset)
    except tdbheader.HeaderError as exc:
        raise HashSetError(f"index {path}: damaged header ({exc})") from None
    return tdbheader.to_dict(header), offset, size


def header_digest(path: Path) -> str | None:
    """The header's SHA-256 recorded in the preamble (None before minor 2)."""
    with open(path, "rb") as stream:
        _, _, minor, _, _, digest = PREAMBLE.unpack(stream.read(PREAMBLE.size))
    return digest.hex() if minor >= HEADER_DIGEST_MINOR else None


def map_readonly(file: Path) -> mmap.mmap:
    """The whole index mapped read-only; lookups are random: no read-ahead to inflate RSS."""
    try:
        with open(file, "rb") as stream:
            mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise HashSetError(f"index {file}: cannot map: {exc}") from None
    if hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_RANDOM)
    return mapped


def open_index(path: str | os.PathLike[str], *, unlink: bool = False) -> HashSet:
    """Map a ``.tdb``; ``unlink`` removes the file once mapped (temporary indexes)."""
    file = Path(path)
    header, data_end, size = read_header(file)
    mapped = map_readonly(file)
    if unlink:
        file.unlink()
    try:
        hs = _hashset(file, header, mapped, data_end)
        hs.index_file = None if unlink else str(file.absolute())
        return hs
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise HashSetError(f"index {file}: damaged header ({type(exc).__name__}: {exc})") from None


def _section(mapped: mmap.mmap, spec: dict[str, Any], dtype: np.dtype, limit: int) -> np.ndarray:
    offset, length = int(spec["offset"]), int(spec["length"])
    if offset < PREAMBLE.size or length < 0 or offset + length > limit or length % dtype.itemsize:
        raise ValueError(f"section {offset}+{length} outside the data area")
    return np.frombuffer(mapped, dtype=dtype, count=length // dtype.itemsize, offset=offset)


def _hashset(file: Path, header: dict[str, Any], mapped: mmap.mmap, limit: int) -> HashSet:
    categories = header["categories"]
    if not isinstance(categories, list) or not categories:
        raise ValueError("no category list")
    tables = {}
    for algorithm, spec in header["algorithms"].items():
        width = ALGORITHM_HEX_LENGTHS[algorithm] // 2
        if int(spec["digest_bytes"]) != width:
            raise ValueError(f"{algorithm} digests of {spec['digest_bytes']} bytes")
        keys = _section(mapped, spec["digests"], np.dtype(f"S{width}"), limit)
        cat_spec = spec["categories"]
        cats = None
        constant = 0
        if "constant" in cat_spec:
            constant = int(cat_spec["constant"])
            if not 0 <= constant < len(categories):
                raise ValueError("category id out of range")
        else:
            cats = _section(mapped, cat_spec, np.dtype(cat_spec["dtype"]), limit)
        bits = int(spec["buckets"]["bits"])
        buckets = _section(mapped, spec["buckets"], np.dtype(spec["buckets"]["dtype"]), limit)
        if len(buckets) != (1 << bits) + 1 or (cats is not None and len(cats) != len(keys)):
            raise ValueError(f"{algorithm} sections disagree in length")
        tables[algorithm] = DigestTable(keys, cats, constant, buckets, bits, int(spec["unique"]))
    sizes = None
    if header["sizes"].get("complete"):
        sizes = _section(mapped, header["sizes"], np.dtype(header["sizes"]["dtype"]), limit)
    sources = header.get("sources", [])
    return HashSet(
        name=str(header["name"]),
        path=str(file),
        kind=str(header["kind"]),
        format="tdb",
        sha256=str(header["sections_sha256"]),
        tables=tables,
        categories=tuple(categories),
        skipped=sum(int(s.get("skipped", 0)) for s in sources),
        dropped_empty=sum(int(s.get("dropped_empty", 0)) for s in sources),
        conflicts=int(header["conflicts"]["total"]),
        sizes=sizes,
        profile=Profile.from_json(header.get("profile")),
        sources=sources,
        header=header,
    )


def reopen(index_file: str, overrides: dict[str, Any]) -> HashSet:
    """Unpickling: map the same index again (in a scan worker) and restore what the caller set."""
    hs = open_index(index_file)
    for key, value in overrides.items():
        setattr(hs, key, value)
    return hs


def sections_digest(path: str | os.PathLike[str], end: int | None = None) -> str:
    """SHA-256 of the data sections (bytes 64 .. header offset), read in 8 MiB pieces into
    one buffer: RSS stays flat and the GIL is free while hashing (a thread beside a scan)."""
    if end is None:
        end = read_header(Path(path))[1]
    sha = hashlib.sha256()
    buffer = bytearray(8 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        stream.seek(PREAMBLE.size)
        remaining = end - PREAMBLE.size
        while remaining > 0:
            got = stream.readinto(view[: min(remaining, len(buffer))])
            if not got:
                raise OSError(f"file ends {remaining} bytes early")
            sha.update(view[:got])
            remaining -= got
    return sha.hexdigest()


class DataCheck:
    """The SHA-256 check of a mapped file's data sections, on a thread started at open.

    Why beside the work and not before it: an index of 100M entries is 3.6 GB, seconds of
    hashing; workers start hashing evidence meanwhile, and the run waits for the answer
    before it calls itself complete. ``on_failure`` (called from the thread) lets a scan stop
    as soon as the file is known to be bad. Shared by ``.tdb`` indexes and ``.tbs`` block sets.
    """

    noun = "index"

    def __init__(self, path: str | os.PathLike[str], recorded: str, end: int,
                 on_failure: Callable[[DataCheck], None] | None = None,
                 header_sha256: str | None = None) -> None:
        self.path = str(path)
        self.recorded = recorded
        self.header_sha256 = header_sha256
        self.computed: str | None = None
        self.problem: str | None = None
        self.seconds: float | None = None
        self._end = end
        self.on_failure = on_failure
        self._thread = threading.Thread(target=self._run, name=f"triage-verify-{self.noun}",
                                        daemon=True)
        self._thread.start()

    def more_problems(self) -> str | None:
        """What else must hold once the data is known to be what was written."""
        return None

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self.computed = sections_digest(self.path, self._end)
            if self.computed != self.recorded:
                self.problem = ("data does not match the SHA-256 in its header (damaged or "
                                "altered)")
            else:
                self.problem = self.more_problems()
        except (OSError, HashSetError, ValueError) as exc:
            self.problem = f"cannot verify: {getattr(exc, 'strerror', None) or exc}"
        self.seconds = round(time.monotonic() - started, 3)
        if self.problem is not None and self.on_failure is not None:
            self.on_failure(self)

    def wait(self) -> bool:
        """True when the file is what its header says (blocks until the check ends)."""
        self._thread.join()
        return self.problem is None

    @property
    def status(self) -> str:
        if self._thread.is_alive():
            return "pending"
        return "verified" if self.problem is None else "failed"

    def message(self) -> str:
        return f"{self.noun} {self.path}: {self.problem}"

    def summary(self) -> dict[str, Any]:
        """``summary.json``: what the header records and what was computed from the file."""
        return {"status": self.status, "sections_sha256_recorded": self.recorded,
                "sections_sha256_computed": self.computed,
                "header_sha256": self.header_sha256, "seconds": self.seconds,
                "problem": self.problem}


class Verification(DataCheck):
    """The check of one opened ``.tdb`` index, plus the ids a lookup follows."""

    def __init__(self, path: str | os.PathLike[str],
                 on_failure: Callable[[DataCheck], None] | None = None) -> None:
        header, end, _ = read_header(Path(path))
        self._categories = len(header["categories"])
        super().__init__(path, header["sections_sha256"], end, on_failure,
                         header_digest(Path(path)))

    def more_problems(self) -> str | None:
        return _ids_problem(Path(self.path), self._categories)


def failed_checks(items: Any, wait: bool) -> list[str]:
    """One line per failed index check among ``items`` (hash sets, PDQ sets: anything with a
    ``verification``); ``wait`` lets pending checks finish first (a run that ended normally)."""
    problems: list[str] = []
    for item in items:
        check = getattr(item, "verification", None)
        if check is None:
            continue
        if wait:
            check.wait()
        if check.status == "failed" and check.message() not in problems:
            problems.append(check.message())
    return problems


def _ids_problem(path: Path, categories: int) -> str | None:
    """Ids a lookup follows, checked once the data is known to be what was written: a crafted
    file with a consistent digest must still not make a worker index past an array."""
    hs = open_index(path)
    for algorithm, table in hs.tables.items():
        if table.cats is not None and len(table.cats) and int(table.cats.max()) >= categories:
            return f"{algorithm} category id past the category list"
        if len(table.buckets) and (int(table.buckets[-1]) != len(table.keys)
                                   or bool(np.any(np.diff(table.buckets.astype(np.int64)) < 0))):
            return f"{algorithm} bucket table inconsistent with its digests"
    spec = (hs.header or {}).get("pdq")
    if spec:  # mapped here, not through open_pdq: a known-good index may carry PDQ too
        end = read_header(path)[1]
        mapped = map_readonly(path)
        words, meta, ids, offsets = (_section(mapped, spec[name], np.dtype(spec[name]["dtype"]), end)
                                     for name in ("words", "meta", "ids", "offsets"))
        if len(ids) and int(ids.max()) >= len(words) // 4:
            return "PDQ row id past the PDQ hashes"
        if len(meta) and (int((meta & 0xFFFF).max()) >= categories or int((meta >> 16).max())):
            return "PDQ category id past the category list"
        if len(offsets) and int(offsets.max()) > len(ids):
            return "PDQ bucket offsets past the PDQ ids"
    vspec = (hs.header or {}).get("vpdq")
    if vspec:
        return _vpdq_ids_problem(map_readonly(path), vspec, read_header(path)[1], categories)
    return None


def _vpdq_ids_problem(mapped: mmap.mmap, spec: dict[str, Any], end: int,
                      categories: int) -> str | None:
    """The vPDQ section's ids (``vpdqsection``): rows, videos, categories, name offsets."""
    a = {name: _section(mapped, spec[name], np.dtype(dtype), end)
         for name, dtype in tdbheader.VPDQ_ARRAYS.items()}
    rows, videos = len(a["video"]), len(a["categories"])
    if len(a["ids"]) and int(a["ids"].max()) >= rows:
        return "vPDQ row id past the frames"
    if len(a["offsets"]) and int(a["offsets"].max()) > len(a["ids"]):
        return "vPDQ bucket offsets past the ids"
    if rows and int(a["video"].max()) >= videos:
        return "vPDQ video id past the video table"
    if videos and int(a["categories"].max()) >= categories:
        return "vPDQ category id past the category list"
    offs = a["name_offsets"]
    if len(offs) and (int(offs[0]) != 0 or int(offs[-1]) != len(a["names"])
                      or bool(np.any(np.diff(offs.astype(np.int64)) < 0))):
        return "vPDQ name offsets out of order"
    return None


def verify(path: Path) -> bool:
    """Re-hash the data sections and compare with the header (integrity of the reference set)."""
    header, offset, _ = read_header(path)
    try:
        return sections_digest(path, offset) == header["sections_sha256"]
    except OSError:
        return False


def memory_tables(finished: Finished) -> tuple[dict[str, DigestTable], int]:
    """The in-memory equivalent of ``write_index`` for small sets: (tables, conflicts)."""
    tables = {}
    conflicts = 0
    for algorithm in finished.algorithms:
        blocks = list(finished.blocks(algorithm))
        keys = np.concatenate([b.keys for b in blocks])
        cats = np.concatenate([b.cats for b in blocks])
        bits = bucket_bits(len(keys))
        unique = sum(b.unique for b in blocks)
        conflicts += sum(b.conflicts for b in blocks)
        tables[algorithm] = DigestTable(keys, cats, 0, build_buckets(keys, bits), bits, unique)
    return tables, conflicts

