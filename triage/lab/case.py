"""A lab case folder: its manifest (``case.toml``), its exhibits and its compiled hash sets.

``CASE_DIR/case.toml`` is written by ``triage lab submit`` (atomically, under ``flock`` on
``CASE_DIR/.case.lock`` so two submits cannot interleave) and read by the workers, ``lab
status``, ``triage case`` and ``triage rematch``. It names every exhibit with its evidence path
and task id, and the scan options every worker applies. The queue message carries only the case
folder and the exhibit name: the evidence, the hash sets and the outputs are paths on storage
every machine mounts at the same place, so no evidence byte and no hash set passes through Redis.

Layout::

    CASE_DIR/case.toml            the manifest
    CASE_DIR/hashsets/NAME.tdb    hash sets given raw, compiled once at submit
    CASE_DIR/EXHIBIT/             one exhibit: the same files as ``triage scan --out``
    CASE_DIR/.lab/EXHIBIT.json    what the lab workers did (attempts, hosts, a failure's reason)
    CASE_DIR/case.json, case.html the case view (``triage case``)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tomllib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.errors import ExitCode, UsageError
from triage.records import utc_now
from triage.run.report import OutputError
from triage.reports._escape import escape

MANIFEST = "case.toml"
FORMAT = "triage-lab-case/1"
HASHSETS = "hashsets"
LAB = ".lab"
LOCK = ".case.lock"
# names an exhibit folder may not take: the case's own files
RESERVED = {MANIFEST, HASHSETS, LAB, LOCK, "case.json", "case.html", ".case.json.tmp"}


class CaseError(UsageError):
    """A case folder that cannot be used as asked (exit 2)."""

    exit_code = ExitCode.USAGE


@dataclass
class Exhibit:
    name: str
    evidence: str
    task_id: str
    submitted: str

    def to_toml(self) -> dict[str, Any]:
        return {"name": self.name, "evidence": self.evidence, "task_id": self.task_id,
                "submitted": self.submitted}


@dataclass
class Case:
    """The manifest in memory."""

    path: Path
    id: str
    case: str = ""
    examiner: str = ""
    created: str = ""
    queue: str = "triage"
    scan: dict[str, Any] = field(default_factory=dict)
    hashset_sources: list[dict[str, Any]] = field(default_factory=list)
    exhibits: list[Exhibit] = field(default_factory=list)
    rematch_of: str = ""  # a re-matched case: the case folder it was derived from

    def exhibit(self, name: str) -> Exhibit:
        for ex in self.exhibits:
            if ex.name == name:
                return ex
        raise CaseError(f"{self.path}: no exhibit named {escape(name)!r} in {MANIFEST}")

    def out(self, exhibit: str) -> Path:
        return self.path / exhibit

    def lab_record(self, exhibit: str) -> Path:
        return self.path / LAB / f"{exhibit}.json"

    def to_toml(self) -> dict[str, Any]:
        top = {"format": FORMAT, "id": self.id, "case": self.case, "examiner": self.examiner,
               "created": self.created, "queue": self.queue}
        if self.rematch_of:
            top["rematch_of"] = self.rematch_of
        return {**top, "scan": self.scan, "hashset_sources": self.hashset_sources,
                "exhibit": [e.to_toml() for e in self.exhibits]}


def is_case(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def load(path: str | os.PathLike[str]) -> Case:
    """Read ``CASE_DIR/case.toml``; a folder that is not a lab case is a usage error."""
    folder = Path(path)
    try:
        data = tomllib.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseError(f"{folder}: not a triage lab case (no {MANIFEST}; "
                        "triage lab submit creates one)") from None
    except (OSError, UnicodeError, tomllib.TOMLDecodeError) as e:
        raise CaseError(f"{folder / MANIFEST}: unreadable ({e})") from None
    if data.get("format") != FORMAT:
        raise CaseError(f"{folder / MANIFEST}: not a triage lab case manifest "
                        f"(format {data.get('format')!r}, expected {FORMAT!r})")
    try:
        return Case(
            path=folder.absolute(), id=str(data["id"]), case=str(data.get("case", "")),
            examiner=str(data.get("examiner", "")), created=str(data.get("created", "")),
            queue=str(data.get("queue", "triage")), scan=dict(data.get("scan", {})),
            hashset_sources=list(data.get("hashset_sources", [])),
            exhibits=[Exhibit(str(e["name"]), str(e["evidence"]), str(e["task_id"]),
                              str(e.get("submitted", ""))) for e in data.get("exhibit", [])],
            rematch_of=str(data.get("rematch_of", "")))
    except (KeyError, TypeError, ValueError) as e:
        raise CaseError(f"{folder / MANIFEST}: damaged manifest ({type(e).__name__}: {e})") from None


def new_case(path: Path, case: str | None, examiner: str | None, queue: str) -> Case:
    return Case(path=path.absolute(), id=str(uuid.uuid4()), case=case or "",
                examiner=examiner or "", created=utc_now(), queue=queue)


def save(case: Case) -> None:
    """Atomically replace the manifest (temporary file, fsync, rename)."""
    text = dumps(case.to_toml())
    target = case.path / MANIFEST
    tmp = case.path / f".{MANIFEST}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as e:
        raise OutputError(f"{target}: cannot write ({e.strerror})") from None


class CaseLock:
    """``flock`` on ``CASE_DIR/.case.lock`` while the manifest is read, changed and written."""

    def __init__(self, folder: Path) -> None:
        try:
            self._fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutputError(f"{folder}: cannot create {LOCK} ({e.strerror})") from None

    def __enter__(self) -> "CaseLock":
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        os.close(self._fd)  # drops the flock


_BAD_NAME = re.compile(r"[/\\\x00]")


def check_exhibit_name(name: str) -> None:
    """An exhibit name is a folder name inside the case: no separators, no dot-names, nothing
    that escaping would change (controls, bidi overrides), none of the case's own names."""
    shown = escape(name)
    if (not name or len(name) > 200 or _BAD_NAME.search(name) or name.startswith(".")
            or shown != name or name in RESERVED or name.startswith("rematch-")):
        raise CaseError(f"exhibit name {shown!r} is not usable as a folder name in the case "
                        "(no '/', no leading '.', no control characters, not "
                        f"{', '.join(sorted(n for n in RESERVED if not n.startswith('.')))} or "
                        "rematch-*); give --exhibit-names")


