"""JSON Schemas (draft 2020-12) of a files.jsonl record and of summary.json.

The record schema is derived from ``triage.records.FILE_FIELDS`` plus the type table below: a
field added to the record without a type here fails loudly (``schema_error``) instead of being
silently undocumented. Versioning follows ``SCHEMA_VERSION`` (semver): an additive change (new
key) bumps the minor, a rename/removal/retype bumps the major; the schemas accept any
``schema_version`` of the same major.
"""

from __future__ import annotations

from typing import Annotated, Any, get_type_hints

import msgspec

from triage.config import CASE, OPTIONS, fields as config_fields
from triage.records import ALGORITHMS, FILE_FIELDS, SCHEMA_VERSION, Count, Totals

DRAFT = "https://json-schema.org/draft/2020-12/schema"
NS = "https://github.com/triage/ns/1"
MAJOR = SCHEMA_VERSION.split(".")[0]
VERSION_PATTERN = rf"^{MAJOR}\.[0-9]+\.[0-9]+$"

HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "xxh128": 32}
TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"

_STR = {"type": "string"}
_STR_NULL = {"type": ["string", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_TIME_NULL = {"type": ["string", "null"], "pattern": TIME}
_BOOL = {"type": "boolean"}

MATCH = {
    "type": "object",
    "required": ["hashset", "algorithm", "category"],
    "additionalProperties": False,
    "properties": {
        "hashset": {**_STR, "description": "name of the hash set that holds the digest"},
        "algorithm": {"enum": [*ALGORITHMS, "pdq"]},
        "category": {**_STR, "description": "what that set says: its category, 'notable' "
                     "(known-bad set without a category) or 'known-good'"},
        "distance": {"type": "integer", "minimum": 0, "maximum": 256,
                     "description": "pdq only: Hamming distance of a near match (a "
                     "near-duplicate to review, never the file's category)"},
    },
}

# One entry per FILE_FIELDS key ("<hashes>" excluded: those keys come from ALGORITHMS).
FIELD_TYPES: dict[str, dict[str, Any]] = {
    "evidence": {**_STR, "description": "evidence path as given on the command line"},
    "volume_offset": {**_COUNT, "description": "byte offset of the volume in the evidence"},
    "fs_type": {**_STR, "description": "file system type (ntfs, fat16, ext4, ...)"},
    "path": {**_STR, "description": "full path in the volume, valid UTF-8; when the on-disk "
             "name is not UTF-8, each undecodable sequence is U+FFFD here and path_bytes holds "
             "the exact bytes"},
    "path_bytes": {"type": ["string", "null"], "contentEncoding": "base64",
                   "pattern": "^[A-Za-z0-9+/]*={0,2}$",
                   "description": "null when path is the exact name; else the path's raw bytes "
                   "(standard base64 with padding, RFC 4648): names that are not UTF-8"},
    "orphan_long_name": {**_STR_NULL, "description": "FAT: a long name (LFN) whose checksum "
                         "does not match the 8.3 entry it precedes: an orphan, so path uses the "
                         "8.3 name (Microsoft's FAT specification, as mtools and 7-Zip); the "
                         "long name is kept here as evidence"},
    "inode": {**_STR, "pattern": r"^[0-9]+(-[0-9]+-[0-9]+)?$",
              "description": "TSK metadata address; on NTFS 'addr-type-id' of the attribute"},
    "size": {"type": ["integer", "null"], "minimum": 0,
             "description": "bytes; null when there is no metadata"},
    "deleted": {**_BOOL, "description": "name or metadata unallocated"},
    "orphan": {**_BOOL, "description": "found under $OrphanFiles (no name linked to it)"},
    "realloc": {**_BOOL, "description": "deleted name whose metadata is allocated again: "
                "times and content belong to the newer file"},
    "mtime": {**_TIME_NULL, "description": "ISO 8601 UTC; null when unset"},
    "atime": _TIME_NULL,
    "ctime": _TIME_NULL,
    "crtime": _TIME_NULL,
    "kind": {**_STR_NULL, "description": "census class from the content: picture, video, "
             "archive, document, executable, other; null when not inspected"},
    "signature": {**_STR_NULL, "description": "content type from the first bytes, e.g. jpeg"},
    "extension_mismatch": {"type": ["boolean", "null"],
                           "description": "the name's extension disagrees with the content"},
    "pdq": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$",
            "description": "PDQ perceptual hash of a picture (with --pdq)"},
    "pdq_quality": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
    "pdq_error": {**_STR_NULL, "description": "why a picture has no PDQ (skipped: too small; "
                  "not decoded: truncated, decompression bomb, ...)"},
    "pdq_distance": {"type": ["integer", "null"], "minimum": 0, "maximum": 64,
                     "description": "closest PDQ near match: near-duplicate, needs review"},
    "category": {**_STR_NULL, "description": "most severe category of all matches, 'known-good'"
                 ", 'unknown'; null when the content was not hashed"},
    "matches": {"type": "array", "items": MATCH},
    "error": {**_STR_NULL, "description": "why the content was not hashed, else null"},
    "vpdq_frames": {"type": ["integer", "null"], "minimum": 0,
                    "description": "--vpdq: frames of a video hashed (their hashes: vpdq.jsonl)"},
    "vpdq_duration": {"type": ["number", "null"], "minimum": 0,
                      "description": "--vpdq: seconds of video decoded (not the header's claim)"},
    "vpdq_error": {**_STR_NULL, "description": "--vpdq: why a video has no vPDQ or only part "
                   "of it (too large, not decoded: ..., stopped: time limit ...)"},
    "vpdq_matches": {"type": ["array", "null"], "description": "--vpdq: video near matches, "
                     "needs review, never the file's category: set videos (algorithm vpdq: "
                     "query_pct, target_pct, ranges in s) and frames near a set picture "
                     "(algorithm pdq-frame: distance, at in s)",
                     "items": {"type": "object", "required": ["hashset", "algorithm",
                                                              "category", "distance"],
                               "properties": {
                                   "hashset": {"type": "string"},
                                   "algorithm": {"enum": ["vpdq", "pdq-frame"]},
                                   "category": {"type": "string"},
                                   "distance": {"type": "integer", "minimum": 0,
                                                "maximum": 64},
                                   "video": {"type": "string"},
                                   "query_pct": {"type": "number"},
                                   "target_pct": {"type": "number"},
                                   "ranges": {"type": "array"},
                                   "at": {"type": "number"},
                                   "frames": {"type": "integer"}}}},
}


# Keys added by a minor version: optional, so that records of older 1.x runs still validate.
OPTIONAL_FIELDS = frozenset({"kind", "signature", "extension_mismatch", "pdq", "pdq_quality",
                             "pdq_error", "pdq_distance", "path_bytes", "orphan_long_name",
                             "vpdq_frames", "vpdq_duration", "vpdq_error", "vpdq_matches"})


BLOCK_MATCHES = {
    "type": "array", "description": "scan --blockset: blocks of this file found in a block set "
    "(block evidence, not confirmed by a whole-file hash unless matches says so)",
    "items": {"type": "object", "required": ["set", "blocks", "reference"], "properties": {
        "set": {"type": "string"}, "category": {"type": ["string", "null"]},
        "blocks": {"type": "integer", "minimum": 1},
        "reference": {"type": "object", "description": "the reference file the blocks come "
                      "from: md5, sha1, name, size"}}}}


def struct_schema(struct: Any, required: list[str] | None = None, *,
                  extra: bool = False) -> dict[str, Any]:
    """One summary.json part described by a msgspec Struct: its fields' types, bounds and
    descriptions; required: the fields without a default (unless given)."""
    (_,), defs = msgspec.json.schema_components([struct])
    body = defs[struct.__name__]
    props = body["properties"]
    for prop in props.values():
        prop.pop("default", None)  # a machine's CPU count, ...: not part of the format
    return _obj(props, body.get("required", []) if required is None else required, extra=extra)


def described(group: str) -> dict[str, Any]:
    """summary.json's ``options`` or ``case``, from the run's description (``triage.config``):
    each field's type, bounds and help text. Options a later 1.x adds are absent from older
    runs' summaries (they resume with the default), so only ``algorithms`` is required there;
    the case's three keys are always written."""
    chosen = [f for f in config_fields() if f.group == group]
    struct = msgspec.defstruct(group, [(f.name, f.annotated) for f in chosen])
    if group == OPTIONS:
        return struct_schema(struct, ["algorithms"], extra=True)
    return struct_schema(struct)


class SchemaDefinitionError(RuntimeError):
    """FILE_FIELDS and FIELD_TYPES disagree: a programming error, caught by the tests."""


def _hash_property(alg: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "pattern": f"^[0-9a-f]{{{HEX_LENGTHS[alg]}}}$",
            "description": f"{alg} of the content, lower-case hex; null when not read"}


def file_schema(algorithms: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
    """Schema of one files.jsonl line. ``algorithms`` (the run's ``options.algorithms``) makes
    those hash keys required; without it any subset of the known algorithms is accepted."""
    fields = [f for f in FILE_FIELDS if f != "<hashes>"]
    missing = [f for f in fields if f not in FIELD_TYPES]
    unused = [f for f in FIELD_TYPES if f not in fields]
    if missing or unused:
        raise SchemaDefinitionError(f"FILE_FIELDS without a schema type: {missing}; "
                                    f"types for no field: {unused}")
    props: dict[str, Any] = {f: FIELD_TYPES[f] for f in fields}
    props.update({a: _hash_property(a) for a in ALGORITHMS})
    props["block_matches"] = BLOCK_MATCHES  # scan --blockset only (optional)
    required = [f for f in fields if f not in OPTIONAL_FIELDS]
    required += [a for a in ALGORITHMS if algorithms and a in algorithms]
    return {
        "$schema": DRAFT,
        "$id": f"{NS}/files.schema.json",
        "title": f"triage files.jsonl record (schema {SCHEMA_VERSION})",
        "description": "One JSON object per line of files.jsonl, one per file (or NTFS stream). "
                       "Hash keys are present for each algorithm of the run "
                       "(summary.json options.algorithms).",
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": props,
    }


def _obj(props: dict[str, Any], required: list[str] | None = None, *,
         extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "required": list(props) if required is None else required,
            "additionalProperties": extra, "properties": props}


VOLUME = _obj({
    "offset": _COUNT, "length": _COUNT, "description": _STR, "slot": _STR_NULL,
    "fs_type": _STR_NULL,
    "status": {"enum": ["pending", "scanned", "empty", "no-filesystem", "encrypted", "error",
                        "incomplete", "stopped"],
               "description": "scanned/empty: examined; anything else: NOT (fully) examined"},
    "error": _STR_NULL, "files": _COUNT, "errors": _COUNT,
    "notes": {"type": "array", "items": _STR},
})

# beside a "path" whose bytes are not UTF-8 (then shown with U+FFFD): the exact bytes
_PATH_BYTES = {"type": "string", "contentEncoding": "base64", "pattern": "^[A-Za-z0-9+/]*={0,2}$",
               "description": "base64 of the exact path bytes when they are not UTF-8"}

EVIDENCE = _obj({
    "path": _STR, "path_bytes": _PATH_BYTES,
    "error": {**_STR, "description": "present when the evidence could not be opened/examined"},
    "format": _STR,
    "segments": {"type": "array", "items": _STR},
    "size": _COUNT,
    "parent": _STR_NULL,
    "stored_hashes": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "acquisition hashes stored in the container (E01)"},
    "volume_system": _STR,
    "volumes": {"type": "array", "items": VOLUME},
    "verification": {
        "type": "object", "required": ["status"], "additionalProperties": False,
        "description": "--verify-image: whole-media hash compared with stored_hashes",
        "properties": {
            "status": {"enum": ["pending", "verified", "mismatch", "no stored hash", "error"]},
            "computed": {"type": ["object", "null"], "additionalProperties": _STR},
            "stored": {"type": "object", "additionalProperties": _STR},
            "error": _STR_NULL,
        },
    },
}, ["path"])

INDEX_CHECK = {
    "type": ["object", "null"], "additionalProperties": False,
    "required": ["status", "sections_sha256_recorded", "sections_sha256_computed"],
    "description": "a compiled index (.tdb): its data sections re-hashed beside the scan and "
                   "compared with the digest its header records (null: not an index)",
    "properties": {
        "status": {"enum": ["pending", "verified", "failed"],
                   "description": "failed makes the run invalid (exit 2, see invalid)"},
        "sections_sha256_recorded": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "sections_sha256_computed": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
        "header_sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$",
                          "description": "the header's SHA-256 from the preamble, checked "
                                         "on open (null: an index older than format 1.2)"},
        "seconds": {"type": ["number", "null"], "minimum": 0},
        "problem": _STR_NULL,
    },
}

