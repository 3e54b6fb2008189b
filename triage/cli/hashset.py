"""``triage hashset ...``: compile sources into a ``.tdb`` index, describe one, look values up.

Mounted by ``triage.cli`` as ``app.add_typer(hashset_app, name="hashset")``. User errors are
``TriageError``s, which ``triage.cli.main`` turns into one line and exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from triage.errors import HashSetError, UsageError
from triage.hashsets import FORMATS, HashSet, import_hashsets, load_hashset
from triage.hashsets.model import ALGORITHM_HEX_LENGTHS
from triage.hashsets.profiles import SHIPPED
from triage.hashsets.tdb import verify
from triage.perceptual.vsets import load_vpdq_set, looks_vpdq
from triage.reports._escape import escape, json_safe

hashset_app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Compile hash sets into an index (.tdb), describe it, look hashes up.",
)

_ALGORITHM_BY_LENGTH = {n: a for a, n in ALGORITHM_HEX_LENGTHS.items()}


def _out(text: str = "") -> None:
    """One line of text: names and category codes from a hash set are escaped as everywhere
    (an ANSI escape or a bidi override in a category code is shown, never obeyed)."""
    sys.stdout.write(escape(text) + "\n")


def _out_json(value: Any, **options: Any) -> None:
    sys.stdout.write(json_safe(json.dumps(value, ensure_ascii=False, **options)) + "\n")


@hashset_app.command("import")
def import_(
    sources: Annotated[list[Path], typer.Argument(metavar="SRC...", show_default=False,
                       help="Hash-set files (any supported format, detected by content); a vPDQ file or folder (ThreatExchange vpdq text, one file per video) as FILE_OR_DIR[:CATEGORY].")],
    out: Annotated[Path, typer.Option("--out", help="The index to write (NAME.tdb).", show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="Set name shown in matches (default: --out's stem).")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="known-bad or known-good (default: by format; NSRL and NIST CAID are known-good).")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help=f"Category labels: {'|'.join(SHIPPED)} or a TOML file (default: from the VICS region, or uk for A/B/C).")] = None,
    format: Annotated[str | None, typer.Option("--format", help="Force a format: " + ", ".join(FORMATS) + ", or pdq (PDQ hashes only: a 64-hex list, a CSV with a pdq column, VICS AlternativeHashes).")] = None,
    lenient: Annotated[bool, typer.Option("--lenient", help="Skip and count malformed records instead of failing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    category: Annotated[str | None, typer.Option("--category", help="Category of vPDQ sources given without :CATEGORY (default: notable).")] = None,
) -> None:
    """Parse sources once into a compact, memory-mapped index (bounded memory, any size)."""
    if out.suffix.lower() != ".tdb":
        raise UsageError(f"--out {out}: the index file name must end in .tdb")
    started = time.monotonic()
    header = import_hashsets(sources, out, name=name, kind=kind, profile=profile, format=format,
                             lenient=lenient, force=force, category=category)
    seconds = time.monotonic() - started
    tables = header["algorithms"]
    per_alg = ", ".join(f"{a} {t['unique']:,}" for a, t in tables.items())
    pdq = header.get("pdq")
    if pdq:
        per_alg = ", ".join(filter(None, [per_alg, f"PDQ {pdq['unique']:,}"]))
    vpdq = header.get("vpdq")
    if vpdq:
        videos = f"vPDQ {vpdq['videos']:,} videos ({vpdq['rows']:,} frames)"
        per_alg = ", ".join(filter(None, [per_alg, videos]))
    _out(f"wrote {out}: {header['name']} ({header['kind']}), {per_alg or 'no'} digests from "
         f"{header['records']:,} records in {seconds:.1f} s")
    skipped = sum(s["skipped"] for s in header["sources"])
    dropped = sum(s["dropped_empty"] for s in header["sources"])
    _out(f"skipped {skipped:,} malformed, dropped {dropped:,} empty-file digests, "
         f"{header['conflicts']['total']:,} conflicting digests")


@hashset_app.command()
def info(
    index: Annotated[Path, typer.Argument(metavar="NAME.tdb", show_default=False, help="An index (or any hash-set file).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
    conflicts: Annotated[bool, typer.Option("--conflicts", help="List every conflicting digest.")] = False,
    check: Annotated[bool, typer.Option("--verify", help="Re-hash the index and compare with its header.")] = False,
) -> None:
    """Counts, categories, provenance and conflicts of an index."""
    if looks_vpdq(index):  # a vPDQ hash file or folder (scan --vpdq-set)
        found = load_vpdq_set(str(index))
        desc = {**found.summary(), "usable_frames": found.summary()["frames"],
                "frame_lines": sum(v.lines for v in found.videos)}
        del desc["frames"], desc["category"]
        if json_out:
            _out_json(desc, indent=2)
        else:
            _out(f"{index}: vPDQ (ThreatExchange frame,quality,hash,timestamp), "
                 f"{desc['videos']:,} video(s), {desc['frame_lines']:,} frame lines, "
                 f"{desc['usable_frames']:,} usable (quality >= 50, distinct per video); "
                 f"sha256 {desc['sha256']}; scan with --vpdq-set {index}[:CATEGORY]")
        return
    hs = load_hashset(index)
    desc = describe(hs)
    if check:
        if hs.index_file is None:
            raise UsageError(f"--verify: {index} is not a compiled index")
        desc["verified"] = verify(index)
    if conflicts:
        desc["conflict_list"] = [{"algorithm": a, "digest": d.hex(), "categories": c}
                                 for a, d, c in hs.conflicting()]
    if json_out:
        _out_json(desc, indent=2)
    else:
        _print_info(desc)
    if check and not desc["verified"]:
        raise HashSetError(f"index {index}: data does not match the SHA-256 in its header (damaged or altered)")


def describe(hs: HashSet) -> dict[str, Any]:
    """Everything ``info`` shows, as JSON-ready data."""
    header = hs.header or {}
    algorithms = {}
    for alg in hs.algorithms:
        table = hs.tables[alg]
        counts = header.get("algorithms", {}).get(alg, {}).get("counts")
        if counts is None:
            ids = [table.category_id(r) for r in range(len(table))]
            counts = {}
            for i in ids:
                key = "null" if hs.categories[i] is None else str(hs.categories[i])
                counts[key] = counts.get(key, 0) + 1
        algorithms[alg] = {"digests": table.unique, "rows": len(table), "categories": counts}
    pdq = header.get("pdq")
    sizes = header.get("sizes") or {"complete": hs.sizes is not None,
                                     "count": 0 if hs.sizes is None else len(hs.sizes)}
    file_bytes = os.path.getsize(hs.index_file) if hs.index_file else None
    records = header.get("records", sum(s.get("records", 0) for s in hs.sources))
    return {
        "name": hs.name, "kind": hs.kind, "format": hs.format, "path": hs.path, "sha256": hs.sha256,
        "format_version": header.get("format_version"),
        "format_minor": header.get("format_minor", 0 if header else None),
        "created": header.get("created"),
        "tool": header.get("tool"), "records": records, "entries": hs.entries,
        "algorithms": algorithms,
        "pdq": {"hashes": pdq["unique"], "rows": pdq["rows"], "categories": pdq["counts"]}
        if pdq else None,
        "vpdq": {"videos": header["vpdq"]["videos"], "frames": header["vpdq"]["rows"],
                 "categories": header["vpdq"]["counts"]} if header.get("vpdq") else None,
        "labels": {c: hs.label(c) for c in hs.categories if c is not None},
        "profile": None if hs.profile is None else hs.profile.to_json(),
        "sizes": {k: v for k, v in sizes.items() if k in ("complete", "count", "reason")},
        "skipped": hs.skipped, "dropped_empty": hs.dropped_empty,
        "conflicts": header.get("conflicts", {"total": hs.conflicts, "examples": []}),
        "sources": hs.sources, "file_bytes": file_bytes,
        "bytes_per_record": round(file_bytes / records, 2) if file_bytes and records else None,
    }


def _print_info(d: dict[str, Any]) -> None:
    version = f", format v{d['format_version']}.{d['format_minor'] or 0}" if d["format_version"] else ""
    _out(f"{d['name']}  ({d['kind']}, {d['format']}{version})")
    _out(f"  path      {d['path']}")
    if d["created"]:
        _out(f"  created   {d['created']} by triage {d['tool'].get('version', '?') if d['tool'] else '?'}")
    _out(f"  sha256    {d['sha256']}")
    if d["file_bytes"]:
        per = f" ({d['bytes_per_record']} per record)" if d["bytes_per_record"] else ""
        _out(f"  size      {d['file_bytes']:,} bytes{per}")
    _out(f"  records   {d['records']:,} -> {d['entries']:,} distinct digests")
    if d["profile"]:
        _out(f"  profile   {d['profile']['name']} ({d['profile']['description'] or d['profile']['source']})")
    for alg, t in d["algorithms"].items():
        _out(f"  {alg:<9} {t['digests']:,} digests")
        for code, n in sorted(t["categories"].items()):
            label = "(no category)" if code == "null" else code
            if code in d["labels"] and d["labels"][code] != code:
                label = f"{code}  {d['labels'][code]}"
            _out(f"      {n:>12,}  {label}")
    pdq = d["pdq"]
    _out(f"  pdq       {pdq['hashes']:,} PDQ hashes (near-duplicate search: --pdq)" if pdq
         else "  pdq       none")
    for code, n in sorted((pdq or {}).get("categories", {}).items()):
        label = "(no category)" if code == "null" else code
        if code in d["labels"] and d["labels"][code] != code:
            label = f"{code}  {d['labels'][code]}"
        _out(f"      {n:>12,}  {label}")
    vpdq = d.get("vpdq")
    _out(f"  vpdq      {vpdq['videos']:,} videos, {vpdq['frames']:,} usable frames (video near "
         "matches: --vpdq)" if vpdq else "  vpdq      none")
    for code, n in sorted((vpdq or {}).get("categories", {}).items()):
        _out(f"      {n:>12,}  {'(no category)' if code == 'null' else code} (videos)")
    sizes = d["sizes"]
    _out("  sizes     " + (f"{sizes.get('count', 0):,} distinct declared sizes (size filter usable)"
                           if sizes.get("complete") else f"no size filter ({sizes.get('reason', 'sizes not declared')})"))
    _out(f"  skipped   {d['skipped']:,} malformed records; dropped {d['dropped_empty']:,} empty-file digests")
    c = d["conflicts"]
    _out(f"  conflicts {c['total']:,} digests with more than one category")
    for ex in c.get("examples", [])[:10]:
        _out(f"      {ex['algorithm']} {ex['digest']}  {', '.join(str(x) for x in ex['categories'])}")
    for item in d.get("conflict_list", []):
        _out(f"      {item['algorithm']} {item['digest']}  {', '.join(str(x) for x in item['categories'])}")
    _out("  sources")
    for s in d["sources"]:
        extra = f", VICS {s['vics_version']} {s.get('vics_profile', '')}".rstrip() if s.get("vics_version") else ""
        _out(f"    {s['path']}  [{s['format']}{extra}]")
        _out(f"      sha256 {s['sha256']}  {s['records']:,} records, {s['skipped']:,} skipped, "
             f"{s['dropped_empty']:,} empty dropped")
    if "verified" in d:
        _out("  verify    " + ("OK: data matches the header's SHA-256" if d["verified"] else "FAILED"))


@hashset_app.command()
def lookup(
    index: Annotated[Path, typer.Argument(metavar="NAME.tdb", show_default=False, help="An index (or any hash-set file).")],
    hashes: Annotated[list[str], typer.Argument(metavar="HASH...", show_default=False, help="MD5, SHA-1 or SHA-256 hex digests.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per hash.")] = False,
    pdq: Annotated[bool, typer.Option("--pdq", help="The hashes are PDQ (64 hex): search the set's PDQ hashes (a .tdb's PDQ section, or a PDQ list/CSV/VICS file) for near matches.")] = False,
    pdq_threshold: Annotated[int, typer.Option("--pdq-threshold", metavar="N", help="With --pdq: near match at most N bits apart (0..64).")] = 31,
) -> None:
    """Look digests up. Exit 0 if any is found, 1 if none is (2 on a malformed hash or a
    damaged index: a compiled index's data is verified before any answer)."""
    if pdq:
        _lookup_pdq(index, hashes, json_out, pdq_threshold)
        return
    queries = [_parse_hash(h) for h in hashes]
    hs = load_hashset(index, verify=True)
    if hs.verification is not None and not hs.verification.wait():
        raise HashSetError(hs.verification.message())
    found_any = False
    for text, (alg, digest) in zip(hashes, queries):
        categories = hs.lookup(alg, digest)
        found_any |= bool(categories)
        if json_out:
            _out_json({"hash": text.strip().lower(), "algorithm": alg, "found": bool(categories),
                       "categories": categories, "labels": [hs.label(c) for c in categories]})
        elif not categories:
            _out(f"{text.strip().lower()}  not found")
        else:
            shown = ", ".join("no category" if c is None else (f"{c} ({hs.label(c)})" if hs.label(c) != c else c)
                              for c in categories)
            note = "  (conflicting categories)" if len(categories) > 1 else ""
            _out(f"{text.strip().lower()}  found in {hs.name} ({hs.kind}): {shown}{note}")
    if not found_any:
        raise typer.Exit(1)


def _lookup_pdq(path: Path, hashes: list[str], json_out: bool, threshold: int) -> None:
    """PDQ near matches of each hash, closest first: a lead for review, as in a scan."""
    from triage.hashsets import tdb
    from triage.hashsets.pdqsection import open_pdq
    from triage.perceptual.index import PdqIndex
    from triage.perceptual.sets import load_pdq_set
    from triage.reports.labels import LABELS

    if not 0 <= threshold <= 64:
        raise UsageError("--pdq-threshold must be 0..64 (PDQ's reference is 31)")
    values = [h.strip().lower() for h in hashes]
    for text, value in zip(hashes, values):
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise UsageError(f"{text!r} is not a PDQ hash (64 hex digits)")
    try:
        with open(path, "rb") as fh:
            compiled = tdb.is_index(fh.read(len(tdb.MAGIC)))
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})") from None
    if compiled:
        check = tdb.Verification(path)
        if not check.wait():
            raise HashSetError(check.message())
        index = open_pdq(path)
    else:
        index = PdqIndex.build([load_pdq_set(path)])
    found_any = False
    for value in values:
        matches = index.matches(value, threshold)
        found_any |= bool(matches)
        if json_out:
            _out(json.dumps({"hash": value, "algorithm": "pdq", "threshold": threshold,
                             "found": bool(matches), "matches": matches}))
        elif not matches:
            _out(f"{value}  no PDQ hash within {threshold} bits")
        else:
            near = "; ".join(f"{m['hashset']}: {m['category']} "
                             f"({LABELS.get(m['category'], m['category'])}) at distance "
                             f"{m['distance']}" for m in matches)
            _out(f"{value}  near (needs review): {near}")
    if not found_any:
        raise typer.Exit(1)


