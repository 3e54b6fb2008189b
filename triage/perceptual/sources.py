"""Which PDQ sets a scan searches: ``--pdq-set`` files (raw, parsed at start-up; or ``.tdb``,
mapped in place) and, with ``--pdq``, the PDQ section of every known-bad ``--hashset`` index.

An examiner who compiled a VICS export with its PDQ hashes into one ``.tdb`` expects
``--hashset pv.tdb --pdq`` to search them: giving the same file twice would be a trap. The same
holds for a raw VICS or CSV ``--hashset`` that carries PDQ hashes (``AlternativeHashes`` named
PDQ, a ``pdq`` column): with ``--pdq`` the exact parser collects its PDQ column in the same
pass (``load_hashset(pdq=True)`` -> ``hs.pdq_set``, same rules as ``perceptual.sets``), so
``--hashset pv.json --pdq`` is enough. Without ``--pdq`` nothing of it is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from triage.matching.categories import KNOWN_BAD
from triage.errors import HashSetError, OutputError, UsageError
from triage.hashsets import tdb
from triage.hashsets.loader import index_meta, pdq_info, vpdq_info
from triage.hashsets.pdqsection import (PdqRows, TdbPdq, carries_pdq, describe_tdb,
                                        scratch_rows)
from triage.hashsets.store import EntryStore
from triage.hashsets.vpdqsection import TdbVpdq, VpdqRows, describe_vpdq
from triage.perceptual.index import PdqSet, index_bits
from triage.perceptual.sets import load_pdq_set
from triage.perceptual.vsets import VpdqSet, absolute_spec, iter_vpdq_set, parse_spec

PdqSource = PdqSet | TdbPdq
VpdqSource = VpdqSet | TdbVpdq
RAW_WITH_PDQ = ("vics", "csv")  # raw hash-set formats whose sources may carry PDQ hashes


def _is_index(path: str) -> bool:
    try:
        with open(path, "rb") as stream:
            return tdb.is_index(stream.read(len(tdb.MAGIC)))
    except OSError:
        return False  # the loader reports it with the usual message


def load_pdq_sources(paths: Iterable[str], hashsets: Sequence[Any],
                     lenient: bool = False, verify: Any = None) -> list[PdqSource]:
    """``--pdq-set`` paths in order, then the PDQ sections of ``hashsets`` (pass them only
    when ``--pdq`` is on) that are not already among them. A ``--pdq-set`` index gets its data
    checked on a thread when ``verify`` (True, or a callable for failures: ``tdb.Verification``);
    those of ``hashsets`` are checked as hash sets."""
    sources: list[PdqSource] = []
    try:
        _pdq_sources(sources, paths, hashsets, lenient, verify)
    except BaseException:
        close_text_sets(sources)
        raise
    return sources


def _pdq_sources(sources: list[PdqSource], paths: Iterable[str], hashsets: Sequence[Any],
                 lenient: bool, verify: Any) -> None:
    for path in paths:
        if _is_index(path):
            found = describe_tdb(path)
            assert found is not None
            if verify:
                found.verification = tdb.Verification(path, None if verify is True else verify)
            sources.append(found)
        else:
            sources.append(_streamed_pdq(path, lenient))
    seen = {os.path.realpath(s.path) for s in sources}
    for hs in hashsets:
        if hs.kind != KNOWN_BAD:
            continue
        if hs.format in RAW_WITH_PDQ:  # a raw set (in memory, or spilled to a temporary index)
            path = os.path.realpath(hs.path)
            loaded, hs.pdq_set = hs.pdq_set, None  # workers need not receive it
            if path in seen:
                close_text_sets([loaded])
                continue
            if loaded is None:  # loaded without pdq=True (an API caller): read it now
                if not carries_pdq(Path(hs.path), hs.format):
                    continue
                loaded = _streamed_pdq(hs.path, lenient)
            elif loaded.sink is None:  # collected in arrays (an API caller): to temporary files
                rows = scratch_rows()
                rows.add_set(loaded)
                loaded.streamed, loaded.sink = loaded.entries, rows
                loaded.hashes, loaded.codes = loaded.hashes[:0], loaded.codes[:0]
            loaded.name = hs.name
            seen.add(path)
            if loaded.entries or loaded.skipped:
                sources.append(loaded)
            else:
                close_text_sets([loaded])
            continue
        if not hs.index_file or not (hs.header or {}).get("pdq"):
            continue
        if os.path.realpath(hs.index_file) in seen:
            continue
        found = describe_tdb(hs.index_file, hs.header, required=False)
        if found is not None:
            sources.append(found)
            seen.add(os.path.realpath(hs.index_file))


def _streamed_pdq(path: str, lenient: bool) -> PdqSet:
    """A text PDQ set parsed straight into a ``PdqRows`` (memory: a block, not the set)."""
    rows = scratch_rows()
    try:
        loaded = load_pdq_set(path, lenient=lenient, sink=rows.feed())
    except BaseException:
        rows.close()
        raise
    loaded.sink = rows
    return loaded


def load_vpdq_sources(specs: Iterable[str], hashsets: Sequence[Any], lenient: bool = False,
                      verify: Any = None) -> tuple[list[VpdqSource], list[str]]:
    """``--vpdq-set`` specs in order (a ``.tdb`` is mapped in place: no parse, no index build;
    a text file or folder is parsed), then the vPDQ sections of the known-bad ``hashsets``
    indexes (pass them only when ``--vpdq`` is on) not already among them. Returns the
    sources and, per source, the spec ``--resume`` gives again."""
    sources: list[VpdqSource] = []
    given: list[str] = []
    try:
        _vpdq_sources(sources, given, specs, hashsets, lenient, verify)
    except BaseException:
        close_text_sets(sources)
        raise
    return sources, given


def _vpdq_sources(sources: list[VpdqSource], given: list[str], specs: Iterable[str],
                  hashsets: Sequence[Any], lenient: bool, verify: Any) -> None:
    rows: VpdqRows | None = None  # every text set's videos, in order: one index
    for spec in specs:
        path, _ = parse_spec(spec)
        if _is_index(path):
            found = describe_vpdq(path)
            assert found is not None
            if verify:
                found.verification = tdb.Verification(path, None if verify is True else verify)
            sources.append(found)
            given.append(os.path.abspath(path))
        else:
            # frames straight to temporary files (anonymous: nothing is left behind)
            rows = rows or VpdqRows(EntryStore(), os.environ.get("TRIAGE_TMPDIR") or None)
            loaded, videos = iter_vpdq_set(spec, lenient)
            loaded.sink = rows
            sources.append(loaded)
            loaded.streamed = rows.add_set(loaded, videos)
            given.append(absolute_spec(spec))
    seen = {os.path.realpath(s.path) for s in sources if isinstance(s, TdbVpdq)}
    for hs in hashsets:
        if hs.kind != KNOWN_BAD or not hs.index_file or not (hs.header or {}).get("vpdq"):
            continue
        if os.path.realpath(hs.index_file) in seen:
            continue
        found = describe_vpdq(hs.index_file, hs.header, required=False)
        if found is not None:  # checked as a hash set already: the same check, shown twice
            found.verification = getattr(hs, "verification", None)
            sources.append(found)
            given.append(os.path.abspath(hs.index_file))
            seen.add(os.path.realpath(hs.index_file))


def compile_pdq(sources: Sequence[PdqSource], folder: Path) -> tuple[str, ...]:
    """Each text PDQ set (parsed into its ``PdqRows``) written to ``folder`` as a ``.tdb``
    by ``hashset import``'s own section writer, in order; returns their absolute paths for
    the workers to map (``PdqOptions.index_files``), before the ``.tdb`` sets'. One index a
    set: a match names its set and category, as ever. Memory stays bounded
    (``pdqsection.write_multi_index``); the build's temporary files go in ``folder``."""
    files: list[str] = []
    for s in sources:
        rows = s.sink if isinstance(s, PdqSet) else None
        if rows is None:
            continue
        try:
            if len(rows):  # an empty set matches nothing: no index
                path = folder / f"set{len(files)}.tdb"
                info = pdq_info(_present(s.path), s.name, rows.found(s))
                _write(path, len(rows), rows, index_meta(s.name, KNOWN_BAD, None, [info]),
                       pdq=rows)
                files.append(os.path.abspath(path))
        finally:
            close_text_sets([s])
    return tuple(files)