HASHSET = _obj({
    "name": _STR, "path": _STR, "path_bytes": _PATH_BYTES, "kind": {"enum": ["known-bad", "known-good"]},
    "format": _STR, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "entries": {**_COUNT, "description": "distinct digests, summed over algorithms"},
    "records": {"type": ["integer", "null"], "minimum": 0,
                "description": "records (lines, rows, items) read from the sources; null: unknown"},
    "algorithms": {"type": "array", "items": {"enum": list(ALGORITHMS)}},
    "skipped_lines": _COUNT, "dropped_empty": _COUNT, "conflicts": _COUNT,
    "profile": {"type": ["object", "null"], "required": ["labels"],
                "properties": {"name": _STR, "description": _STR, "source": _STR,
                               "labels": {"type": "object", "additionalProperties": _STR}},
                "description": "category profile naming this set's codes (optional)"},
    "sources": {"type": ["array", "null"], "items": {"type": "object"},
                "description": "source files compiled into the set, with their SHA-256"},
    "verification": INDEX_CHECK,
}, ["name", "path", "kind", "format", "sha256", "entries", "algorithms", "skipped_lines",
    "dropped_empty", "conflicts"])

# Marks a summary.json key written when the scan ends (also when interrupted): required once
# ``finished`` is set, absent from the summary of a scan that crashed.
END = {"end": True}


