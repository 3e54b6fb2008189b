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

from triage.categories import KNOWN_BAD
from triage.errors import UsageError
from triage.hashsets import tdb
from triage.hashsets.pdqsection import TdbPdq, carries_pdq, describe_tdb
from triage.perceptual.index import PdqSet
from triage.perceptual.sets import load_pdq_set

PdqSource = PdqSet | TdbPdq
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


def in_place_files(sources: Iterable[PdqSource]) -> tuple[str, ...]:
    """Absolute paths of the ``.tdb`` files the workers map (their cwd may differ)."""
    return tuple(os.path.abspath(s.path) for s in sources if isinstance(s, TdbPdq))


def check_pdq_only(hashsets: Sequence[Any], pdq_on: bool) -> None:
    """A known-bad index holding only PDQ hashes, given without ``--pdq``, would match nothing
    without a word: refuse it."""
    if pdq_on:
        return
    for hs in hashsets:
        if hs.kind == KNOWN_BAD and not hs.algorithms and (hs.header or {}).get("pdq"):
            raise UsageError(f"hash set {hs.path} holds PDQ hashes only: add --pdq (or give "
                             "it as --pdq-set)")

