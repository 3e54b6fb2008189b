"""The one schema of a ``.tdb`` header, checked before anything in it is used.

Why: the header says where every section lies and how long it is; a header with a list where a
number belongs, a NaN, a nesting bomb or an offset outside the file must be refused with one
line (exit 2), never a traceback (exit 1 reads as "known-bad found" to a lab script). msgspec
decodes straight into these types (a wrong type fails at the first offending value, with its
JSON path); ``check`` then ties the numbers together: every section inside the data area,
lengths that agree with the row counts, category ids inside the category list.

Keys a later minor version may add are ignored (a 1.x reader reads every 1.x file); keys
this version knows are typed exactly. Only keys that may be absent have a default (None), so
``to_dict`` gives back the header as written, minus unknown keys.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from triage.perceptual.index import CHUNKS, INDEX_VERSION
from triage.perceptual.index import WIDTHS as PDQ_WIDTHS

Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Hex64 = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
HexDigest = Annotated[str, Meta(pattern="^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})$")]
Algorithm = Literal["md5", "sha1", "sha256"]
WIDTHS = {"md5": 16, "sha1": 20, "sha256": 32}
ALIGN = 64
BUCKET_BITS = (8, 24)  # triage.hashsets.table MIN/MAX_BUCKET_BITS
MAX_CATEGORIES = 65536  # ids are uint16


# the vPDQ section's arrays (``hashsets.vpdqsection``) and the items each must hold
VPDQ_ARRAYS = {"words": "<u8", "ids": "<u4", "offsets": "<u4", "video": "<u4", "times": "<f4",
               "categories": "<u2", "frames": "<u4", "name_offsets": "<u8", "names": "|u1"}


def vpdq_sizes(rows: int, videos: int, bits: tuple[int, ...], names: int) -> dict[str, int]:
    """Items each vPDQ array must hold (the header check and the opener agree on them)."""
    return {"words": 4 * rows, "ids": CHUNKS * rows, "offsets": sum((1 << b) + 1 for b in bits),
            "video": rows, "times": rows, "categories": videos, "frames": videos,
            "name_offsets": videos + 1, "names": names}


class Span(Struct, omit_defaults=True):
    offset: Count
    length: Count


class CategorySection(Struct, omit_defaults=True):
    """Either one id for every row (``constant``) or an array of ids."""

    constant: Count | None = None
    offset: Count | None = None
    length: Count | None = None
    dtype: Literal["|u1", "<u2"] | None = None


class Buckets(Span, omit_defaults=True):
    bits: Annotated[int, Meta(ge=BUCKET_BITS[0], le=BUCKET_BITS[1])]
    dtype: Literal["<u4", "<u8"]


class Table(Struct, omit_defaults=True):
    rows: Count
    unique: Count
    conflicts: Count
    digest_bytes: Literal[16, 20, 32]
    digests: Span
    categories: CategorySection
    buckets: Buckets
    counts: dict[str, Count]


class Sizes(Struct, omit_defaults=True):
    complete: bool
    reason: str | None = None
    count: Count | None = None
    offset: Count | None = None
    length: Count | None = None
    dtype: Literal["<u4", "<u8"] | None = None


class PdqArray(Span, omit_defaults=True):
    dtype: str


class Pdq(Struct, omit_defaults=True):
    index_version: int
    rows: Count
    unique: Count
    bucket_bits: Annotated[list[Annotated[int, Meta(ge=1, le=64)]], Meta(max_length=16)]
    words: PdqArray
    meta: PdqArray
    ids: PdqArray
    offsets: PdqArray
    counts: dict[str, Count]


class Vpdq(Struct, omit_defaults=True):
    """The vPDQ section (``hashsets.vpdqsection``): frame multi-index, frame -> video, video
    table."""

    index_version: int
    rows: Count
    videos: Count
    bucket_bits: Annotated[list[Annotated[int, Meta(ge=1, le=64)]], Meta(max_length=16)]
    words: PdqArray
    ids: PdqArray
    offsets: PdqArray
    video: PdqArray
    times: PdqArray
    categories: PdqArray
    frames: PdqArray
    name_offsets: PdqArray
    names: PdqArray
    counts: dict[str, Count]


class Example(Struct, omit_defaults=True):
    algorithm: Algorithm
    digest: HexDigest
    categories: list[str | None]


class Conflicts(Struct, omit_defaults=True):
    total: Count
    examples: Annotated[list[Example], Meta(max_length=1000)]


class Profile(Struct, omit_defaults=True):
    name: str
    description: str
    labels: dict[str, str]
    source: str


class Tool(Struct, omit_defaults=True):
    name: str
    version: str


class Source(Struct, omit_defaults=True):
    """One source file of the index: what ``summary.json`` repeats about it."""

    path: str
    name: str
    format: str
    sha256: Hex64
    bytes: Count
    records: Count
    skipped: Count
    dropped_empty: Count
    vics_context: str | None = None
    vics_version: str | None = None
    vics_profile: str | None = None
    vics_shape: str | None = None
    zip_entry: str | None = None
    rds_flavour: str | None = None
    rds_version: str | None = None
    rds_table: str | None = None
    kdb_properties: dict[str, str] | None = None
    pdq_format: str | None = None
    pdq_hashes: Count | None = None
    pdq_skipped: Count | None = None
    pdq_dropped: Count | None = None
    vpdq_videos: Count | None = None
    vpdq_frames: Count | None = None
    vpdq_lines: Count | None = None
    vpdq_category: str | None = None


class Header(Struct, omit_defaults=True):
    format: Literal["triage-hashset-index"]
    format_version: int
    name: str
    kind: Literal["known-bad", "known-good"]
    algorithms: dict[Algorithm, Table]
    sizes: Sizes
    categories: Annotated[list[str | None], Meta(min_length=1, max_length=MAX_CATEGORIES)]
    conflicts: Conflicts
    sections_sha256: Hex64
    records: Count
    sources: list[Source]
    format_minor: Count = 0  # absent in 1.0 files
    profile: Profile | None = None
    created: str | None = None
    tool: Tool | None = None
    pdq: Pdq | None = None
    vpdq: Vpdq | None = None  # minor 3


_DECODER = msgspec.json.Decoder(Header)


class HeaderError(ValueError):
    """The header is not one this triage wrote: the reason, one line."""


def decode(data: bytes) -> Header:
    """Parse and type-check the header bytes (``HeaderError`` names the first bad value)."""
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError included: "... - at `$.path`"
        raise HeaderError(str(exc).splitlines()[0] if str(exc) else "not JSON") from None
    except RecursionError:
        raise HeaderError("nested too deeply") from None


def _span(what: str, span: Span, data_end: int, item: int = 1) -> None:
    if span.offset < 64 or span.offset % ALIGN or span.offset + span.length > data_end:
        raise HeaderError(f"{what} section {span.offset}+{span.length} is outside the data area "
                          f"(64..{data_end})")
    if span.length % item:
        raise HeaderError(f"{what} section of {span.length} bytes is not whole {item}-byte items")


def _itemsize(dtype: str) -> int:
    return int(dtype[2:])


def check(header: Header, data_end: int) -> None:
    """The numbers agree with each other and with the file (``data_end``: header offset)."""
    ncat = len(header.categories)
    total_conflicts = 0
    for algorithm, table in header.algorithms.items():
        width = WIDTHS[algorithm]
        if table.digest_bytes != width:
            raise HeaderError(f"{algorithm} digests of {table.digest_bytes} bytes")
        _span(f"{algorithm} digest", table.digests, data_end, width)
        if table.digests.length != table.rows * width:
            raise HeaderError(f"{algorithm}: {table.rows} rows but {table.digests.length} digest bytes")
        if not table.conflicts <= table.unique <= table.rows:
            raise HeaderError(f"{algorithm}: counts disagree (rows {table.rows}, unique "
                              f"{table.unique}, conflicts {table.conflicts})")
        if sum(table.counts.values()) != table.rows:
            raise HeaderError(f"{algorithm}: per-category counts do not add up to {table.rows} rows")
        cats = table.categories
        if cats.constant is not None:
            if cats.offset is not None or cats.constant >= ncat:
                raise HeaderError(f"{algorithm}: category id {cats.constant} out of range")
        else:
            if cats.offset is None or cats.length is None or cats.dtype is None:
                raise HeaderError(f"{algorithm}: category section incomplete")
            span = Span(cats.offset, cats.length)
            _span(f"{algorithm} category", span, data_end, _itemsize(cats.dtype))
            if cats.length != table.rows * _itemsize(cats.dtype):
                raise HeaderError(f"{algorithm}: {table.rows} rows but {cats.length} category bytes")
        buckets = table.buckets
        _span(f"{algorithm} bucket", buckets, data_end, _itemsize(buckets.dtype))
        if buckets.length != ((1 << buckets.bits) + 1) * _itemsize(buckets.dtype):
            raise HeaderError(f"{algorithm}: bucket table of {buckets.length} bytes for "
                              f"{buckets.bits} bits")
        total_conflicts += table.conflicts
    if header.conflicts.total != total_conflicts:
        raise HeaderError("conflict total disagrees with the tables")
    sizes = header.sizes
    if sizes.complete:
        if sizes.count is None or sizes.offset is None or sizes.length is None or sizes.dtype is None:
            raise HeaderError("size section incomplete")
        _span("size", Span(sizes.offset, sizes.length), data_end, _itemsize(sizes.dtype))
        if sizes.length != sizes.count * _itemsize(sizes.dtype):
            raise HeaderError(f"{sizes.count} sizes but {sizes.length} bytes")
    if header.pdq is not None:
        _check_pdq(header.pdq, data_end)
    if header.vpdq is not None:
        _check_vpdq(header.vpdq, data_end)


def _check_pdq(pdq: Pdq, data_end: int) -> None:
    if pdq.index_version != INDEX_VERSION:
        raise HeaderError(f"PDQ index version {pdq.index_version}")
    bits = pdq.bucket_bits
    if len(bits) != CHUNKS or any(not 0 < b <= w for b, w in zip(bits, PDQ_WIDTHS)):
        raise HeaderError("PDQ bucket bits")
    if pdq.unique > pdq.rows:
        raise HeaderError("PDQ counts disagree")
    expected = {"words": ("<u8", 4 * pdq.rows), "meta": ("<u4", pdq.rows),
                "ids": ("<u4", CHUNKS * pdq.rows),
                "offsets": ("<u4", sum((1 << b) + 1 for b in bits))}
    for name, (dtype, items) in expected.items():
        array: PdqArray = getattr(pdq, name)
        if array.dtype != dtype:
            raise HeaderError(f"PDQ {name} of type {array.dtype!r}")
        _span(f"PDQ {name}", array, data_end, _itemsize(dtype))
        if array.length != items * _itemsize(dtype):
            raise HeaderError(f"PDQ {name}: {array.length} bytes for {pdq.rows} rows")


def _check_vpdq(vpdq: Vpdq, data_end: int) -> None:
    if vpdq.index_version != INDEX_VERSION:
        raise HeaderError(f"vPDQ index version {vpdq.index_version}")
    bits = vpdq.bucket_bits
    if len(bits) != CHUNKS or any(not 0 < b <= w for b, w in zip(bits, PDQ_WIDTHS)):
        raise HeaderError("vPDQ bucket bits")
    if sum(vpdq.counts.values()) != vpdq.videos:
        raise HeaderError(f"vPDQ: per-category counts do not add up to {vpdq.videos} videos")
    expected = vpdq_sizes(vpdq.rows, vpdq.videos, tuple(bits), vpdq.names.length)
    for name, dtype in VPDQ_ARRAYS.items():
        array: PdqArray = getattr(vpdq, name)
        if array.dtype != dtype:
            raise HeaderError(f"vPDQ {name} of type {array.dtype!r}")
        _span(f"vPDQ {name}", array, data_end, _itemsize(dtype))
        if array.length != expected[name] * _itemsize(dtype):
            raise HeaderError(f"vPDQ {name}: {array.length} bytes for {vpdq.rows} frames, "
                              f"{vpdq.videos} videos")


def to_dict(header: Header) -> dict:
    """The checked header as plain JSON data (what the rest of triage reads)."""
    return msgspec.to_builtins(header)
