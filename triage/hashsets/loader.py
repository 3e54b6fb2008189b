"""Turning source files into a ``HashSet``: detect, parse, then keep in RAM or compile.

``load_hashset`` is what ``scan`` calls: a ``.tdb`` is mapped; a raw source is parsed and held in
RAM when it is small, or compiled to a temporary index (deleted once mapped) when it outgrew the
memory budget. ``import_hashsets`` compiles one or more sources into a named ``.tdb``, with the
PDQ hashes they carry (``pdqsection``).
"""

from __future__ import annotations

import csv
import hashlib
import os
import sqlite3
import stat
import tempfile
import threading
import time
import weakref
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ijson

from triage.version import __version__
from triage.matching.categories import KINDS, KNOWN_BAD
from triage.errors import HashSetError
from triage.hashsets import tdb
from triage.hashsets._base import HEAD_SIZE, Parser
from triage.hashsets._builder import HashSetBuilder
from triage.hashsets.model import HashSet
from triage.hashsets.pdqsection import PDQ_FORMAT, PdqRows, pdq_only_csv, scratch_rows
from triage.hashsets.profiles import Profile, guess_profile, load_profile
from triage.hashsets.registry import FORMATS
from triage.hashsets.store import EntryStore
from triage.hashsets.vpdqsection import VpdqRows
from triage.perceptual.index import PdqSet
from triage.perceptual.sets import PdqCollector
from triage.perceptual.vsets import VpdqSet, iter_vpdq_set, looks_vpdq, parse_spec

# Raw sources whose rows exceed this stay in a temporary mapped index, not in process memory
# (scan workers then share the page cache instead of each holding a pickled copy).
IN_MEMORY_LIMIT = 32 * 1024 * 1024

# What a damaged or hostile file can make the parsing machinery raise; all become HashSetError.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,  # includes UnicodeError
    csv.Error,
    ijson.JSONError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    sqlite3.Error,
    RecursionError,  # a JSON nesting bomb
    RuntimeError,  # encrypted zip entry; NotImplementedError: unsupported zip compression
)


