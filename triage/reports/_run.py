"""Reading a finished (or interrupted) run folder: summary.json whole, files.jsonl streamed.

Reports are rendered from these two files only, never from the evidence, so ``triage report``
can re-render years later on a machine that has no access to the images.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import msgspec

from triage.errors import ExitCode, OutputError, TriageError, UsageError
from triage.records import ALGORITHMS, DEFAULT_ALGORITHMS, record_path

FILES = "files.jsonl"
SUMMARY = "summary.json"


class ReportError(TriageError):
    """A run folder whose files.jsonl or summary.json cannot be read as the scan wrote them
    (bad input, exit 2). A report that cannot be *written* is an ``OutputError`` (exit 5)."""

    exit_code = ExitCode.USAGE


def load_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY
    if not path.is_file():
        raise UsageError(f"{run_dir}: not a triage run folder (no {SUMMARY})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a JSON object")
    return data


_decode = msgspec.json.Decoder().decode


def iter_records(run_dir: Path, start: int = 0, end: int | None = None,
                 first_line: int = 1) -> Iterator[dict[str, Any]]:
    """One dict per line of files.jsonl (or of the lines from byte ``start``, a line start, up
    to byte ``end``); constant memory whatever the number of records."""
    return _iter(run_dir, False, start, end, first_line)  # type: ignore[return-value]


# A line holding all three can be no hit, no near-duplicate and no error: an unmatched file.
# (Inside a JSON string a quote is escaped, so a file name cannot fake these key/value pairs.)
_PLAIN = (b'"matches":[]', b'"error":null', b'"category":"unknown"')
_VIDEO = b'"vpdq_matches":[{'  # ... unless a video near match (--vpdq) is on the line


def iter_notable(run_dir: Path) -> Iterator[dict[str, Any] | None]:
    """As ``iter_records``, but an unmatched file without error (category ``unknown``, the
    bulk of any device) comes as None, not decoded: reports that list hits and errors skim."""
    return _iter(run_dir, True)


def _iter(run_dir: Path, skim: bool, start: int = 0, end: int | None = None,
          first_line: int = 1) -> Iterator[dict[str, Any] | None]:
    path = run_dir / FILES
    if not path.is_file():
        return
    a, b, c = _PLAIN
    pos = start
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            for n, line in enumerate(fh, first_line):
                if end is not None and pos >= end:
                    return
                pos += len(line)
                if skim and a in line and b in line and c in line and _VIDEO not in line:
                    yield None
                    continue
                if not line.strip():
                    continue
                try:
                    record = _decode(line)
                except msgspec.DecodeError:
                    # lines of runs before schema 1.2 carried \udcXX escapes, which msgspec
                    # refuses and json keeps
                    record = _slow_decode(line, path, n)
                    if record is None:
                        return
                if not isinstance(record, dict):
                    raise ReportError(f"{path}:{n}: not a JSON record: not an object")
                if record.get("path_bytes"):  # a name that is not UTF-8: reports show its bytes
                    record["path"] = record_path(record)
                yield record
    except OSError as e:
        raise ReportError(f"{path}: cannot read ({e.strerror})") from None


def split_lines(run_dir: Path) -> list[tuple[int, int | None, int, int]]:
    """files.jsonl cut in two at a line boundary, so two processes can render one large report
    side by side: per half ``(start byte, end byte, its first line's number, records before)``."""
    path = run_dir / FILES
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(size // 2)
        fh.readline()
        middle = fh.tell()
        if middle >= size:
            return [(0, None, 1, 0)]
        fh.seek(0)
        lines = records = 0
        for line in fh:
            lines += 1
            records += bool(line.strip())
            if fh.tell() >= middle:
                break
    return [(0, middle, 1, 0), (middle, None, lines + 1, records)]


def _slow_decode(line: bytes, path: Path, n: int) -> dict[str, Any] | None:
    try:
        return json.loads(line.decode("utf-8"))
    except ValueError as e:
        if not line.endswith(b"\n"):
            return None  # a scan killed mid-write leaves a torn last line: stop there
        raise ReportError(f"{path}:{n}: not a JSON record: {e}") from None


def algorithms(summary: dict[str, Any]) -> tuple[str, ...]:
    """Hash columns of derived reports: md5/sha1/sha256 always, plus any other the run used."""
    used = set(summary.get("options", {}).get("algorithms") or ()) | set(DEFAULT_ALGORITHMS)
    return tuple(a for a in ALGORITHMS if a in used)


@contextmanager
def atomic_text(path: Path, encoding: str = "utf-8") -> Iterator[TextIO]:
    """Write beside ``path`` and rename at the end: a reader never sees half a report, and a
    failed re-render leaves the previous report in place. A write that fails (disk full,
    read-only folder, a directory in the report's place) is an ``OutputError``: exit 5."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            yield fh
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(tmp)
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(tmp: Path) -> None:
    """Remove a temporary report; one that cannot be removed (a directory in its place, a
    read-only folder) must not replace the error being reported."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass
