"""PDQ perceptual hashes inside a compiled index (``.tdb``, format 1.1): written by ``hashset
import``, searched by a scan straight from the mapped file.

The section is ``triage.perceptual.index.PdqIndex`` as it lies in memory (words, meta, ids, bucket
offsets), so opening it costs a header read and an ``mmap``: no parsing, no index build, and
scan workers share the pages. Categories are ids into the index's one category list (the same
list the exact digests use), so a conflict (one PDQ hash, two categories) keeps both rows,
exactly like exact digests.

Sources: Project VIC VICS (``AlternativeHashes`` named PDQ), a CSV with a ``pdq`` column
(beside md5/sha1/sha256 or alone), or a plain list of 64-hex PDQ hashes given with
``--format pdq`` (a 64-hex line is a SHA-256 otherwise). Beside exact digests the PDQ column is
collected by the exact parser in the same pass (``perceptual.sets.PdqCollector``). They are read by the same loader as
``--pdq-set`` (``triage.perceptual.sets.load_pdq_set``), whose rules are the exact readers' own.
"""

from __future__ import annotations

import codecs
import os
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from triage.errors import HashSetError
from triage.hashsets import tdb
from triage.hashsets.store import EntryStore
from triage.matching.categories import KNOWN_BAD
from triage.perceptual.index import (
    CHUNKS,
    INDEX_VERSION,
    WIDTHS,
    PdqIndex,
    PdqSet,
    index_bits,
    sort_pieces,
    to_words,
)
from triage.perceptual.sets import load_pdq_set, sniff

PDQ_FORMAT = "pdq"  # ``hashset import --format pdq``: the source holds PDQ hashes only
_ARRAYS = {"words": "<u8", "meta": "<u4", "ids": "<u4", "offsets": "<u4"}
_NEEDLE = b"AlternativeHashes"


# -- import ---------------------------------------------------------------------------------


def carries_pdq(file: Path, parser_id: str) -> bool:
    """Whether a source an exact parser read may also hold PDQ hashes (cheap: no parse)."""
    if parser_id == "vics":
        return _mentions(file, _NEEDLE)
    if parser_id == "csv":
        with open(file, "rb") as stream:
            return _sniff_pdq(stream.read(16384)) == "pdq-csv"
    return False


def pdq_only_csv(head: bytes) -> bool:
    """A CSV whose header names a ``pdq`` column (what no exact parser claims)."""
    return _sniff_pdq(head) == "pdq-csv"


def _sniff_pdq(head: bytes) -> str:
    return sniff(head)[0]


def _mentions(file: Path, needle: bytes) -> bool:
    """Substring search in 16 MiB blocks (GB/s); UTF-16 text is left to the loader."""
    with open(file, "rb") as stream:
        tail = b""
        first = True
        while block := stream.read(16 << 20):
            if first and block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                return True
            first = False
            if needle in tail + block[: len(needle)] or needle in block:
                return True
            tail = block[-len(needle):]
    return False


class PdqRows:
    """The PDQ hashes of every source of one index, with category ids of its ``EntryStore``.

    Bounded memory: each source's rows (hash, category id, 2 zero bytes: 36, as the store's
    sort reads keys in 4-byte words) go into a second
    ``EntryStore`` (the exact digests' external sort: spilled to run files past its budget),
    which sorts them and collapses exact (hash, category) repeats; the section is then streamed
    from its sorted blocks and the multi-index built by ``write_multi_index``."""

    ALGORITHM = "pdq+category"  # the rows' name inside ``self.rows`` (never an exact table)

    def __init__(self, store: EntryStore, tmpdir: str | os.PathLike[str] | None = None
                 ) -> None:
        self.store, self.tmpdir = store, tmpdir  # tmpdir: run files and the build's spills
        self.rows = EntryStore(tmpdir=tmpdir)

    def add_source(self, file: Path, lenient: bool) -> dict[str, Any]:
        """Load one PDQ-only source, its hashes streamed in as parsed; returns what its
        ``sources`` entry records."""
        return self.found(load_pdq_set(file, lenient=lenient, sink=self.feed()))

    def add_set(self, loaded: PdqSet) -> dict[str, Any]:
        """Add a source's PDQ hashes (already parsed, e.g. by the exact parser's pass)."""
        feed = self.feed()
        feed(loaded.hashes[:0], loaded.codes[:0], loaded.labels)  # every label, in order
        for i in range(0, len(loaded.hashes), _ROWS):  # rows made a slice at a time
            feed(loaded.hashes[i:i + _ROWS], loaded.codes[i:i + _ROWS], loaded.labels)
        return self.found(loaded)

    @staticmethod
    def found(loaded: PdqSet) -> dict[str, Any]:
        """What a source's ``sources`` entry records of its PDQ hashes."""
        return {"pdq_format": loaded.format, "pdq_hashes": loaded.entries,
                "pdq_skipped": loaded.skipped, "pdq_dropped": loaded.dropped,
                "pdq_sha256": loaded.sha256}

    def feed(self) -> Callable[[np.ndarray, np.ndarray, list[str | None]], None]:
        """A sink for one source's parsed blocks (``PdqCollector``): ``(hashes, codes,
        labels)``, ``labels[codes[i]]`` the category. Labels get category ids in their order
        as they appear, so a streamed source gets the ids ``add_set`` would give it."""
        ids: list[int] = []

        def add(hashes: np.ndarray, codes: np.ndarray, labels: list[str | None]) -> None:
            ids.extend(self.store.category_id(label) for label in labels[len(ids):])
            rows = np.zeros((len(hashes), 36), np.uint8)
            rows[:, :32] = hashes.reshape(-1, 32)
            rows[:, 32:34] = (np.array(ids, np.uint16)[codes].astype(">u2").view(np.uint8)
                              .reshape(-1, 2))
            # memcmp order of hash then category id (big-endian): the order of the section
            self.rows.add(self.ALGORITHM, rows.view("S36").ravel(), 0)

        return add

    def __len__(self) -> int:
        return self.rows.rows_added.get(self.ALGORITHM, 0)

    def close(self) -> None:
        """Remove the run files."""
        self.rows.close()

    def write(self, out: Any, categories: list[str | None]) -> dict[str, Any]:
        """Append the section to a ``tdb._Out``; returns the header's ``pdq`` entry: rows
        sorted by hash, exact (hash, category) repeats collapsed."""
        counts = np.zeros(len(categories), np.int64)
        unique = 0
        last = b""
        with Spill("<u8", self.tmpdir, 4) as words, Spill("<u4", self.tmpdir) as codes:
            for block in self.rows.finish().blocks(self.ALGORITHM):
                if not len(block.keys):
                    continue
                raw = block.keys.view(np.uint8).reshape(-1, 36)
                hashes = np.ascontiguousarray(raw[:, :32])
                code = np.ascontiguousarray(raw[:, 32:34]).view(">u2").ravel().astype(np.uint16)
                words.append(to_words(hashes))
                codes.append(code)
                counts += np.bincount(code, minlength=len(categories))
                view = hashes.view("V32").ravel()
                unique += int(np.count_nonzero(view[1:] != view[:-1]))
                unique += int(hashes[0].tobytes() != last)
                last = hashes[-1].tobytes()
            n = codes.items
            spec: dict[str, Any] = {"index_version": INDEX_VERSION, "rows": n,
                                    "unique": unique}
            spec["words"] = {"offset": out.align(), "length": 32 * n, "dtype": "<u8"}
            words.copy_to(out)
            spec["meta"] = {"offset": out.align(), "length": 4 * n, "dtype": "<u4"}
            codes.copy_to(out)
            spec.update(write_multi_index(out, words.chunks, n, self.tmpdir))
        spec["counts"] = {"null" if categories[i] is None else str(categories[i]): int(k)
                          for i, k in enumerate(counts.tolist()) if k}
        return spec