def load_hashset(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    lenient: bool = False,
    format: str | None = None,
    name: str | None = None,
    profile: str | None = None,
    verify: Callable[[tdb.Verification], None] | bool = False,
    pdq: bool = False,
) -> HashSet:
    """Load one hash-set file, raw or compiled (``.tdb``, recognised by content).

    ``kind`` None means: the index's own kind, or the format's default (known-good for NSRL
    and NIST CAID, known-bad otherwise). An index compiled as one kind refuses to be used as the
    other: a known-bad set silently used as known-good would hide hits. Malformed records raise
    ``HashSetError`` naming file and line, or are skipped and counted when ``lenient``.
    ``verify`` (a scan) starts checking a ``.tdb``'s data on a thread (``hs.verification``);
    a callable is called from that thread if the check fails. ``pdq`` (a scan with ``--pdq``):
    a raw source's PDQ column is collected in the same parse, as ``hs.pdq_set`` (streamed to
    temporary files: its ``sink``, a ``PdqRows``, which ``perceptual.sources`` compiles).
    """
    _check_kind(kind)
    file = Path(path)
    head = _read_head(file)
    if tdb.is_index(head) and format in (None, "tdb"):
        hs = tdb.open_index(file)
        if kind is not None and kind != hs.kind:
            raise HashSetError(
                f"index {file} was compiled as {hs.kind}; it cannot be used as {kind} "
                f"(re-import with --kind {kind} if that is really meant)"
            )
        if name:
            hs.name = name
        if profile:
            hs.profile = load_profile(profile)
        if verify:
            hs.verification = tdb.Verification(file, None if verify is True else verify)
        return hs
    if format is None and _pdq_only(file, head):
        raise HashSetError(
            f"hash set {file} holds PDQ hashes only (a pdq column and no md5, sha1 or sha256): "
            "give it with --pdq-set for near matches, or compile it with triage hashset import")
    store = EntryStore()
    # the PDQ column goes to temporary files as it is read (``hs.pdq_set.sink``)
    pdq_rows = scratch_rows() if pdq else None
    collector = (PdqCollector(os.fspath(file), lenient, pdq_rows.feed())
                 if pdq_rows is not None else None)
    try:
        parser, builder, source = _parse(file, head, format, lenient, store, collector)
        pdq_set = (_pdq_set(collector, parser.id, file, source["sha256"])
                   if collector is not None and collector.seen else None)
        if pdq_set is not None:
            pdq_set.sink, pdq_rows = pdq_rows, None
        finished = store.finish()
        chosen = load_profile(profile) if profile else _guess([source], store)
        common: dict[str, Any] = dict(
            name=name or file.stem, path=os.fspath(path), format=parser.id,
            kind=kind or getattr(parser, "default_kind", KNOWN_BAD), sha256=source["sha256"],
        )
        if not store.spilled and store.buffered_bytes <= IN_MEMORY_LIMIT:
            tables, conflicts = tdb.memory_tables(finished)
            return HashSet(
                **common, tables=tables, categories=tuple(store.categories),
                skipped=builder.skipped, dropped_empty=builder.dropped_empty, conflicts=conflicts,
                sizes=store.sizes.result(), profile=chosen, sources=[source], pdq_set=pdq_set,
            )
        # Large: compile to a temporary index and map it. It stays on disk while the set is
        # alive, so scan workers can map the same file instead of receiving a copy.
        handle, temp = tempfile.mkstemp(prefix="triage-set-", suffix=".tdb", dir=os.environ.get("TRIAGE_TMPDIR"))
        os.close(handle)
        try:
            tdb.write_index(Path(temp), finished, index_meta(common["name"], common["kind"], chosen, [source]))
            hs = tdb.open_index(temp)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        weakref.finalize(hs, _remove, temp)
        for key, value in common.items():
            setattr(hs, key, value)
        hs.profile = chosen
        hs.pdq_set = pdq_set
        return hs
    finally:
        store.close()
        if pdq_rows is not None:  # none collected, or the parse failed
            pdq_rows.close()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def import_hashsets(
    sources: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    kind: str | None = None,
    profile: str | None = None,
    format: str | None = None,
    lenient: bool = False,
    force: bool = False,
    category: str | None = None,
) -> dict[str, Any]:
    """Compile ``sources`` into one index at ``out``; returns its header.

    A vPDQ source (ThreatExchange vpdq text, one file per video, or a folder of them; given as
    ``FILE_OR_DIR[:CATEGORY]``, else ``category``, else ``notable``) goes into the vPDQ section
    (``vpdqsection``), read with the rules of ``scan --vpdq-set``.

    PDQ hashes go in too: those of a VICS (``AlternativeHashes``) or CSV (``pdq`` column)
    source, handed over by the exact parser in the same pass (``PdqCollector``); a CSV with only a
    ``pdq`` column, or any source with ``format="pdq"`` (a plain 64-hex list would otherwise
    read as SHA-256), holds PDQ hashes only."""
    _check_kind(kind)
    if not sources:
        raise HashSetError("no source hash set given")
    target = Path(out)
    if target.exists() and not force:
        raise HashSetError(f"{target} exists; pass --force to replace it")
    if target.is_dir():
        raise HashSetError(f"{target} is a directory")
    chosen = load_profile(profile) if profile else None
    tmpdir = target.parent if target.parent.is_dir() else None
    store = EntryStore(tmpdir=tmpdir)
    pdq = PdqRows(store, tmpdir)
    vpdq = VpdqRows(store, tmpdir)
    try:
        infos, kinds = [], set()
        for source in sources:
            vpdq_path, vpdq_category = parse_spec(os.fspath(source))
            if format is None and looks_vpdq(vpdq_path):
                infos.append(_vpdq_source(vpdq_path, vpdq_category or category, vpdq, lenient))
                kinds.add(KNOWN_BAD)
                continue
            file = Path(source)
            head = _read_head(file)
            if format == PDQ_FORMAT or (format is None and _pdq_only(file, head)):
                info = _pdq_source(file, pdq, lenient)
                kinds.add(KNOWN_BAD)
            else:
                collector = PdqCollector(os.fspath(file), lenient)
                parser, _, info = _parse(file, head, format, lenient, store, collector)
                if collector.seen:  # parsed once: the PDQ column came with the exact ones
                    found = pdq.add_set(_pdq_set(collector, parser.id, file, info["sha256"]))
                    found.pop("pdq_sha256")  # the same file: its sha256 is already there
                    info.update(found)
                kinds.add(getattr(parser, "default_kind", KNOWN_BAD))
            infos.append(info)
        finished = store.finish()
        chosen = chosen or _guess(infos, store)
        resolved = kind or (kinds.pop() if len(kinds) == 1 else KNOWN_BAD)
        meta = index_meta(name or target.stem, resolved, chosen, infos)
        return tdb.write_index(target, finished, meta, pdq, vpdq)
    finally:
        store.close()
        pdq.close()
        vpdq.close()


def _pdq_pass(file: Path, pdq: PdqRows, lenient: bool) -> dict[str, Any]:
    """The PDQ hashes of a source, with the rules of ``--pdq-set``; damage is one line."""
    try:
        return pdq.add_source(file, lenient)
    except HashSetError:
        raise
    except _READ_ERRORS as exc:
        raise HashSetError(f"hash set {file}: cannot read its PDQ hashes: {_one_line(exc)}") from exc


def _pdq_set(collector: PdqCollector, parser_id: str, file: Path, sha256: str) -> PdqSet:
    """The PDQ hashes an exact parser met, as the PDQ set ``--pdq-set`` would give."""
    return collector.result(file.name, "vics" if parser_id == "vics" else "pdq-csv", sha256)


def _pdq_only(file: Path, head: bytes) -> bool:
    """A CSV naming a ``pdq`` column and no md5/sha1/sha256 one: no exact parser claims it."""
    return pdq_only_csv(head) and not any(p.detect(head, file) for p in FORMATS.values())


def _pdq_source(file: Path, pdq: PdqRows, lenient: bool) -> dict[str, Any]:
    """A source of PDQ hashes only: its ``sources`` entry (no exact records)."""
    return pdq_info(file, file.name, _pdq_pass(file, pdq, lenient))


def pdq_info(file: Path, name: str, found: dict[str, Any]) -> dict[str, Any]:
    """The ``sources`` entry of a PDQ-only source (``found``: ``PdqRows.found``)."""
    found = dict(found)
    return {"path": os.fspath(file), "name": name, "format": found["pdq_format"],
            "sha256": found.pop("pdq_sha256"), "bytes": file.stat().st_size, "records": 0,
            "skipped": 0, "dropped_empty": 0, **found}


def _vpdq_source(path: str, category: str | None, vpdq: VpdqRows, lenient: bool
                 ) -> dict[str, Any]:
    """A vPDQ file or folder: its ``sources`` entry (no exact records); its videos are read
    one at a time straight into the section's temporary files."""
    loaded, videos = iter_vpdq_set(path, lenient=lenient)
    if category:
        loaded.category = category
    return vpdq_info(path, loaded, vpdq.add_set(loaded, videos))


def vpdq_info(path: str, loaded: VpdqSet, found: dict[str, Any]) -> dict[str, Any]:
    """The ``sources`` entry of a vPDQ file or folder (``found``: ``VpdqRows.add_set``)."""
    where = Path(path)
    files = [where] if where.is_file() else [f for f in where.iterdir() if f.is_file()
                                              and not f.name.startswith(".")]
    return {"path": path, "name": where.name or path, "format": "vpdq", "sha256": loaded.sha256,
            "bytes": sum(f.stat().st_size for f in files), "records": 0,
            "skipped": loaded.skipped, "dropped_empty": 0, "vpdq_category": loaded.category,
            **found}


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise HashSetError(f"unknown hash-set kind {kind!r} (expected one of: {', '.join(KINDS)})")


