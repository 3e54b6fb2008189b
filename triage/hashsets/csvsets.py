"""Delimited hash sets read by header names: generic CSV/TSV and legacy NSRL ``NSRLFile.txt``."""

from __future__ import annotations

import csv
import string
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from triage.errors import HashSetError
from triage.hashsets._base import Lines, LineTooLong, first_line, head_text, open_text, text_stream
from triage.hashsets._builder import HashSetBuilder, parse_size, shorten

_DELIMITERS = (",", ";", "\t")
_HASH_COLUMNS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256"}


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


def _cell(row: list[str], index: int | None) -> str | None:
    return row[index] if index is not None and index < len(row) else None


class CsvParser:
    """CSV/TSV with a header row naming md5/sha1/sha256 columns and an optional category column."""

    id = "csv"
    description = "CSV/TSV with a header naming a md5, sha1 or sha256 column"

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
            columns: dict[str, int] = {}
            for index, key in enumerate(keys):
                if key in _HASH_COLUMNS:
                    columns.setdefault(_HASH_COLUMNS[key], index)
            category = keys.index("category") if "category" in keys else None
            missing = "no value in column(s) " + ", ".join(cells[i].strip() for i in columns.values())
            for lineno, row in _rows(lines, delimiter, builder):
                label = (_cell(row, category) or "").strip() or None
                hashes = [(alg, _cell(row, index)) for alg, index in columns.items()]
                builder.add(lineno, hashes, label, missing=missing)


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
            with zf.open(info) as raw_entry, text_stream(raw_entry, newline="") as stream:
                self._parse(stream, builder)

    @staticmethod
    def _parse(stream: IO[str], builder: HashSetBuilder) -> None:
        header, lines = _header(stream, builder)
        keys = [_normalise(cell) for cell in _split(header, ",")]
        if not keys or keys[0] != "sha1":
            raise builder.fail(1, f"not an NSRLFile.txt header: {shorten(header)}")
        columns = {alg: keys.index(alg) for alg in ("sha1", "md5", "sha256") if alg in keys}
        size_column = keys.index("filesize") if "filesize" in keys else None
        for lineno, row in _rows(lines, ",", builder):
            try:
                size = parse_size(_cell(row, size_column))
            except ValueError:
                builder.malformed(lineno, f"FileSize {shorten(_cell(row, size_column))} is not a number")
                continue
            hashes = [(alg, _cell(row, index)) for alg, index in columns.items()]
            builder.add(lineno, hashes, None, size, missing="no SHA-1 or MD5 value")
