"""What a scan is asked to do, described once.

Every option of a scan is one annotated field below: its type and bounds, the sentence that is
both the ``--help`` text and the JSON Schema description, its command-line flag and the part of
summary.json that records it. From these fields, and from nothing else, come the ``triage scan``
and ``triage lab submit`` options (``triage.cli.options``), summary.json's ``options`` and
``case`` (``recorded``), ``--resume`` (``restore``), the command line a lab exhibit amounts to
(``argv_of``) and the JSON Schema of those parts (``msgspec.json.schema``): an option added here
appears everywhere, and one forgotten cannot silently disappear on resume.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import msgspec
from msgspec import Meta, Struct, field

from triage.records import ALGORITHMS, DEFAULT_ALGORITHMS

ORDERS = ("walk", "smallest", "physical", "pictures-first")
# The reference libraries' defaults (PDQ's match distance; python-threatexchange's vPDQ shares),
# here because they are the options' defaults; the perceptual stage imports them.
PDQ_THRESHOLD = 31  # PDQ: near match when the Hamming distance is at most this (inclusive)
VPDQ_QUERY_PCT = 80.0  # python-threatexchange VPDQ_QUERY_MATCH_THRESHOLD_PERCENT
VPDQ_TARGET_PCT = 0.0  # python-threatexchange VPDQ_INDEX_MATCH_THRESHOLD_PERCENT

# Where a field is recorded in summary.json (and so where --resume reads it back from).
OPTIONS = "options"  # summary["options"]: how the evidence is examined
CASE = "case"  # summary["case"]: free-text provenance
INPUT = "input"  # evidence and sets: recorded with what was found in them (evidence_given, ...)
PLACE = "place"  # this invocation only: where it writes, the command typed


def _opt(flag: str | None, help: str, *, group: str = OPTIONS, metavar: str | None = None,
         comma: bool = False, lab: bool = True, on_resume: bool = False,
         **bounds: Any) -> Meta:
    """One option's description. ``flag`` None: not a command-line option of its own.
    ``comma``: typed as one comma list on the command line. ``lab``: also an option of
    ``triage lab submit``. ``on_resume``: may be given again with ``--resume`` (it changes how
    fast the run goes, not what it examines)."""
    return Meta(description=help, extra={"flag": flag, "group": group, "metavar": metavar,
                                         "comma": comma, "lab": lab, "on_resume": on_resume},
                **bounds)


Algorithm = Literal[ALGORITHMS]  # type: ignore[valid-type]
Order = Literal[ORDERS]  # type: ignore[valid-type]


class ScanOptions(Struct, kw_only=True):
    """How the evidence is examined: recorded as summary.json ``options``; a lab case applies
    them to every exhibit."""

    algorithms: Annotated[tuple[Algorithm, ...], _opt(
        "--algorithms", "Comma list of md5,sha1,sha256,xxh128.", metavar="LIST", comma=True,
        min_length=1)] = DEFAULT_ALGORITHMS
    workers: Annotated[int, _opt(
        "--workers", "Hashing processes (default: CPU count).", lab=False, on_resume=True,
        ge=1)] = os.cpu_count() or 1
    lenient: Annotated[bool, _opt(
        "--lenient", "Skip and count malformed hash-set lines instead of failing.")] = False
    include_orphans: Annotated[bool, _opt(
        "--orphans/--no-orphans", "List TSK's $OrphanFiles (files no name links to); "
        "--no-orphans skips them.")] = True
    max_orphans: Annotated[int, _opt(
        "--max-orphans", "Stop listing orphan files of a volume after N (the volume is then "
        "incomplete, exit 4).", ge=0)] = 1_000_000
    fs_timeout: Annotated[float, _opt(
        "--fs-timeout", "Seconds without progress listing a directory before its worker is "
        "killed.", gt=0)] = 300.0
    read_timeout: Annotated[float, _opt(
        "--read-timeout", "Seconds without progress reading one file before its worker is "
        "killed.", gt=0)] = 120.0
    file_timeout: Annotated[float, _opt(
        "--file-timeout", "Seconds one file may take in all before it is recorded as not read "
        "(default 0: --read-timeout plus 1 s per MiB of its size).", ge=0)] = 0.0
    verify_image: Annotated[bool, _opt(
        "--verify-image", "Also hash the whole media (MD5/SHA-1) and compare with the "
        "acquisition hash stored in an E01.")] = False
    order: Annotated[Order, _opt(
        "--order", "Hashing order: walk (directory by directory, fastest on SSD), smallest, "
        "physical (disk order, for spinning disks), pictures-first. Orders other than walk "
        "list everything first.", metavar="ORDER")] = "walk"
    stop_on_first_hit: Annotated[bool, _opt(
        "--stop-on-first-hit", "Stop at the first known-bad match (exit 1; the report says it "
        "stopped early).", lab=False)] = False
    formats: Annotated[str | None, _opt(
        "--formats", "Reports to write besides files.jsonl and summary.json: comma list of "
        "csv,html,dfxml (default: all).", metavar="LIST")] = None
    size_filter: Annotated[bool, _opt(
        "--size-filter", "Do not hash files whose size no known-bad set declares (every set "
        "must declare sizes); they are listed as 'skipped: size-not-in-set'.")] = False
    blockset: Annotated[str | None, _opt(
        "--blockset", "Also hash every block of every medium (allocated or not) against this "
        "block set (.tbs).", metavar="PATH", lab=False)] = None
    pdq: Annotated[bool, _opt(
        "--pdq", "PDQ perceptual hash of every picture (decoded in memory, never written); "
        "also searches the PDQ hashes of every known-bad --hashset .tdb.")] = False
    pdq_threshold: Annotated[int, _opt(
        "--pdq-threshold", "Near-duplicate: PDQ Hamming distance at most this (0..64).",
        ge=0, le=64)] = PDQ_THRESHOLD
    vpdq: Annotated[bool, _opt(
        "--vpdq", "vPDQ of every video: PDQ of one frame every --vpdq-interval seconds, "
        "decoded in memory (never written); frames go to vpdq.jsonl and are also searched in "
        "the PDQ picture sets. Implies --pdq.")] = False
    vpdq_interval: Annotated[float, _opt(
        "--vpdq-interval", "Seconds between hashed video frames (vPDQ's default 1).",
        metavar="SECONDS", ge=0.01, le=3600)] = 1.0
    vpdq_query_pct: Annotated[float, _opt(
        "--vpdq-query-pct", "Video near match: at least this % of the video's frames match "
        "the set video (python-threatexchange: 80).", metavar="PCT", ge=0, le=100)] = VPDQ_QUERY_PCT
    vpdq_target_pct: Annotated[float, _opt(
        "--vpdq-target-pct", "... and at least this % of the set video's frames are matched "
        "(python-threatexchange: 0, so clips match).", metavar="PCT", ge=0, le=100)] = VPDQ_TARGET_PCT


class ScanConfig(ScanOptions, kw_only=True):
    """One scan: the evidence, the sets, the options, the provenance, where it writes."""

    evidence: Annotated[list[str], _opt(
        None, "Disk images (raw/dd, split raw first segment, E01, VHD/VHDX, VMDK, QCOW2), "
        "block devices, or folders (logical evidence).", group=INPUT)]
    hashsets: Annotated[list[str], _opt(
        "--hashset", "Known-bad hash set (repeat).", group=INPUT,
        metavar="PATH")] = field(default_factory=list)
    known_good: Annotated[list[str], _opt(
        "--known-good", "Known-good hash set (repeat).", group=INPUT,
        metavar="PATH")] = field(default_factory=list)
    pdq_sets: Annotated[list[str], _opt(
        "--pdq-set", "PDQ hash set: 64-hex list, CSV with a pdq column, VICS JSON, or a .tdb "
        "carrying PDQ (repeat; implies --pdq).", group=INPUT,
        metavar="PATH")] = field(default_factory=list)
    vpdq_sets: Annotated[list[str], _opt(
        "--vpdq-set", "vPDQ hashes as ThreatExchange's vpdq writes them "
        "(frame,quality,hash,timestamp lines): one file per video, or a folder of them; "
        "optional category after a colon (repeat; implies --vpdq).", group=INPUT,
        metavar="PATH[:CATEGORY]", lab=False)] = field(default_factory=list)
    out: Annotated[Path | None, _opt(
        "--out", "Output folder (default: triage-<evidence>-<UTC time>).", group=PLACE,
        metavar="DIR", lab=False)] = None
    force: Annotated[bool, _opt(
        "--force", "Reuse a non-empty --out folder (only triage's own earlier outputs are "
        "removed).", group=PLACE, lab=False)] = False
    resume: Annotated[bool, _opt(None, "Continue the run in ``out``.", group=PLACE)] = False
    case: Annotated[str | None, _opt(
        "--case", "Case reference (free text).", group=CASE)] = None
    examiner: Annotated[str | None, _opt(
        "--examiner", "Examiner name (free text).", group=CASE)] = None
    exhibit: Annotated[str | None, _opt(
        "--exhibit", "Exhibit reference (free text).", group=CASE, lab=False)] = None
    argv: Annotated[list[str], _opt(None, "The command line, as typed.", group=PLACE)] = field(
        default_factory=lambda: list(sys.argv))


class Field(Struct, frozen=True):
    """One field of the description, as the CLI, the summary and resume see it."""

    name: str
    type: Any  # the field's type without its metadata
    annotated: Any  # with it (bounds, description): what msgspec validates and describes
    default: Any  # msgspec.NODEFAULT when required
    help: str
    flag: str | None
    group: str
    metavar: str | None
    comma: bool
    lab: bool
    on_resume: bool


def fields(struct: type[Struct] = ScanConfig) -> list[Field]:
    """The description's fields, in declaration order (a subclass's after its bases')."""
    hints = get_type_hints(struct, include_extras=True)
    out = []
    for f in msgspec.structs.fields(struct):
        meta = next(m for m in hints[f.name].__metadata__ if isinstance(m, Meta))
        default = f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory()
        out.append(Field(f.name, hints[f.name].__origin__, hints[f.name], default,
                         meta.description or "",
                         **meta.extra))
    return out