def compile_vpdq(sources: Sequence[VpdqSource], folder: Path) -> str | None:
    """Every text vPDQ set's videos (read into one ``VpdqRows``, in order) written to
    ``folder`` as one ``.tdb`` by ``hashset import``'s own section writer; returns its
    absolute path (``VpdqOptions.sets_file``: mapped with each video named by its own set,
    ``vpdqsection.open_vpdq(by_source=True)``), or None without text sets. Rows, video
    numbers and so every match are those of one in-memory ``VpdqIndex`` of the same sets."""
    text = [s for s in sources if isinstance(s, VpdqSet) and s.sink is not None]
    if not text:
        return None
    rows = text[0].sink
    path = folder / "sets.tdb"
    try:
        infos = [{**vpdq_info(str(_present(s.path)), s, s.streamed or {}), "name": s.name}
                 for s in text]
        _write(path, rows.rows, rows, index_meta("vpdq-sets", KNOWN_BAD, None, infos),
               vpdq=rows)
    finally:
        close_text_sets(text)
    return os.path.abspath(path)


def _present(path: str) -> Path:
    """A parsed set's path, still there (its size goes in the compiled index's header)."""
    if not os.path.exists(path):
        raise HashSetError(f"hash set {path}: removed while the scan was starting")
    return Path(path)