def duplicate(names: list[str]) -> str | None:
    counts = Counter(names)
    for name in names:
        if counts[name] > 1:
            return name
    return None


def write_lab_record(case: Case, exhibit: str, update: dict[str, Any]) -> None:
    """Merge ``update`` into ``CASE_DIR/.lab/EXHIBIT.json`` (atomic replace); an ``attempt`` key
    is appended to the list of attempts. Best effort: the scan's own files are the result."""
    path = case.lab_record(exhibit)
    try:
        path.parent.mkdir(exist_ok=True)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {"exhibit": exhibit, "attempts": []}
        attempt = update.pop("attempt", None)
        if attempt is not None:
            data.setdefault("attempts", []).append(attempt)
        data.update(update)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def read_lab_record(case: Case, exhibit: str) -> dict[str, Any]:
    try:
        return json.loads(case.lab_record(exhibit).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# -- a small TOML writer: strings, numbers, booleans, lists of those, tables, arrays of tables --

def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise CaseError(f"{escape(v)!r}: a path or name that is not valid UTF-8 cannot be "
                            "recorded in a lab case") from None
        # JSON string escapes are TOML basic-string escapes; DEL must be escaped in TOML too
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _value(k)


def dumps(data: dict[str, Any]) -> str:
    lines = ["# triage lab case: written by `triage lab submit`, read by workers and "
             "`triage case`"]
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in data.items()
              if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)}
    for k, v in data.items():
        if k not in tables and k not in arrays and v is not None:
            if isinstance(v, list) and not v:
                continue  # an empty array of tables: nothing to write
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, table in tables.items():
        lines += ["", f"[{_key(k)}]"]
        lines += [f"{_key(a)} = {_value(b)}" for a, b in table.items() if b is not None]
    for k, items in arrays.items():
        for item in items:
            lines += ["", f"[[{_key(k)}]]"]
            lines += [f"{_key(a)} = {_value(b)}" for a, b in item.items() if b is not None]
    return "\n".join(lines) + "\n"