def _guess(infos: list[dict[str, Any]], store: EntryStore) -> Profile | None:
    regions = [i["vics_profile"] for i in infos if i.get("vics_profile")]
    return guess_profile(regions, store.categories)


def index_meta(name: str, kind: str, profile: Profile | None, sources: list[dict[str, Any]]
               ) -> dict[str, Any]:
    """A ``.tdb`` header's description of the index (``tdb.write_index`` adds the sections)."""
    return {
        "name": name,
        "kind": kind,
        "profile": profile.to_json() if profile else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tool": {"name": "triage", "version": __version__},
        "sources": sources,
        "records": sum(s["records"] for s in sources),
    }


class _FileDigest(threading.Thread):
    """SHA-256 of a source, computed on the other core while the parser reads the same file."""

    def __init__(self, file: Path) -> None:
        super().__init__(daemon=True)
        self.file = file
        self.result: str | None = None
        self.error: OSError | None = None
        self.start()

    def run(self) -> None:
        try:
            with open(self.file, "rb") as stream:
                self.result = hashlib.file_digest(stream, "sha256").hexdigest()
        except OSError as exc:
            self.error = exc

    def value(self) -> str:
        self.join()
        if self.error is not None or self.result is None:
            raise HashSetError(f"hash set {self.file}: cannot read: {self.error}")
        return self.result


def _parse(
    file: Path, head: bytes, format: str | None, lenient: bool, store: EntryStore,
    pdq: PdqCollector | None = None,
) -> tuple[Parser, HashSetBuilder, dict[str, Any]]:
    """Parse one source; ``pdq`` collects the PDQ hashes the parser meets in the same pass
    (VICS ``AlternativeHashes``, a CSV ``pdq`` column)."""
    parser = _choose(file, head, format)
    builder = HashSetBuilder(os.fspath(file), lenient=lenient, store=store)
    builder.pdq = pdq
    digest = _FileDigest(file)
    try:
        parser.parse(file, builder)
        builder.flush()
    except HashSetError:
        raise
    except _READ_ERRORS as exc:
        raise HashSetError(f"hash set {file}: cannot read as {parser.id}: {_one_line(exc)}") from exc
    finally:
        digest.join()
    info = {
        "path": os.fspath(file), "name": file.name, "format": parser.id, "sha256": digest.value(),
        "bytes": file.stat().st_size, "records": builder.records, "skipped": builder.skipped,
        "dropped_empty": builder.dropped_empty, **builder.info,
    }
    return parser, builder, info


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _read_head(file: Path) -> bytes:
    """The first bytes for detection; every 'cannot use this path' case becomes one clear line."""
    try:
        info = file.stat()
        if stat.S_ISDIR(info.st_mode):
            raise HashSetError(f"hash set {file}: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise HashSetError(f"hash set {file}: not a regular file")
        with open(file, "rb") as stream:
            head = stream.read(HEAD_SIZE)
    except FileNotFoundError:
        raise HashSetError(f"hash set {file}: no such file") from None
    except PermissionError:
        raise HashSetError(f"hash set {file}: permission denied") from None
    except (OSError, ValueError) as exc:
        raise HashSetError(f"hash set {file}: cannot read: {exc}") from None
    if not head:
        raise HashSetError(f"hash set {file}: file is empty")
    return head


def _choose(file: Path, head: bytes, format: str | None) -> Parser:
    if format is not None:
        try:
            return FORMATS[format]
        except KeyError:
            valid = ", ".join([*FORMATS, "tdb", PDQ_FORMAT + " (import only)"])
            raise HashSetError(f"unknown hash-set format {format!r} (valid: {valid})") from None
    for parser in FORMATS.values():
        if parser.detect(head, file):
            return parser
    raise HashSetError(
        f"hash set {file}: not a recognised hash-set format (expected VICS JSON, NSRL RDS, "
        "hashdeep, md5sum lines, HashKeeper, ICSE or header CSV, TSK .kdb/.idx, or a .tdb index; "
        f"force one with format: {', '.join(FORMATS)})"
    )
