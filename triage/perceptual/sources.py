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
from triage.errors import UsageError
from triage.hashsets import tdb
from triage.hashsets.pdqsection import TdbPdq, carries_pdq, describe_tdb
from triage.hashsets.vpdqsection import TdbVpdq, describe_vpdq
from triage.perceptual.index import PdqSet
from triage.perceptual.sets import load_pdq_set
from triage.perceptual.vsets import VpdqSet, absolute_spec, load_vpdq_set, parse_spec

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
    for path in paths:
        if _is_index(path):
            found = describe_tdb(path)
            assert found is not None
            if verify:
                found.verification = tdb.Verification(path, None if verify is True else verify)
            sources.append(found)
        else:
            sources.append(load_pdq_set(path, lenient=lenient))
    seen = {os.path.realpath(s.path) for s in sources}
    for hs in hashsets:
        if hs.kind != KNOWN_BAD:
            continue
        if hs.format in RAW_WITH_PDQ:  # a raw set (in memory, or spilled to a temporary index)
            path = os.path.realpath(hs.path)
            loaded, hs.pdq_set = hs.pdq_set, None  # workers need not receive it
            if path in seen:
                continue
            if loaded is None:  # loaded without pdq=True (an API caller): read it now
                if not carries_pdq(Path(hs.path), hs.format):
                    continue
                loaded = load_pdq_set(hs.path, lenient=lenient)
            loaded.name = hs.name
            seen.add(path)
            if loaded.entries or loaded.skipped:
                sources.append(loaded)
            continue
        if not hs.index_file or not (hs.header or {}).get("pdq"):
            continue
        if os.path.realpath(hs.index_file) in seen:
            continue
        found = describe_tdb(hs.index_file, hs.header, required=False)
        if found is not None:
            sources.append(found)
            seen.add(os.path.realpath(hs.index_file))
    return sources


def load_vpdq_sources(specs: Iterable[str], hashsets: Sequence[Any], lenient: bool = False,
                      verify: Any = None) -> tuple[list[VpdqSource], list[str]]:
    """``--vpdq-set`` specs in order (a ``.tdb`` is mapped in place: no parse, no index build;
    a text file or folder is parsed), then the vPDQ sections of the known-bad ``hashsets``
    indexes (pass them only when ``--vpdq`` is on) not already among them. Returns the
    sources and, per source, the spec ``--resume`` gives again."""
    sources: list[VpdqSource] = []
    given: list[str] = []
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
            sources.append(load_vpdq_set(spec, lenient))
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
    return sources, given


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