def _about(schema: dict[str, Any] | None = None, description: str | None = None,
           end: bool = False) -> msgspec.Meta:
    """A key's description: its JSON Schema when its value has a structure of its own."""
    return msgspec.Meta(extra_json_schema=schema, description=description,
                        extra=END if end else None)


_Time = Annotated[str, msgspec.Meta(pattern=TIME)]
_SETS = {"type": "array", "items": HASHSET}
_PDQ_SETS = {"type": "array", "items": _obj({
    "name": _STR, "path": _STR, "path_bytes": _PATH_BYTES,
    "kind": {"enum": ["known-bad"]}, "format": _STR,
    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "entries": _COUNT,
    "algorithms": {"type": "array", "items": {"enum": ["pdq"]}},
    "skipped_lines": _COUNT, "dropped": _COUNT, "verification": INDEX_CHECK},
    ["name", "path", "kind", "format", "sha256", "entries", "algorithms",
     "skipped_lines", "dropped"])}
_VPDQ_SETS = {"type": "array", "description": "--vpdq-set: vPDQ hash files (one video each, "
              "ThreatExchange's frame,quality,hash,timestamp lines), or the vPDQ section of a "
              ".tdb (format tdb; category: its categories, comma-separated)",
              "items": _obj({
                  "name": _STR, "path": _STR, "spec": _STR,
                  "kind": {"enum": ["known-bad"]}, "format": {"enum": ["vpdq", "tdb"]},
                  "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                  "videos": _COUNT, "frames": _COUNT, "category": _STR,
                  "algorithms": {"type": "array", "items": {"enum": ["vpdq"]}},
                  "skipped_lines": _COUNT, "verification": INDEX_CHECK},
                  ["name", "path", "spec", "format", "sha256", "videos", "frames",
                   "category"])}
