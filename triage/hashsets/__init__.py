"""Hash-set loading: detect a file's format, parse it, return a normalised ``HashSet``.

Every format is one ``Parser`` in ``FORMATS``; detection tries them in table order (most specific
first), so adding a format means adding one row, not another branch.
"""

from __future__ import annotations

import csv
import hashlib
import os
import stat
import zipfile
import zlib
from pathlib import Path

import ijson

from triage.categories import KINDS
from triage.errors import HashSetError
from triage.hashsets._base import HEAD_SIZE, Parser
from triage.hashsets._builder import HashSetBuilder
from triage.hashsets.csvsets import CsvParser, NsrlRds2Parser
from triage.hashsets.model import HashSet
from triage.hashsets.text import HashdeepParser, Md5sumParser
from triage.hashsets.vics import VicsParser

__all__ = ["FORMATS", "HashSet", "Parser", "load_hashset"]

FORMATS: dict[str, Parser] = {
    parser.id: parser
    for parser in (VicsParser(), HashdeepParser(), NsrlRds2Parser(), CsvParser(), Md5sumParser())
}

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
    RuntimeError,  # encrypted zip entry; NotImplementedError: unsupported zip compression
)


def load_hashset(
    path: str | os.PathLike[str],
    *,
    kind: str = "known-bad",
    lenient: bool = False,
    format: str | None = None,
    name: str | None = None,
) -> HashSet:
    """Load one hash-set file.

    Malformed records raise ``HashSetError`` naming file and line, or are skipped and counted
    when ``lenient``. Any unreadable or unrecognisable input raises ``HashSetError``, never
    another exception, so the CLI can report it in one line.
    """
    if kind not in KINDS:
        raise HashSetError(f"unknown hash-set kind {kind!r} (expected one of: {', '.join(KINDS)})")
    file = Path(path)
    head = _read_head(file)
    parser = _choose(file, head, format)
    builder = HashSetBuilder(os.fspath(path), lenient=lenient)
    try:
        parser.parse(file, builder)
        with open(file, "rb") as stream:
            sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
    except HashSetError:
        raise
    except _READ_ERRORS as exc:
        raise HashSetError(f"hash set {file}: cannot read as {parser.id}: {exc}") from exc
    return builder.build(name=name or file.stem, kind=kind, format=parser.id, sha256=sha256)


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
            raise HashSetError(
                f"unknown hash-set format {format!r} (valid: {', '.join(FORMATS)})"
            ) from None
    for parser in FORMATS.values():
        if parser.detect(head, file):
            return parser
    raise HashSetError(
        f"hash set {file}: not a recognised hash-set format (expected VICS JSON, hashdeep, "
        "NSRL RDS 2.x NSRLFile.txt, CSV with a md5/sha1/sha256 header column, or md5sum lines; "
        f"force one with format: {', '.join(FORMATS)})"
    )
