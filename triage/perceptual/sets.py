"""PDQ hash-set files (``--pdq-set``, and the PDQ column of a ``--hashset``/``hashset import``
source): parsed into a ``PdqSet``.

Formats (told apart by their first bytes):

- a plain list: one 64-hex PDQ hash per line (blank lines and ``#`` comments ignored; anything
  after the hash on a line, such as a quality, is ignored);
- CSV/TSV with a header naming a ``pdq`` column, and optionally ``category`` and ``quality``
  (rows with a known quality under 50 are dropped, as PDQ's authors advise; an empty ``pdq``
  cell means "no PDQ for this row", as in a CSV that also carries md5/sha1 columns);
- Project VIC VICS JSON: every media whose ``AlternativeHashes`` carry ``HashName`` "PDQ"
  (``HashValue`` is the hash, the media's ``Category`` its category); streamed with ijson.

One set of rules with the exact readers: a media's category, and whether a media or row is
refused, are decided by the hash-set parsers' own functions (``hashsets.vics.check_media``,
``hashsets.csvsets.category_column``), so one file never gives a media one category through
its MD5 and another through its PDQ hash (tests/test_pdq_rules.py). NIST CAID's ``Category``
is ignored here as there.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from triage.errors import HashSetError
from triage.hashsets.csvsets import (
    PDQ_COLUMNS,
    category_column,
    category_of,
    delimiter_of,
    normalise,
    pdq_columns,
    skipped_row,
)
from triage.hashsets.vics import check_media, uses_category
from triage.perceptual.index import MIN_QUALITY, PdqSet

_HEX64 = re.compile(rb"[0-9a-fA-F]{64}")
_SPLIT = re.compile(rb"[\s,;|]+")
_BLOCK = 16 << 20  # bytes of a plain list decoded at a time (read at call time)


class PdqCollector:
    """The PDQ hashes of one source, collected with one set of rules: by ``load_pdq_set`` for a
    PDQ set, and by the exact hash-set parsers themselves (``HashSetBuilder.pdq``) while they
    read the same file, so a VICS/CSV source with a PDQ column is parsed once for both.

    ``sink`` (a callable taking hashes, codes and the labels so far, e.g. ``PdqRows.feed()``):
    each block goes there as it is parsed instead of being kept, so a source of any size costs
    a block of memory (a scan's ``--pdq-set``, ``hashset import --format pdq``)."""

    def __init__(self, path: str, lenient: bool,
                 sink: Callable[[np.ndarray, np.ndarray, list[str | None]], None] | None = None
                 ) -> None:
        self.path, self.lenient, self.sink = path, lenient, sink
        self.streamed = 0  # hashes handed to the sink
        self.blocks: list[np.ndarray] = []
        self.code_blocks: list[np.ndarray] = []
        self.pending: list[bytes] = []
        self.pending_codes: list[int] = []
        self.labels: list[str | None] = [None]
        self._codes: dict[str | None, int] = {None: 0}
        self.skipped = 0
        self.dropped = 0
        self.seen = False  # a PDQ column or AlternativeHashes was met (even if empty)

    def code(self, category: str | None) -> int:
        c = self._codes.get(category)
        if c is None:
            if len(self.labels) >= 65535:
                raise HashSetError(f"PDQ set {self.path}: more than 65,535 categories")
            c = self._codes[category] = len(self.labels)
            self.labels.append(category)
        return c

    def media(self, where: str, media: dict[str, Any], use_category: bool) -> None:
        """One VICS media object's ``AlternativeHashes`` named PDQ."""
        self.seen = True
        _vics_media(self, where, media, use_category)

    def row(self, where: str, value: str | None, category: str | None,
            quality: str | None) -> None:
        """One CSV row's ``pdq`` cell (``None``: the row has no such column)."""
        self.seen = True
        if value is None:
            self.malformed(where, "no pdq column")
            return
        value = value.strip()
        if not value:  # absent (a row of a combined exact + PDQ export)
            return
        if len(value) != 64 or not _HEX64.fullmatch(value.encode("ascii", "replace")):
            self.malformed(where, f"not a 64-hex PDQ hash: {_show(value)}")
            return
        if quality is not None and quality.strip():
            try:
                if float(quality) < MIN_QUALITY:
                    self.dropped += 1
                    return
            except ValueError:
                self.malformed(where, f"quality is not a number: {_show(quality)}")
                return
        self.add(value, category)

    def malformed(self, where: str, why: str) -> None:
        if not self.lenient:
            raise HashSetError(f"PDQ set {self.path}: {where}: {why}")
        self.skipped += 1

    def add(self, hex_hash: bytes | str, category: str | None = None) -> None:
        self.pending.append(bytes.fromhex(hex_hash if isinstance(hex_hash, str)
                                          else hex_hash.decode("ascii")))
        self.pending_codes.append(self.code(category))
        if len(self.pending) >= 1 << 16:
            self.flush()

    def add_block(self, hashes: np.ndarray, code: int = 0) -> None:
        self.flush()
        self._keep(hashes, np.full(len(hashes), code, np.uint16))

    def flush(self) -> None:
        if self.pending:
            self._keep(np.frombuffer(b"".join(self.pending), np.uint8).reshape(-1, 32),
                       np.array(self.pending_codes, np.uint16))
            self.pending, self.pending_codes = [], []

    def _keep(self, hashes: np.ndarray, codes: np.ndarray) -> None:
        if self.sink is None:
            self.blocks.append(hashes)
            self.code_blocks.append(codes)
            return
        zero = ~hashes.any(axis=1)  # as ``result`` drops them from the whole set
        if zero.any():
            self.dropped += int(zero.sum())
            hashes, codes = hashes[~zero], codes[~zero]
        self.sink(hashes, codes, self.labels)
        self.streamed += len(hashes)

    def result(self, name: str, fmt: str, sha256: str) -> PdqSet:
        self.flush()
        if self.sink is not None:  # every label reaches the sink, as a whole set would give
            self.sink(np.zeros((0, 32), np.uint8), np.zeros(0, np.uint16), self.labels)
            return PdqSet(name, self.path, fmt, sha256, np.zeros((0, 32), np.uint8),
                          np.zeros(0, np.uint16), self.labels, self.skipped, self.dropped,
                          streamed=self.streamed)
        hashes = np.concatenate(self.blocks) if self.blocks else np.zeros((0, 32), np.uint8)
        codes = np.concatenate(self.code_blocks) if self.code_blocks else np.zeros(0, np.uint16)
        zero = ~hashes.any(axis=1)
        if zero.any():
            self.dropped += int(zero.sum())
            hashes, codes = hashes[~zero], codes[~zero]
        return PdqSet(name, self.path, fmt, sha256, hashes, codes, self.labels,
                      self.skipped, self.dropped)


class _HashingReader(io.RawIOBase):
    """A binary file that hashes what is read through it (the set's sha256, in one pass)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self._fh.readinto(buf)
        if n:
            self.sha.update(memoryview(buf)[:n])
        return n or 0


def sniff(head: bytes) -> tuple[str, str]:
    """(format, encoding) from the first bytes."""
    encoding = "utf-8"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
        head = head.decode("utf-16", errors="replace").encode("utf-8")
    elif head.startswith(codecs.BOM_UTF8):
        head = head[3:]
    text = head.lstrip()
    if text.startswith((b"{", b"[")):
        return "vics", encoding
    first = text.split(b"\n", 1)[0]
    names = [normalise(c.decode("utf-8", "replace")) for c in re.split(rb"[,;\t]", first)]
    if any(c in names for c in PDQ_COLUMNS):
        return "pdq-csv", encoding
    return "pdq-list", encoding


def load_pdq_set(path: str | os.PathLike[str], lenient: bool = False,
                 name: str | None = None,
                 sink: Callable[[np.ndarray, np.ndarray, list[str | None]], None] | None = None
                 ) -> PdqSet:
    """Parse one PDQ set (format sniffed). Malformed entries raise ``HashSetError`` naming the
    line, or are skipped and counted when ``lenient``. With ``sink`` the hashes go there as
    they are parsed (``PdqCollector``) and the set comes back with ``streamed`` counted."""
    p = str(path)
    try:
        fh = open(p, "rb")
    except OSError as e:
        raise HashSetError(f"PDQ set {p}: cannot read ({e.strerror})") from None
    with fh:
        head = fh.read(4096)
        fh.seek(0)
        fmt, encoding = sniff(head)
        reader = _HashingReader(fh)
        builder = PdqCollector(p, lenient, sink)
        try:
            if fmt == "vics":
                _load_vics(builder, io.BufferedReader(reader, 1 << 20), encoding, head)
            elif encoding != "utf-8":
                _load_text(builder, fmt, io.TextIOWrapper(io.BufferedReader(reader, 1 << 20),
                                                          encoding=encoding, newline=""))
            elif fmt == "pdq-csv":
                _load_text(builder, fmt, io.TextIOWrapper(io.BufferedReader(reader, 1 << 20),
                                                          encoding="utf-8-sig",
                                                          errors="replace", newline=""))
            else:
                _load_list(builder, io.BufferedReader(reader, 1 << 20))
            while reader.readinto(bytearray(1 << 20)):  # the rest, for the sha256
                pass
        except OSError as e:
            raise HashSetError(f"PDQ set {p}: read error ({e})") from None
    return builder.result(name or os.path.basename(p), fmt, reader.sha.hexdigest())


def _load_list(builder: PdqCollector, fh: BinaryIO) -> None:
    """Plain list; the fast path decodes a whole block of clean lines with one ``fromhex``."""
    line_no = 0
    rest = b""
    while True:
        block = fh.read(_BLOCK)
        data = rest + block
        if not block:
            rest = b""
        else:
            cut = data.rfind(b"\n") + 1
            data, rest = data[:cut], data[cut:]
        if data:
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            tokens = data.split()
            joined = b"".join(tokens)
            if (len(joined) == 64 * len(tokens) and len(tokens) == lines
                    and b"#" not in data):
                try:
                    arr = np.frombuffer(bytes.fromhex(joined.decode("ascii")), np.uint8)
                except (ValueError, UnicodeDecodeError):
                    arr = None
                if arr is not None:
                    if len(arr):
                        builder.add_block(arr.reshape(-1, 32))
                    line_no += lines
                    if not block:
                        return
                    continue
            for line in data.splitlines():
                line_no += 1
                _list_line(builder, line, line_no)
        if not block:
            return


def _list_line(builder: PdqCollector, line: bytes, line_no: int) -> None:
    text = line.strip()
    if not text or text.startswith(b"#"):
        return
    first = _SPLIT.split(text, 1)[0]
    if len(first) != 64 or not _HEX64.fullmatch(first):
        builder.malformed(f"line {line_no}", f"not a 64-hex PDQ hash: {_show(first)}")
        return
    builder.add(first)


def _show(value: object) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _load_text(builder: PdqCollector, fmt: str, text: io.TextIOBase) -> None:
    if fmt == "pdq-list":  # UTF-16 plain list (rare): line by line
        for n, line in enumerate(text, 1):
            _list_line(builder, line.encode("utf-8", "replace"), n)
        return
    header_line = text.readline()
    # the exact reader's delimiter, header names and category column: one set of rules
    delimiter = (delimiter_of(header_line.rstrip("\r\n"))
                 or max((",", ";", "\t"), key=header_line.count))
    header = next(csv.reader([header_line], delimiter=delimiter))
    names = [normalise(c) for c in header]
    col, qual = pdq_columns(names)
    assert col is not None  # sniffed as pdq-csv
    cat = category_column(names)
    for n, row in enumerate(csv.reader(text, delimiter=delimiter), 2):
        if not row or skipped_row(row):
            continue
        builder.row(f"line {n}", row[col] if col < len(row) else None, category_of(row, cat),
                    row[qual] if qual is not None and qual < len(row) else None)


class _Utf8Reader:
    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text

    def read(self, size: int = -1) -> bytes:
        return self._text.read(size).encode("utf-8", "surrogatepass")


def _load_vics(builder: PdqCollector, raw: io.BufferedReader, encoding: str, head: bytes) -> None:
    import ijson

    use_category = uses_category(head)
    source: Any = raw
    if encoding == "utf-16":
        source = _Utf8Reader(io.TextIOWrapper(raw, encoding="utf-16", errors="replace"))
    elif raw.peek(3)[:3] == codecs.BOM_UTF8:
        raw.read(3)
    index = -1
    try:
        for item in ijson.items(source, "value.item"):
            index += 1
            if not isinstance(item, dict):
                builder.malformed(f"value[{index}]", "expected a Media or Case object")
                continue
            nested = item.get("Media")
            if isinstance(nested, list):  # a #Cases document: media inside each case
                for j, media in enumerate(nested):
                    if isinstance(media, dict):
                        _vics_media(builder, f"value[{index}].Media[{j}]", media,
                                    use_category)
            else:
                _vics_media(builder, f"value[{index}]", item, use_category)
    except ijson.JSONError as e:
        raise HashSetError(f"PDQ set {builder.path}: not valid JSON ({e})") from None


def _vics_media(builder: PdqCollector, where: str, media: dict[str, Any], use_category: bool) -> None:
    alternatives = media.get("AlternativeHashes")
    if not isinstance(alternatives, list):
        return
    category: str | None = None
    checked: Any = None
    for k, alt in enumerate(alternatives):
        if not isinstance(alt, dict):
            continue
        if str(alt.get("HashName") or "").strip().upper() != "PDQ":
            continue
        value = alt.get("HashValue")
        text = value.strip() if isinstance(value, str) else ""
        if len(text) != 64 or not _HEX64.fullmatch(text.encode("ascii", "replace")):
            builder.malformed(f"{where}.AlternativeHashes[{k}]",
                              f"HashValue is not a 64-hex PDQ hash: {_show(value)}")
            continue
        if checked is None:  # the exact reader's rules for the media (category, fields)
            checked = check_media(media, use_category, need_digest=False)
            if isinstance(checked, str):
                builder.malformed(where, checked)
                return
            category = checked[1]
        builder.add(text, category)


