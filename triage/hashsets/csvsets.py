"""Delimited hash sets read by header names: generic CSV/TSV, NSRL RDS 2.x ``NSRLFile.txt``
(plain or zipped), HashKeeper ``.hsh`` and the Interpol ICSE export.

All four share the reader: header -> column map -> rows, added to the builder in batches.
"""

from __future__ import annotations

import csv
import string
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from triage.errors import HashSetError
from triage.hashsets._base import Lines, LineTooLong, first_line, head_text, open_text, text_stream
from triage.hashsets._builder import HashSetBuilder, parse_size, shorten

_DELIMITERS = (",", ";", "\t")
_HASH_COLUMNS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256"}
_SIZE_COLUMNS = ("size", "filesize", "mediasize")
_PDQ_COLUMNS = ("pdq", "pdqhash")
PDQ_COLUMNS = _PDQ_COLUMNS
PDQ_QUALITY_COLUMNS = ("quality", "pdqquality")
_BATCH = 20_000


def _normalise(name: str) -> str:
    """Header cell -> lookup key: case, quotes, spaces, '-' and '_' do not matter."""
    return name.strip().strip('"').strip().lower().replace("-", "").replace("_", "").replace(" ", "")


def _split(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _is_digest(cell: str) -> bool:
    token = cell.strip().split(None, 1)[0] if cell.strip() else ""
    return len(token) in (32, 40, 64) and all(c in string.hexdigits for c in token)


def _sniff(header: str) -> tuple[str, list[str]] | None:
    """The delimiter that makes the header name a hash column (most columns wins).

    A line holding a digest is data, not a header (e.g. an md5sum line whose file name is "md5").
    """
    best: tuple[str, list[str]] | None = None
    for delimiter in _DELIMITERS:
        cells = _split(header, delimiter)
        if any(_is_digest(cell) for cell in cells):
            return None
        if any(_normalise(cell) in _HASH_COLUMNS for cell in cells):
            if best is None or len(cells) > len(best[1]):
                best = (delimiter, cells)
    return best


def _header(stream: IO[str], builder: HashSetBuilder) -> tuple[str, Lines]:
    """Read line 1 (the header); the returned ``Lines`` continues with the data rows."""
    lines = Lines(stream)
    try:
        header = next(lines, "")
    except LineTooLong as exc:
        raise builder.fail(1, str(exc)) from exc
    return header.rstrip("\r\n"), lines


def _rows(lines: Lines, delimiter: str, builder: HashSetBuilder) -> Iterator[tuple[int, list[str]]]:
    """Data rows with their (last physical) line number.

    Blank rows and rows whose first cell starts with '#' are skipped; unparsable rows go to
    ``builder.malformed``.
    """
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except LineTooLong as exc:
            builder.malformed(exc.lineno, str(exc))
            continue
        except csv.Error as exc:
            builder.malformed(lines.lineno, f"unparsable CSV: {exc}")
            continue
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        yield lines.lineno, row


def normalise(name: str) -> str:
    """A header cell as every reader of a CSV set compares it (exact and PDQ columns)."""
    return _normalise(name)


def category_column(keys: list[str]) -> int | None:
    """The category column among normalised header cells: ``category``, nothing else. The
    PDQ reader (``perceptual.sets``) asks here too, so both columns of a row share it."""
    return keys.index("category") if "category" in keys else None


def pdq_columns(keys: list[str]) -> tuple[int | None, int | None]:
    """(pdq column, its quality column) among normalised header cells."""
    pdq = next((keys.index(k) for k in _PDQ_COLUMNS if k in keys), None)
    quality = next((keys.index(k) for k in PDQ_QUALITY_COLUMNS if k in keys), None)
    return pdq, quality


def delimiter_of(header: str) -> str | None:
    """The delimiter the exact reader uses for this header (None: it names no hash column)."""
    sniffed = _sniff(header)
    return sniffed[0] if sniffed else None


def category_of(row: list[str], index: int | None) -> str | None:
    """A row's category cell: stripped, empty means none."""
    return (_cell(row, index) or "").strip() or None


def skipped_row(row: list[str]) -> bool:
    """Blank rows and rows whose first cell starts with '#' are not records."""
    return not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#")


def _cell(row: list[str], index: int | None) -> str | None:
    return row[index] if index is not None and index < len(row) else None


class _Columns:
    """Where a format's values sit in a row, and how one row becomes a record."""

    def __init__(
        self,
        hashes: dict[str, int],
        *,
        size: int | None = None,
        size_name: str = "size",
        category: Callable[[list[str]], str | None] | None = None,
        missing: str = "no hash value",
    ) -> None:
        self.hashes = hashes
        self.size = size
        self.size_name = size_name
        self.category = category
        self.missing = missing

    def add_one(self, builder: HashSetBuilder, lineno: int, row: list[str]) -> None:
        """The per-record path: exact messages for every kind of bad row."""
        try:
            size = parse_size(_cell(row, self.size))
        except ValueError:
            builder.malformed(lineno, f"{self.size_name} {shorten(_cell(row, self.size))} is not a number")
            return
        label = self.category(row) if self.category else None
        hashes = [(alg, _cell(row, index)) for alg, index in self.hashes.items()]
        builder.add(lineno, hashes, label, size, missing=self.missing)

    def add_all(self, builder: HashSetBuilder, rows: Iterator[tuple[int, list[str]]]) -> None:
        """Every row, in vectorised batches; odd rows fall back to ``add_one``."""
        batch: list[tuple[int, list[str]]] = []
        for item in rows:
            batch.append(item)
            if len(batch) >= _BATCH:
                self._flush(builder, batch)
                batch = []
        self._flush(builder, batch)

    def _flush(self, builder: HashSetBuilder, batch: list[tuple[int, list[str]]]) -> None:
        if not batch:
            return
        hashes = {alg: [_cell(row, index) for _, row in batch] for alg, index in self.hashes.items()}
        categories = [self.category(row) for _, row in batch] if self.category else None
        sizes = None
        if self.size is not None:
            sizes = [_size_or_invalid(_cell(row, self.size)) for _, row in batch]
        builder.add_columns(hashes, categories, sizes, lambda i: self.add_one(builder, *batch[i]))


def _size_or_invalid(cell: str | None) -> int | None:
    try:
        return parse_size(cell)
    except ValueError:
        return -1  # add_columns sends the row to add_one, which reports it


def _label(index: int | None) -> Callable[[list[str]], str | None] | None:
    if index is None:
        return None
    return lambda row: category_of(row, index)


class CsvParser:
    """CSV/TSV with a header row naming md5/sha1/sha256 columns, optional category and size."""

    id = "csv"
    description = "CSV/TSV with a header naming md5, sha1 or sha256 columns (plus category, size)"

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        return text is not None and _sniff(first_line(text)) is not None

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        with open_text(path, newline="") as stream:
            header, lines = _header(stream, builder)
            sniffed = _sniff(header)
            if sniffed is None:
                raise builder.fail(1, f"header names no md5, sha1 or sha256 column: {shorten(header)}")
            delimiter, cells = sniffed
            keys = [_normalise(cell) for cell in cells]
            hashes: dict[str, int] = {}
            for index, key in enumerate(keys):
                if key in _HASH_COLUMNS:
                    hashes.setdefault(_HASH_COLUMNS[key], index)
            size = next((keys.index(k) for k in _SIZE_COLUMNS if k in keys), None)
            columns = _Columns(
                hashes,
                size=size,
                size_name=cells[size].strip() if size is not None else "size",
                category=_label(category_column(keys)),
                missing="no value in column(s) " + ", ".join(cells[i].strip() for i in hashes.values()),
            )
            rows = _rows(lines, delimiter, builder)
            pdq, quality = pdq_columns(keys)
            if pdq is not None and builder.pdq is not None:  # the PDQ column, same pass
                rows = _emit_pdq(rows, builder.pdq, pdq, quality, category_column(keys))
            if pdq is not None:
                rows = _without_pdq_only(rows, list(hashes.values()), pdq)
            columns.add_all(builder, rows)


def _emit_pdq(rows: Iterator[tuple[int, list[str]]], sink: Any, pdq: int, quality: int | None,
              category: int | None) -> Iterator[tuple[int, list[str]]]:
    """Hand each row's PDQ cell to ``sink`` (``perceptual.sets.PdqCollector``) on the way."""
    for lineno, row in rows:
        sink.row(f"line {lineno}", _cell(row, pdq), category_of(row, category),
                 _cell(row, quality))
        yield lineno, row


def _without_pdq_only(rows: Iterator[tuple[int, list[str]]], hashes: list[int],
                      pdq: int) -> Iterator[tuple[int, list[str]]]:
    """Rows that carry only a PDQ hash are not malformed: ``hashset import`` reads them in its
    PDQ pass (``pdqsection``); the exact-hash reader just passes them by."""
    for lineno, row in rows:
        if (_cell(row, pdq) or "").strip() and not any(
                (_cell(row, i) or "").strip() for i in hashes):
            continue
        yield lineno, row


_NSRL_ENTRY = "nsrlfile.txt"
_ZIP_MAGIC = b"PK\x03\x04"


def _nsrl_header(line: str) -> bool:
    cells = [_normalise(cell) for cell in _split(line, ",")]
    return bool(cells) and cells[0] == "sha1" and "filename" in cells


def _zip_entry(zf: zipfile.ZipFile) -> zipfile.ZipInfo | None:
    for info in zf.infolist():
        if info.filename.replace("\\", "/").rsplit("/", 1)[-1].lower() == _NSRL_ENTRY:
            return info
    return None


class NsrlRds2Parser:
    """Legacy NSRL RDS 2.x ``NSRLFile.txt`` (plain, or the ``NSRLFile.txt`` entry of a zip)."""

    id = "nsrl-rds2"
    description = 'NSRL RDS 2.x NSRLFile.txt (header "SHA-1","MD5",...), optionally zipped'
    default_kind = "known-good"

    def detect(self, head: bytes, path: Path) -> bool:
        if head.startswith(_ZIP_MAGIC):
            try:
                with zipfile.ZipFile(path) as zf:
                    info = _zip_entry(zf)
                    if info is None:
                        return False
                    with zf.open(info) as raw:
                        entry_head = raw.read(4096)
            except Exception:  # detection must never raise; a broken zip is "not this format"
                return False
            text = head_text(entry_head)
        else:
            text = head_text(head)
        return text is not None and _nsrl_header(first_line(text))

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        with open(path, "rb") as raw:
            is_zip = raw.read(4) == _ZIP_MAGIC
        if not is_zip:
            with open_text(path, newline="") as stream:
                self._parse(stream, builder)
            return
        with zipfile.ZipFile(path) as zf:
            info = _zip_entry(zf)
            if info is None:
                raise HashSetError(f"hash set {path}: zip archive has no NSRLFile.txt entry")
            builder.info["zip_entry"] = info.filename
            with zf.open(info) as raw_entry, text_stream(raw_entry, newline="") as stream:
                self._parse(stream, builder)

    @staticmethod
    def _parse(stream: IO[str], builder: HashSetBuilder) -> None:
        header, lines = _header(stream, builder)
        keys = [_normalise(cell) for cell in _split(header, ",")]
        if not keys or keys[0] != "sha1":
            raise builder.fail(1, f"not an NSRLFile.txt header: {shorten(header)}")
        columns = _Columns(
            {alg: keys.index(alg) for alg in ("sha1", "md5", "sha256") if alg in keys},
            size=keys.index("filesize") if "filesize" in keys else None,
            size_name="FileSize",
            missing="no SHA-1 or MD5 value",
        )
        columns.add_all(builder, _rows(lines, ",", builder))


_HASHKEEPER = ["fileid", "hashsetid", "filename", "directory", "hash"]


class HashKeeperParser:
    """HashKeeper ``.hsh`` CSV: quoted header ``"file_id","hashset_id","file_name",...``; ``hash`` is MD5."""

    id = "hashkeeper"
    description = 'HashKeeper CSV (header "file_id","hashset_id","file_name","directory","hash",...)'

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        if text is None:
            return False
        cells = [_normalise(c) for c in _split(first_line(text), ",")]
        return cells[:5] == _HASHKEEPER

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        with open_text(path, newline="") as stream:
            header, lines = _header(stream, builder)
            keys = [_normalise(c) for c in _split(header, ",")]
            if keys[:5] != _HASHKEEPER:
                raise builder.fail(1, f"not a HashKeeper header: {shorten(header)}")
            size = keys.index("filesize") if "filesize" in keys else None
            columns = _Columns({"md5": 4}, size=size, size_name="file_size", missing="empty hash field")
            columns.add_all(builder, _rows(lines, ",", builder))


_ICSE_COLUMNS = {"md5", "sha1", "imageid", "baseline"}
_YES = {"y", "yes", "t", "true", "1"}


class IcseParser:
    """Interpol ICSE hash export: ``;``-separated, columns found by name (MD5, SHA1, Baseline...).

    ICSE carries no category: every row is known-bad. Rows whose ``Baseline`` is yes (Interpol's
    "worst of" baseline) get the category ``baseline``, so that stays visible in matches.
    """

    id = "icse"
    description = "Interpol ICSE CSV export (';'-separated: MD5;SHA1;...;Image ID;...;Baseline)"

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        if text is None:
            return False
        return _ICSE_COLUMNS <= {_normalise(c) for c in _split(first_line(text), ";")}

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        with open_text(path, newline="") as stream:
            header, lines = _header(stream, builder)
            keys = [_normalise(c) for c in _split(header, ";")]
            if not _ICSE_COLUMNS <= set(keys):
                raise builder.fail(1, f"not an ICSE header (needs MD5, SHA1, Image ID, Baseline): {shorten(header)}")
            baseline = keys.index("baseline")

            def category(row: list[str]) -> str | None:
                return "baseline" if (_cell(row, baseline) or "").strip().lower() in _YES else None

            columns = _Columns({"md5": keys.index("md5"), "sha1": keys.index("sha1")}, category=category,
                               missing="no MD5 or SHA1 value")
            columns.add_all(builder, _rows(lines, ";", builder))