def _parse_hash(text: str) -> tuple[str, bytes]:
    value = text.strip()
    alg = _ALGORITHM_BY_LENGTH.get(len(value))
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        digest = b""
    if alg is None or len(digest) * 2 != len(value):
        raise UsageError(f"{text!r} is not an MD5, SHA-1 or SHA-256 hex digest (32, 40 or 64 hex digits)")
    return alg, digest


@hashset_app.command()
def formats() -> None:
    """List the hash-set formats and category profiles this triage reads."""
    for parser in FORMATS.values():
        default = getattr(parser, "default_kind", "known-bad")
        _out(f"{parser.id:<11} {parser.description}  [default kind: {default}]")
    _out(f"{'tdb':<11} triage compiled index (hashset import)")
    _out(f"{'pdq':<11} PDQ hashes only, import: 64-hex list, CSV with a pdq column, VICS "
         "AlternativeHashes (VICS and CSV sources with PDQ are read for it anyway)")
    _out(f"{'vpdq':<11} vPDQ frame hashes (ThreatExchange vpdq text: frame,quality,hash,"
         "timestamp), one file per video or a folder: scan --vpdq-set, or import FILE_OR_DIR[:CATEGORY] "
         "into a .tdb's vPDQ section")
    _out("profiles: " + ", ".join(SHIPPED) + " (or a TOML file; see docs/hashsets.md)")
