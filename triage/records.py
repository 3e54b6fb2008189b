"""The file record and the one schema every output format derives from."""

from __future__ import annotations

import base64
import operator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

import msgspec

SCHEMA_VERSION = "1.3.0"

ALGORITHMS = ("md5", "sha1", "sha256", "xxh128")
DEFAULT_ALGORITHMS = ("md5", "sha1", "sha256")

# A pdq_error / vpdq_error that starts with this was caused by one of triage's own limits (size,
# time, frames, pixels), not by the file: the run says how many and is not fully examined
# (exit 4), as every limit that drops something must be.
LIMIT = "limit: "


def is_limit(reason: str | None) -> bool:
    """Whether a perceptual-hash reason is one of triage's own limits."""
    return bool(reason) and reason.startswith(LIMIT)  # type: ignore[union-attr]

# Output keys of files.jsonl, in order; the per-algorithm keys go where "<hashes>" stands.
FILE_FIELDS: tuple[str, ...] = (
    "evidence", "volume_offset", "fs_type", "path", "path_bytes", "orphan_long_name", "inode",
    "size", "deleted", "orphan",
    "realloc", "mtime", "atime", "ctime", "crtime", "<hashes>", "kind", "signature",
    "extension_mismatch", "pdq", "pdq_quality", "pdq_error", "pdq_distance", "category",
    "matches", "error", "vpdq_frames", "vpdq_duration", "vpdq_error", "vpdq_matches",
)


Count = Annotated[int, msgspec.Meta(ge=0)]


class Totals(msgspec.Struct, kw_only=True):
    """summary.json ``totals``: the run's counts, described once (the JSON Schema derives from
    this). Keys with a default came in a later 1.x: older runs' summaries may lack them."""

    files: Annotated[Count, msgspec.Meta(
        description="records written to files.jsonl (files, NTFS streams, forks)")]
    bytes_hashed: Annotated[Count, msgspec.Meta(
        description="content bytes read and hashed (sum of the hashed files' sizes)")]
    deleted: Annotated[Count, msgspec.Meta(description="records of deleted files")]
    errors: Annotated[Count, msgspec.Meta(
        description="records whose content could not be read (error set, not 'no content')")]
    no_content: Annotated[Count, msgspec.Meta(
        description="names with no metadata or content to read (nothing there)")]
    known_bad_files: Annotated[Count, msgspec.Meta(
        description="files whose exact hash is in a known-bad set")]
    skipped_size_filter: Annotated[Count, msgspec.Meta(
        description="--size-filter: listed, not hashed (no known-bad set declares that "
        "size)")] = 0
    skipped_bytes: Annotated[Count, msgspec.Meta(
        description="--size-filter: bytes of the skipped files")] = 0
    near_duplicates: Annotated[Count, msgspec.Meta(
        description="files with a PDQ or vPDQ near match (review, never a category)")] = 0
    internal_errors: Annotated[Count, msgspec.Meta(
        description="defects of triage met on a file or directory: never a result; makes the "
        "exit code 4 (1 with hits)")] = 0
    perceptual_limited: Annotated[Count, msgspec.Meta(
        description="PDQ/vPDQ asked for but stopped by a limit (time, size, frames): "
        "exit 4")] = 0


@dataclass(slots=True)
class ReadTarget:
    """Where a worker finds the content: TSK metadata address plus attribute (None = default)."""

    addr: int
    attr_type: int | None = None
    attr_id: int | None = None
    # the TSK file object the walk already holds: read from it instead of opening the metadata
    # a second time (hot path); never pickled, never compared
    file: Any = field(default=None, compare=False, repr=False)

    def __reduce__(self):
        return ReadTarget, (self.addr, self.attr_type, self.attr_id)