_EVIDENCE_GIVEN = {"type": "array", "items": _obj({
    "path": _STR,
    "identity": {"type": ["object", "null"], "description": "size and SHA-256 of chosen regions "
                 "(partition table, each volume's first 64 KiB, spread samples), stored "
                 "acquisition hashes: a resume must find the same"},
}, ["path"], extra=True), "description": "evidence as given on the command line, in order"}
_CENSUS = _obj({
    "kinds": {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": _COUNT},
        "description": "files by kind (picture, video, archive, document, executable, other, "
        "none) and category"},
    "unmatched_pictures": _COUNT, "unmatched_videos": _COUNT,
    "near_duplicates": {"type": ["integer", "null"], "minimum": 0},
    "headline": _STR})
_TOOL = _obj({"name": _STR, "version": _STR}, extra=True) | {
    "additionalProperties": {"type": "string"},
    "description": "triage, pytsk3, tsk, libewf, python versions"}


class Summary(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """summary.json, described once: written at start with complete=false, rewritten at the
    end; its JSON Schema (``summary_schema``) derives from this. A key without a default is in
    every summary; a key with one came in a later 1.x (older runs lack it) or is written at
    the end (``end``)."""

    schema_version: Annotated[str, msgspec.Meta(pattern=VERSION_PATTERN)]
    complete: Annotated[bool, _about(description=(
        "true only once every record is written and every report rendered (synced to disk); "
        "false while running, after a crash, Ctrl-C, --stop-on-first-hit or a full disk"))]
    incomplete_reason: Annotated[str | None, _about(
        description="why complete is false (null when complete)")] = None
    resumed_after_early_stop: Annotated[bool, _about(description=(
        "an earlier run stopped at the first hit (--stop-on-first-hit); --resume "
        "finished it"))] = False
    tool: Annotated[Any, _about(_TOOL)]
    case: Annotated[Any, _about(described(CASE))]
    host: str
    command: Annotated[list[str], _about(
        description="argv of the command that started the run, exactly")]
    resume_commands: Annotated[list[list[str]], _about(
        description="argv of each triage scan --resume, oldest first")] = []
    started: _Time
    finished: _Time | None
    resumed: Annotated[list[_Time], _about(
        description="times the run was resumed (--resume), oldest first")] = []
    evidence_given: Annotated[Any, _about(_EVIDENCE_GIVEN)] = None
    options: Annotated[Any, _about(described(OPTIONS))]
    hashsets: Annotated[Any, _about(_SETS)]
    interrupted: Annotated[bool, _about(end=True)] = False
    stopped_early: bool = False
    reports: list[str] = []
    elapsed_seconds: Annotated[float, msgspec.Meta(ge=0, extra=END)] = 0.0
    evidence: Annotated[Any, _about({"type": "array", "items": EVIDENCE}, end=True)] = None
    totals: Annotated[Any, _about(struct_schema(Totals), end=True)] = None
    census: Annotated[Any, _about(_CENSUS)] = None
    pdq_sets: Annotated[Any, _about(_PDQ_SETS)] = None
    vpdq_sets: Annotated[Any, _about(_VPDQ_SETS)] = None
    invalid: Annotated[list[str], _about(description=(
        "why the run is invalid: a compiled index whose data is not what its header records "
        "(exit 2); empty when valid"))] = []
    categories: Annotated[dict[str, Count], _about(end=True)] = {}
    first_hit_seconds: Annotated[Annotated[float, msgspec.Meta(ge=0)] | None,
                                 _about(end=True)] = None
    first_internal_error: Annotated[str | None, _about(description=(
        "where and what the first internal error was (a defect of triage, counted in "
        "totals.internal_errors): 'path: TypeError: ... (at triage/x.py:N)'"))] = None
    exit_code: Annotated[int, _about(end=True)] = 0
    block_scan: Annotated[dict[str, Any], _about(description=(
        "scan --blockset: the whole-media block pass (bytes read, windows hashed, hit blocks, "
        "files whose blocks match, matches in unallocated space or outside any volume)"))] = {}


def summary_schema() -> dict[str, Any]:
    """Schema of summary.json, from ``Summary``."""
    body = struct_schema(Summary)
    hints = get_type_hints(Summary, include_extras=True)
    end = [name for name in Summary.__struct_fields__
           if any(isinstance(m, msgspec.Meta) and m.extra == END
                  for m in getattr(hints[name], "__metadata__", ()))]
    return {
        "$schema": DRAFT,
        "$id": f"{NS}/summary.schema.json",
        "title": f"triage summary.json (schema {SCHEMA_VERSION})",
        **body,
        "if": {"properties": {"finished": {"type": "string"}}, "required": ["finished"]},
        "then": {"required": end},
    }


SCHEMAS = {"files": file_schema, "summary": summary_schema}


def schema(name: str) -> dict[str, Any]:
    if name not in SCHEMAS:
        raise KeyError(name)
    return SCHEMAS[name]()