_ROWS = 1 << 21  # rows of words a multi-index pass reads at a time (64 MiB)


def scratch_rows() -> PdqRows:
    """A ``PdqRows`` for a scan's text PDQ set, filled as it is parsed, before the output
    folder exists: the run files go in ``$TRIAGE_TMPDIR`` or the system temp folder (as a raw
    exact set's temporary index), removed by ``close``, when the rows are dropped, or at exit."""
    where = os.environ.get("TRIAGE_TMPDIR") or None
    rows = PdqRows(EntryStore(tmpdir=where), where)
    weakref.finalize(rows, rows.rows.close)  # the run folder, even if the scan never starts
    return rows


def write_multi_index(out: Any, chunks: Any, n: int, tmpdir: str | os.PathLike[str] | None
                      ) -> dict[str, Any]:
    """Append the multi-index's ``ids`` then ``offsets`` over ``n`` rows of words (``chunks()``:
    the (m, 4) uint64 words in row order, once a pass) to a ``tdb._Out``: ``ids`` go straight
    to the file and ``offsets`` through a temporary file, so memory stays bounded
    (``perceptual.index.sort_pieces``). Returns the header's ``bucket_bits``, ``ids``,
    ``offsets``. The PDQ and vPDQ sections both use it: one build, one layout."""
    bits = index_bits(n)
    ids = {"offset": out.align(), "length": CHUNKS * n * 4, "dtype": "<u4"}

    def emit_ids(part: np.ndarray) -> None:
        if part.size:
            out.write(memoryview(np.ascontiguousarray(part, "<u4")).cast("B"))

    with Spill("<u4", tmpdir) as offsets:
        sort_pieces(chunks, n, bits, emit_ids, offsets.append)
        if out.pos - ids["offset"] != ids["length"]:
            raise AssertionError("multi-index ids of the wrong length")
        where = out.align()
        offsets.copy_to(out)
    return {"bucket_bits": list(bits), "ids": ids,
            "offsets": {"offset": where, "length": offsets.items * 4, "dtype": "<u4"}}


class Spill:
    """An array appended in pieces to a temporary file (beside the index being written, or
    ``tmpdir``), then copied into the index or read back in chunks: what lets an import hold
    100M frames without holding them in memory."""

    def __init__(self, dtype: str, tmpdir: str | os.PathLike[str] | None, width: int = 1
                 ) -> None:
        self.dtype, self.width, self.items = np.dtype(dtype), width, 0
        self.file = tempfile.TemporaryFile(dir=tmpdir)  # noqa: SIM115 - lives with the Spill

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def append(self, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array, dtype=self.dtype)
        if data.nbytes:
            self.file.write(memoryview(data).cast("B"))
        self.items += data.size

    def copy_to(self, out: Any) -> None:
        """Append the whole array to a ``tdb._Out`` (in 4 MiB blocks)."""
        self.file.flush()
        self.file.seek(0)
        while block := self.file.read(4 << 20):
            out.write(block)
        self.file.seek(0, os.SEEK_END)

    def chunks(self, rows: int | None = None) -> Iterator[np.ndarray]:
        """The array read back, ``rows`` rows (of ``width`` items; default ``_ROWS``) at a
        time, into one reused buffer (a chunk is only valid until the next)."""
        rows = rows or _ROWS
        self.file.flush()
        self.file.seek(0)
        row_bytes = self.dtype.itemsize * self.width
        total = self.items // self.width
        buffer = np.empty((min(rows, max(total, 1)), self.width), self.dtype)
        done = 0
        try:
            while done < total:
                m = min(len(buffer), total - done)
                view = memoryview(buffer[:m]).cast("B")
                got = self.file.readinto(view)
                if got != m * row_bytes:
                    raise HashSetError("temporary file of the index build came back short")
                yield buffer[:m]
                done += m
        finally:
            self.file.seek(0, os.SEEK_END)


