"""Submitting exhibits and asking how they are doing: the lab's client side.

``submit`` checks everything it can before anything is written or queued (paths exist, names
are usable and distinct, the folder is this case or a new one, the broker answers), compiles
raw hash sets once into ``CASE_DIR/hashsets/*.tdb`` (so no worker parses them again), records
the exhibits in ``case.toml`` and only then queues one task per exhibit. ``status`` reads the
exhibits' own files first (a finished exhibit is finished whatever Redis says) and asks Redis
for the rest: queued, running on which host with what progress, waiting to retry, failed and why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from triage.config import ORDERS, ScanOptions, fields
from triage.errors import UsageError
from triage.evidence.containers import check_kind, display_name
from triage.lab import case as cases
from triage.lab import settings
from triage.lab.worker import RUNNING, read_summary
from triage.records import utc_now
from triage.reports import parse_formats
from triage.reports._escape import escape


def lab_options(options: ScanOptions) -> dict[str, Any]:
    """The options a case records for its exhibits, as plain values (for case.toml): those of
    the description that a lab applies (each worker picks its own number of processes); one that
    a lab does not apply is refused rather than dropped."""
    values = msgspec.json.decode(msgspec.json.encode(options))
    for f in fields(ScanOptions):
        if not f.lab and f.name != "workers" and getattr(options, f.name) != f.default:
            raise UsageError(f"{f.flag}: not available in a lab case (give it to triage scan)")
    return {f.name: values[f.name] for f in fields(ScanOptions) if f.lab}


def ping(broker: str | None = None) -> str:
    """The broker URL, once Redis has answered; one clear line (exit 2) when it does not."""
    import redis

    url = settings.broker_url(broker)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5).ping()
    except (redis.exceptions.RedisError, ValueError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"broker {settings.shown_url(url)} unreachable ({reason}); start Redis "
                         f"there or give --broker URL / {settings.BROKER_ENV}") from None
    return url


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_tdb(path: str) -> bool:
    from triage.hashsets import tdb

    with open(path, "rb") as fh:
        return tdb.is_index(fh.read(len(tdb.MAGIC)))


def _set_names(paths: list[str]) -> list[str]:
    """The names a plain scan would give these sets (stem; file name when stems collide;
    then numbered), so a lab exhibit's matches read exactly like ``triage scan``'s."""
    from triage.hashsets import load_hashset

    names = [load_hashset(p).name if _is_tdb(p) else Path(p).stem for p in paths]
    stems = Counter(names)
    names = [Path(p).name if stems[n] > 1 else n for n, p in zip(names, paths)]
    counts, seen = Counter(names), Counter()
    out = []
    for n in names:
        if counts[n] > 1:
            seen[n] += 1
            n = f"{n} ({seen[n]})"
        out.append(n)
    return out


def _safe_file(name: str, taken: set[str]) -> str:
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "set"
    candidate, i = f"{base}.tdb", 1
    while candidate in taken:
        i += 1
        candidate = f"{base}-{i}.tdb"
    taken.add(candidate)
    return candidate


def compile_sets(folder: Path, hashsets: list[str], known_good: list[str],
                 lenient: bool) -> list[dict[str, Any]]:
    """Raw sources compiled once into ``folder/hashsets``; a ``.tdb`` is used where it lies."""
    from triage.matching.categories import KNOWN_BAD, KNOWN_GOOD
    from triage.hashsets import import_hashsets

    given = [(p, KNOWN_BAD) for p in hashsets] + [(p, KNOWN_GOOD) for p in known_good]
    names = _set_names([p for p, _ in given])
    taken: set[str] = set()
    target = folder / cases.HASHSETS
    out = []
    for (path, kind), name in zip(given, names):
        entry = {"path": path, "kind": kind, "name": name, "sha256": _sha256(path)}
        if _is_tdb(path):
            entry["compiled"] = path
        else:
            target.mkdir(parents=True, exist_ok=True)
            compiled = target / _safe_file(name, taken)
            import_hashsets([path], compiled, name=name, kind=kind, lenient=lenient, force=True)
            entry["compiled"] = str(compiled)
        out.append(entry)
    return out


@dataclasses.dataclass
class Submitted:
    case: cases.Case
    exhibits: list[cases.Exhibit]


def submit(case_dir: str | os.PathLike[str], evidence: list[str], hashsets: list[str] = (),
           known_good: list[str] = (), *, exhibit_names: list[str] | None = None,
           case: str | None = None, examiner: str | None = None, broker: str | None = None,
           queue: str | None = None, pdq_sets: list[str] = (),
           options: ScanOptions | None = None) -> Submitted:
    """Queue one scan per evidence item into ``case_dir/<exhibit>/``. A later submit into the
    same case adds exhibits (same hash sets and options); anything else is refused, with
    nothing written and nothing queued."""
    from triage.run.scan import parse_algorithms

    options = options or ScanOptions()
    folder = Path(case_dir).absolute()
    evidence = [os.path.abspath(e) for e in evidence]
    if not evidence:
        raise UsageError("no evidence given")
    for path in evidence:
        if not os.path.lexists(path):
            raise UsageError(f"evidence {escape(path)}: no such file or device")
        check_kind(path)
    sets = [os.path.abspath(p) for p in hashsets]
    good = [os.path.abspath(p) for p in known_good]
    pdqs = [os.path.abspath(p) for p in pdq_sets]
    for path in [*sets, *good, *pdqs]:
        if not os.path.isfile(path):
            raise UsageError(f"hash set {escape(path)}: no such file")
    options = msgspec.structs.replace(options,
                                      algorithms=parse_algorithms(options.algorithms))
    parse_formats(options.formats)
    if options.order not in ORDERS:
        raise UsageError(f"--order must be one of {', '.join(ORDERS)}")
    names = list(exhibit_names) if exhibit_names else [display_name(e) for e in evidence]
    if len(names) != len(evidence):
        raise UsageError(f"--exhibit-names: {len(names)} names for {len(evidence)} evidence items")
    for n in names:
        cases.check_exhibit_name(n)
    dup = cases.duplicate(names)
    if dup:
        raise UsageError(f"exhibit name {escape(dup)!r} given twice; name each exhibit "
                         "(--exhibit-names a,b,...)")
    existing = _check_folder(folder, case, names)
    url = ping(broker)
    folder.mkdir(parents=True, exist_ok=True)
    with cases.CaseLock(folder):
        existing = _check_folder(folder, case, names)  # again, under the lock
        scan = lab_options(options)
        if existing is None:
            the_case = cases.new_case(folder, case, examiner,
                                      queue or settings.DEFAULT_QUEUE)
            try:
                sources = compile_sets(folder, sets, good, options.lenient)
            except BaseException:  # a malformed set: leave the folder as it was found
                shutil.rmtree(folder / cases.HASHSETS, ignore_errors=True)
                raise
            the_case.hashset_sources = sources
            the_case.scan = {**scan, "hashsets": [s["compiled"] for s in sources
                                                  if s["kind"] == "known-bad"],
                             "known_good": [s["compiled"] for s in sources
                                            if s["kind"] == "known-good"],
                             "pdq_sets": pdqs}
        else:
            the_case = existing
            _check_same(the_case, sets, good, pdqs, scan)
        queue = queue or the_case.queue
        now = utc_now()
        new = [cases.Exhibit(n, e, str(uuid.uuid4()), now) for n, e in zip(names, evidence)]
        the_case.exhibits += new
        cases.save(the_case)
        try:
            _publish(url, the_case, new, queue)
        except Exception as e:  # noqa: BLE001 - nothing queued must not stay recorded
            the_case.exhibits = [x for x in the_case.exhibits if x not in new]
            cases.save(the_case)
            raise UsageError(f"broker {settings.shown_url(url)}: could not queue the exhibits "
                             f"({type(e).__name__}: {e}); nothing was submitted") from None
    return Submitted(the_case, new)


def _check_folder(folder: Path, case: str | None, names: list[str]) -> cases.Case | None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder")
    if cases.is_case(folder):
        existing = cases.load(folder)
        if existing.rematch_of:
            raise UsageError(f"{folder}: a re-matched copy of {existing.rematch_of}; "
                             "submit to a case folder")
        if case is not None and case != existing.case:
            raise UsageError(f"{folder}: holds another case ({escape(existing.case)!r}, not "
                             f"{escape(case)!r}); choose another case folder")
        taken = {x.name for x in existing.exhibits}
        for n in names:
            if n in taken:
                raise UsageError(f"{folder}: the case already has an exhibit named "
                                 f"{escape(n)!r}; give --exhibit-names")
        return existing
    if folder.is_dir() and any(p.name != cases.LOCK for p in folder.iterdir()):
        what = ("a triage scan's output" if (folder / "summary.json").exists()
                else "other files")
        raise UsageError(f"{folder}: not empty and not a triage lab case (it holds {what}); "
                         "give a new or empty folder, or this case's folder")
    return None


def _check_same(existing: cases.Case, sets: list[str], good: list[str], pdqs: list[str],
                scan: dict[str, Any]) -> None:
    """A case is matched against one collection of sets with one set of options."""
    if sets or good:
        before = [(s["kind"], s["sha256"]) for s in existing.hashset_sources]
        now = [("known-bad", _sha256(p)) for p in sets] + [("known-good", _sha256(p)) for p in good]
        if before != now:
            raise UsageError(f"{existing.path}: this case is matched against other hash sets; "
                             "use a new case folder (or triage rematch for new sets)")
    if pdqs and pdqs != existing.scan.get("pdq_sets", []):
        raise UsageError(f"{existing.path}: this case uses other PDQ sets")
    for key, value in scan.items():
        if existing.scan.get(key, value) != value:
            raise UsageError(f"{existing.path}: this case was submitted with {key} = "
                             f"{existing.scan.get(key)!r}, not {value!r}")


def _publish(url: str, the_case: cases.Case, new: list[cases.Exhibit], queue: str) -> None:
    from triage.lab.app import configure, scan_exhibit

    configure(url)
    policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
    for ex in new:
        scan_exhibit.apply_async(args=[str(the_case.path), ex.name], task_id=ex.task_id,
                                 queue=queue, retry=True, retry_policy=policy)


# -- status ------------------------------------------------------------------------------------

def _progress(meta: dict[str, Any]) -> dict[str, Any]:
    total, done = meta.get("bytes_total") or 0, meta.get("bytes_hashed") or 0
    return {"bytes_hashed": done, "bytes_total": total, "files": meta.get("files", 0),
            "percent": round(100.0 * done / total, 1) if total else None,
            "phase": meta.get("phase")}


def exhibit_status(the_case: cases.Case, ex: cases.Exhibit, app: Any) -> dict[str, Any]:
    """One exhibit: its files first, then the task's state in Redis."""
    out = the_case.out(ex.name)
    row: dict[str, Any] = {"name": ex.name, "evidence": ex.evidence, "task_id": ex.task_id,
                           "out": str(out)}
    summary = read_summary(out)
    record = cases.read_lab_record(the_case, ex.name)
    if summary and summary.get("complete"):
        row.update(state="done", exit_code=summary.get("exit_code"),
                   known_bad_files=(summary.get("totals") or {}).get("known_bad_files", 0),
                   categories=summary.get("categories", {}), resumed=bool(summary.get("resumed")),
                   host=summary.get("host"))
        return row
    if app is None:  # files only (the case view): what the folder says
        if record.get("status") == "failed":
            row.update(state="failed", reason=record.get("reason"), host=record.get("host"))
        elif summary:
            row.update(state="incomplete", reason=summary.get("incomplete_reason"))
        else:
            row.update(state="not started")
        return row
    from celery.result import AsyncResult

    result = AsyncResult(ex.task_id, app=app)
    state, info = result.state, result.info
    if state == "SUCCESS" and isinstance(info, dict):
        if info.get("status") == "failed":
            row.update(state="failed", reason=info.get("reason"), host=info.get("host"))
        else:
            row.update(state="done", exit_code=info.get("exit_code"), host=info.get("host"),
                       categories=info.get("categories", {}),
                       known_bad_files=info.get("known_bad_files", 0),
                       resumed=info.get("resumed"))
    elif state == "FAILURE":
        row.update(state="failed", reason=f"worker error: {escape(str(info))}")
    elif state in (RUNNING, "STARTED"):
        meta = info if isinstance(info, dict) else {}
        row.update(state="running", host=meta.get("host"), pid=meta.get("pid"),
                   resume=meta.get("resume"), progress=_progress(meta))
        age = time.time() - meta["updated"] if "updated" in meta else None
        if age is not None:
            row["heartbeat_age"] = round(age, 1)
            if age > 3 * settings.lease_seconds():
                row.update(state="lost", reason=(
                    f"no heartbeat from {meta.get('host')} for {age:.0f} s: its worker is gone; "
                    "the exhibit is handed out again after the visibility timeout and resumes"))
    elif state == "RETRY":
        row.update(state="waiting", reason=escape(str(info)))
    elif record.get("status") == "failed":
        row.update(state="failed", reason=record.get("reason"), host=record.get("host"))
    else:
        row.update(state="queued", resume=bool(summary))
    return row


def status(case_dir: str | os.PathLike[str], broker: str | None = None) -> dict[str, Any]:
    """Every exhibit of the case: queued / running (host, progress) / done (exit code, hits by
    category) / failed (why). The broker must answer (exit 2 otherwise)."""
    the_case = cases.load(case_dir)
    url = ping(broker)
    from triage.lab.app import configure

    app = configure(url)
    rows = [exhibit_status(the_case, ex, app) for ex in the_case.exhibits]
    return {"case": the_case.case, "id": the_case.id, "folder": str(the_case.path),
            "exhibits": rows, "counts": dict(Counter(r["state"] for r in rows)),
            "finished": all(r["state"] in ("done", "failed") for r in rows)}


def wait(case_dir: str | os.PathLike[str], broker: str | None = None, timeout: float | None = None,
         interval: float = 1.0) -> dict[str, Any]:
    """``status`` once every exhibit is done or failed (or when ``timeout`` seconds passed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        now = status(case_dir, broker)
        if now["finished"] or (deadline is not None and time.monotonic() > deadline):
            return now
        time.sleep(interval)