def group(name: str) -> list[Field]:
    return [f for f in fields() if f.group == name]


def options_of(config: ScanOptions, **effective: Any) -> ScanOptions:
    """The options part of a configuration (``effective``: what the run made of them, e.g.
    --pdq implied by --pdq-set)."""
    values = {f: getattr(config, f) for f in ScanOptions.__struct_fields__}
    return ScanOptions(**{**values, **effective})


def recorded(config: ScanConfig, **effective: Any) -> dict[str, Any]:
    """summary.json's ``options`` and ``case`` for this configuration."""
    plain = msgspec.json.decode(msgspec.json.encode(options_of(config, **effective)))
    return {OPTIONS: plain,
            CASE: {f.name: getattr(config, f.name) for f in group(CASE)}}


def restore(summary: dict[str, Any], **inputs: Any) -> ScanConfig:
    """The configuration recorded in a summary.json (``recorded``'s inverse): options a newer
    version added take their defaults; a value outside its bounds raises ``ValueError``."""
    try:
        options = msgspec.convert(summary[OPTIONS], ScanOptions)
    except msgspec.ValidationError as e:
        raise ValueError(str(e)) from None
    case = {f.name: summary[CASE].get(f.name) for f in group(CASE)}
    return ScanConfig(**msgspec.structs.asdict(options), **case, **inputs)


def problem(config: ScanOptions) -> str | None:
    """What is outside an option's bounds, in one line naming its flag (None: all fine); the
    bounds are the description's, so a new option is checked without a line of its own."""
    try:
        msgspec.convert(msgspec.to_builtins(options_of(config)), ScanOptions)
    except msgspec.ValidationError as e:
        text, _, where = str(e).rpartition(" - at `$.")
        name = where.split("`")[0].split("[")[0]
        flag = next((f.flag for f in fields(ScanOptions) if f.name == name), name) or name
        return f"{flag.split('/')[0]}: {text[:1].lower()}{text[1:]}"
    return None


def argv_of(options: ScanOptions) -> list[str]:
    """The command-line options that give ``options`` (those that differ from the defaults)."""
    argv: list[str] = []
    for f in fields(type(options)):
        value = getattr(options, f.name)
        if f.flag is None or value == f.default:
            continue
        on, _, off = f.flag.partition("/")
        if f.type is bool:
            argv.append(on if value else off)
        elif f.comma:
            argv += [on, ",".join(value)]
        else:
            argv += [on, str(value)]
    return argv