# -- scan -----------------------------------------------------------------------------------


@dataclass
class TdbPdq:
    """A compiled index used for PDQ near matches: ``summary.json`` ``pdq_sets`` entry."""

    name: str
    path: str
    sha256: str
    entries: int
    skipped: int = 0
    dropped: int = 0
    format: str = "tdb"
    verification: Any = field(default=None, compare=False, repr=False)  # tdb.Verification

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "kind": KNOWN_BAD, "format": self.format,
                "sha256": self.sha256, "entries": self.entries, "algorithms": ["pdq"],
                "skipped_lines": self.skipped, "dropped": self.dropped,
                "verification": self.verification and self.verification.summary()}


def describe_tdb(path: str | os.PathLike[str], header: dict[str, Any] | None = None,
                 required: bool = True) -> TdbPdq | None:
    """The PDQ part of an index, from its header alone; ``required`` refuses an index
    without one, or one compiled as known-good (a near match is a lead to known-bad)."""
    file = Path(path)
    if header is None:
        header = tdb.read_header(file)[0]
    spec = header.get("pdq")
    if not spec or not spec.get("rows"):
        if required:
            raise HashSetError(f"index {file} carries no PDQ hashes (re-import a source with "
                               "PDQ: VICS AlternativeHashes, a CSV pdq column, or a PDQ list "
                               "with --format pdq)")
        return None
    if header.get("kind") != KNOWN_BAD:
        if required:
            raise HashSetError(f"index {file} was compiled as {header.get('kind')}; PDQ near "
                               "matches are only searched in known-bad sets")
        return None
    sources = header.get("sources") or []
    return TdbPdq(str(header["name"]), str(file), str(header["sections_sha256"]),
                  int(spec["unique"]), sum(int(s.get("pdq_skipped", 0)) for s in sources),
                  sum(int(s.get("pdq_dropped", 0)) for s in sources))


def mapped_arrays(file: Path, spec: dict[str, Any], dtypes: dict[str, str],
                  limit: int) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """A multi-index section's arrays mapped in place, and its bucket bits: shared by the PDQ
    and vPDQ sections. ValueError when it is not a section this version can search."""
    if spec.get("index_version") != INDEX_VERSION:
        raise ValueError(f"index version {spec.get('index_version')}")
    bits = tuple(int(b) for b in spec["bucket_bits"])
    if len(bits) != CHUNKS or any(not 0 < b <= w for b, w in zip(bits, WIDTHS)):
        raise ValueError("bucket bits")
    mapped = tdb.map_readonly(file)
    return ({name: tdb._section(mapped, spec[name], np.dtype(dtype), limit)
             for name, dtype in dtypes.items()}, bits)


def open_pdq(path: str | os.PathLike[str]) -> PdqIndex:
    """Map an index's PDQ section as a ``PdqIndex`` (read-only; pages read on demand)."""
    file = Path(path)
    header, limit, _ = tdb.read_header(file)
    describe_tdb(file, header)
    spec = header["pdq"]
    try:
        n = int(spec["rows"])
        arrays, bits = mapped_arrays(file, spec, _ARRAYS, limit)
        sizes = {"words": 4 * n, "meta": n, "ids": CHUNKS * n,
                 "offsets": sum((1 << b) + 1 for b in bits)}
        if any(len(arrays[k]) != v for k, v in sizes.items()):
            raise ValueError("PDQ sections disagree in length")
        sets = [{"name": str(header["name"]), "labels": list(header["categories"])}]
        return PdqIndex(arrays["words"].reshape(n, 4), arrays["meta"], arrays["ids"],
                        arrays["offsets"], bits, sets)
    except (KeyError, TypeError, ValueError) as exc:
        raise HashSetError(f"index {file}: damaged PDQ section ({exc})") from None
