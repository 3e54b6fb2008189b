"""The resume journal: an append-only log of finished tasks.

A task's lines go to files.jsonl first, then one journal line saying which task finished, the
size files.jsonl had after its lines, what it discovered (subdirectories, large files handed
on) and its counters. Resuming truncates files.jsonl to the last journalled size (dropping any
half-written tail), and reschedules exactly the work that no journal line covers.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from triage.records import FileRecord, record_from_state, record_state
from triage.run.report import OutputError
from triage.run.results import Tally
from triage.filesystems.walk import DirRef

JOURNAL = ".triage-journal.jsonl"

DirKey = tuple[int, int, str, int]  # volume index, directory address, path, slice start


def dir_key(volume: int, d: DirRef, start: int) -> DirKey:
    return (volume, d.addr, d.path, start)


def _dir_out(d: DirRef) -> list[Any]:
    """Without its ancestors: a directory's are its parent's plus itself (every walk builds
    them so), rebuilt by ``replay``. Writing them would make the journal grow with the square
    of the depth (111 MB for one chain 4,096 directories deep)."""
    return [d.addr, d.path, None, d.in_orphans]


def _dir_in(x: list[Any], parent: frozenset[int]) -> DirRef:
    """``parent``: the ancestors of the directory that found this one (a root: empty).
    Journals written before ancestors were left out carry them."""
    ancestors = frozenset(x[2]) if x[2] is not None else parent | {x[0]}
    return DirRef(x[0], x[1], ancestors, x[3])


def _tally_out(t: Tally) -> dict[str, Any]:
    out = asdict(t)
    out["categories"] = dict(t.categories)
    out["census"] = dict(t.census)
    return out


def _tally_in(x: dict[str, Any]) -> Tally:
    t = Tally(**{k: v for k, v in x.items() if k not in ("categories", "census")})
    t.categories.update(x["categories"])
    t.census.update(x.get("census", {}))
    return t


class Journal:
    def __init__(self, out: Path, append: bool) -> None:
        self._path = out / JOURNAL
        try:
            self._fh = open(self._path, "a" if append else "w", encoding="utf-8")
        except OSError as e:
            raise OutputError(f"{self._path}: cannot write ({e.strerror})") from None

    def _write(self, entry: dict[str, Any]) -> None:
        try:
            self._fh.write(json.dumps(entry, separators=(",", ":")) + "\n")  # ASCII-safe
            self._fh.flush()
        except OSError as e:  # disk full: a torn last line is dropped by replay
            raise OutputError(f"{self._path}: write failed ({e.strerror})") from None

    def sync(self) -> None:
        """Durable before the run may say complete."""
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as e:
            raise OutputError(f"{self._path}: cannot sync ({e.strerror})") from None

    def dir_done(self, volume: int, d: DirRef, start: int, end: int, subdirs: list[DirRef],
                 more: int | None, deferred: list[FileRecord], tally: Tally,
                 notes: list[str]) -> None:
        self._write({"k": "dir", "v": volume, "d": _dir_out(d), "s": start, "end": end,
                     "sub": [_dir_out(s) for s in subdirs], "more": more,
                     "def": [record_state(r) for r in deferred], "t": _tally_out(tally),
                     "notes": notes})

    def files_done(self, volume: int, records: list[FileRecord], end: int, tally: Tally) -> None:
        self._write({"k": "files", "v": volume, "ids": [[r.inode, r.path] for r in records],
                     "end": end, "t": _tally_out(tally)})

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass  # its buffer could not be flushed (disk full): replay drops the torn line


@dataclass
class Replay:
    end: int = 0
    journal_end: int = 0  # bytes of the journal that hold whole, usable entries
    done_dirs: set[DirKey] = field(default_factory=set)
    found_dirs: dict[DirKey, tuple[int, DirRef, int]] = field(default_factory=dict)
    deferred: dict[tuple[int, str, str], FileRecord] = field(default_factory=dict)
    done_files: set[tuple[int, str, str]] = field(default_factory=set)
    tallies: dict[int, Tally] = field(default_factory=dict)
    notes: dict[int, list[str]] = field(default_factory=dict)

    def pending_dirs(self) -> list[tuple[int, DirRef, int]]:
        return [v for k, v in self.found_dirs.items() if k not in self.done_dirs]

    def pending_files(self) -> list[tuple[int, FileRecord]]:
        return [(k[0], r) for k, r in self.deferred.items() if k not in self.done_files]


def replay(out: Path) -> Replay:
    """Read the journal; a torn last line (crash mid-write, disk full) ends it, and so does
    an entry vouching for more of files.jsonl than is on disk (lost in a power cut)."""
    r = Replay()
    path = out / JOURNAL
    if not path.exists():
        return r
    files = out / "files.jsonl"
    have = files.stat().st_size if files.exists() else 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                e = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if e["end"] > have:
                break
            r.journal_end += len(line)
            v = e["v"]
            r.end = max(r.end, e["end"])
            r.tallies.setdefault(v, Tally()).add(_tally_in(e["t"]))
            if e["k"] == "dir":
                d = _dir_in(e["d"], frozenset())
                key = dir_key(v, d, e["s"])
                found = r.found_dirs.pop(key, None)  # done: only its ancestors are needed
                if found is not None:
                    d = found[1]
                r.done_dirs.add(key)
                for s in (_dir_in(x, d.ancestors) for x in e["sub"]):
                    r.found_dirs[dir_key(v, s, 0)] = (v, s, 0)
                if e["more"] is not None:
                    r.found_dirs[dir_key(v, d, e["more"])] = (v, d, e["more"])
                for state in e["def"]:
                    rec = record_from_state(state)
                    r.deferred[(v, rec.inode, rec.path)] = rec
                r.notes.setdefault(v, []).extend(e["notes"])
            else:
                for inode, p in e["ids"]:
                    r.done_files.add((v, inode, p))
    return r


def truncate(path: Path, size: int) -> None:
    """Cut files.jsonl (or the journal) back to what the journal vouches for."""
    try:
        with open(path, "r+b") as fh:
            fh.truncate(size)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        raise OutputError(f"{path}: cannot cut back to {size} bytes ({e.strerror})") from None