def _write(path: Path, n: int, rows: PdqRows | VpdqRows, meta: dict[str, Any],
           pdq: PdqRows | None = None, vpdq: VpdqRows | None = None) -> None:
    """``tdb.write_index`` into the run's output folder (its build's temporary files too);
    failing to write there is an output error (exit 5), as for any other output."""
    index_bits(n)  # more hashes than one index can number: the set's fault (exit 2)
    try:
        path.parent.mkdir(exist_ok=True)
        rows.tmpdir = path.parent
        tdb.write_index(path, rows.store.finish(), meta, pdq, vpdq)
    except (OSError, HashSetError) as exc:
        raise OutputError(f"cannot write the compiled text sets in {path.parent}: {exc}"
                          ) from None


def close_text_sets(sources: Iterable[Any]) -> None:
    """Let the text sets' temporary files go (compiled, or the scan is not starting)."""
    for s in sources:
        rows = getattr(s, "sink", None)
        if rows is not None:
            rows.close()
            s.sink = None


def in_place_files(sources: Iterable[PdqSource]) -> tuple[str, ...]:
    """Absolute paths of the ``.tdb`` files the workers map (their cwd may differ)."""
    return tuple(os.path.abspath(s.path) for s in sources if isinstance(s, (TdbPdq, TdbVpdq)))


def check_pdq_only(hashsets: Sequence[Any], pdq_on: bool, vpdq_on: bool = False) -> None:
    """A known-bad index holding only PDQ (or vPDQ) hashes, given without ``--pdq``
    (``--vpdq``), would match nothing without a word: refuse it."""
    for hs in hashsets:
        header = hs.header or {}
        if (not vpdq_on and hs.kind == KNOWN_BAD and not hs.algorithms and header.get("vpdq")
                and not (pdq_on and header.get("pdq"))):
            raise UsageError(f"hash set {hs.path} holds vPDQ video hashes only: add --vpdq (or "
                             "give it as --vpdq-set)")
    if pdq_on:
        return
    for hs in hashsets:
        if hs.kind == KNOWN_BAD and not hs.algorithms and (hs.header or {}).get("pdq"):
            raise UsageError(f"hash set {hs.path} holds PDQ hashes only: add --pdq (or give "
                             "it as --pdq-set)")