@dataclass(slots=True)
class FileRecord:
    evidence: str
    volume_offset: int
    fs_type: str
    path: str
    inode: str
    size: int | None
    deleted: bool
    orphan: bool = False
    realloc: bool = False
    mtime: str | None = None
    atime: str | None = None
    ctime: str | None = None
    crtime: str | None = None
    hashes: dict[str, str | None] = field(default_factory=dict)
    kind: str | None = None  # picture, video, archive, document, executable, other (census)
    signature: str | None = None  # content type from the first bytes, e.g. "jpeg"
    extension_mismatch: bool | None = None  # the name's extension disagrees with the content
    pdq: str | None = None  # perceptual hash of a picture (64 hex), with --pdq
    pdq_quality: int | None = None
    pdq_error: str | None = None  # why a picture has no PDQ (too small, bomb, truncated ...)
    pdq_distance: int | None = None  # closest PDQ near match: near-duplicate, needs review
    vpdq_frames: int | None = None  # frames hashed in a video, with --vpdq (perceptual.video)
    vpdq_duration: float | None = None  # seconds decoded (not what the header claims)
    vpdq_error: str | None = None  # why a video has no or only part of its vPDQ
    vpdq_matches: list[dict[str, Any]] | None = None  # video near matches: needs review
    vpdq_hashes: list[Any] | None = None  # not written here: the frames, for vpdq.jsonl
    category: str | None = None
    matches: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    target: ReadTarget | None = None  # not written; None when there is no content to read
    location: int | None = None  # not written: byte offset of the first data run (--order physical)
    # files.jsonl only: base64 of the raw path bytes when ``path`` is not valid UTF-8 (set by
    # the line encoder, never by a walk: in memory ``path`` keeps them as surrogateescape)
    path_bytes: str | None = None
    # FAT: a long name whose checksum does not match its 8.3 entry (an orphan per Microsoft's
    # specification: the file's name is the 8.3 one, but the long name is evidence too)
    orphan_long_name: str | None = None
    # not written: content exists but its metadata could not be read (damaged record, size past
    # the file system's limit): counted as an error, not as "no content", though target is None
    unreadable: bool = False

    def to_dict(self, algorithms: tuple[str, ...]) -> dict[str, Any]:
        names, before, hashes_of, after = _layout(algorithms)
        return dict(zip(names, before(self) + hashes_of(self.hashes) + after(self)))


@lru_cache(maxsize=16)
def _layout(algorithms: tuple[str, ...]):
    """Key order and C-level getters of FILE_FIELDS for one set of algorithms (hot path)."""
    i = FILE_FIELDS.index("<hashes>")
    before, after = FILE_FIELDS[:i], FILE_FIELDS[i + 1:]
    every = operator.itemgetter(*algorithms)

    def hashes_of(hashes: dict[str, str | None]) -> tuple[str | None, ...]:
        if len(hashes) == len(algorithms):
            try:
                found = every(hashes)
                return found if len(algorithms) > 1 else (found,)
            except KeyError:
                pass
        return tuple(hashes.get(a) for a in algorithms)

    return (before + algorithms + after, operator.attrgetter(*before), hashes_of,
            operator.attrgetter(*after))


def raw_path(path: str) -> bytes:
    """The on-disk bytes of a path held with ``surrogateescape`` (lone U+DC80..U+DCFF)."""
    try:
        return path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # another lone surrogate (not from a byte): keep it visible
        return path.encode("utf-8", "surrogatepass")


def record_path(record: dict[str, Any]) -> str:
    """The exact path of a files.jsonl record, as the scan held it: ``path`` when the name is
    UTF-8, else ``path_bytes`` (base64) decoded with ``surrogateescape`` (lossless)."""
    encoded = record.get("path_bytes")
    if not encoded:
        return record.get("path") or ""
    return base64.b64decode(encoded).decode("utf-8", "surrogateescape")


def strict_json(value: Any) -> Any:
    """``value`` with every string made valid UTF-8 (I-JSON: no lone surrogate), for files.jsonl
    lines and summary.json. Beside a ``"path"`` that held bytes that are not UTF-8 it sets
    ``"path_bytes"`` (base64 of the exact bytes; ``record_path`` reverses it); any other such
    text gets U+FFFD. Returns the very same object when nothing had to change."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return raw_path(value).decode("utf-8", "replace")
    if isinstance(value, list):
        items = [strict_json(v) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    if isinstance(value, dict):
        out = {k: strict_json(v) for k, v in value.items()}
        if all(out[k] is v for k, v in value.items()):
            return value
        path = value.get("path")
        if isinstance(path, str) and out["path"] is not path:
            out["path_bytes"] = base64.b64encode(raw_path(path)).decode("ascii")
        return out
    return value


def iso_time(seconds: int | None, nanos: int | None = 0) -> str | None:
    """TSK time (seconds + nanoseconds since the epoch) as ISO 8601 UTC; 0 means unset."""
    if not seconds:
        return None
    text = _iso_seconds(seconds)
    if text is None:
        return None
    if nanos:
        return f"{text}.{nanos:09d}".rstrip("0") + "Z"
    return text + "Z"


@lru_cache(maxsize=65536)
def _iso_seconds(seconds: int) -> str | None:
    """Cached: files of one volume share many timestamps, and formatting is a hot path."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_state(record: FileRecord) -> dict[str, Any]:
    """Everything needed to rebuild a record (resume journal), target included."""
    state = {name: getattr(record, name) for name in FileRecord.__slots__ if name != "target"}
    t = record.target
    state["target"] = None if t is None else [t.addr, t.attr_type, t.attr_id]
    return state


def record_from_state(state: dict[str, Any]) -> FileRecord:
    data = dict(state)
    t = data.pop("target")
    return FileRecord(**data, target=None if t is None else ReadTarget(*t))
