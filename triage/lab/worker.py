"""What a lab worker does with one exhibit: take its lease, scan or resume, report, let go.

Never two writers on one exhibit: a worker first takes the exhibit's lease in Redis (``SET NX``
with an expiry, renewed every quarter of ``TRIAGE_LAB_LEASE`` while the scan runs), and the scan
itself then holds the output folder's ``flock`` (``triage.run.outdir.FolderLock``). A copy of the
task that finds either taken waits (a retry after half a lease) instead of writing. A dead
worker renews nothing: its lease expires and the kernel (or the NFS server's lease) drops its
flock, so a stale lock never blocks for ever.

Never lost: a task redelivered after its worker died finds ``summary.json`` incomplete and
continues the exhibit from its journal (``--resume``), so the final files.jsonl holds the same
records as an uninterrupted run; a task redelivered after the exhibit finished only reports it.

Results and failures: an exit code of the scan (0, 1, 3, 4, 5 once retries are spent) is a
result; a damaged image is never retried. Infrastructure errors (the case folder unwritable,
Redis gone) are retried with exponential backoff. Evidence the worker's machine cannot see is a
failure with the reason (the storage is probably not mounted at the same path there); the
other exhibits go on.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from triage.errors import ExitCode, TriageError, UsageError
from triage.lab import case as cases
from triage.lab import settings
from triage.records import utc_now
from triage.run.report import OutputError
from triage.reports._escape import escape
from triage.config import ScanConfig, ScanOptions, argv_of
from triage.run.progress import ProgressSink
from triage.run.scan import resume_config, run_scan

SCAN_WORKERS_ENV = "TRIAGE_LAB_SCAN_WORKERS"
RUNNING = "RUNNING"  # custom Celery state: meta holds host, pid, progress


def say(text: str, warning: bool = False) -> None:
    """One line in the worker's log (Celery's task logger: time, level, process)."""
    from celery.utils.log import get_task_logger

    log = get_task_logger("triage.lab")
    (log.warning if warning else log.info)(text)


def cores() -> int:
    given = os.environ.get(SCAN_WORKERS_ENV)
    if given and given.isdigit() and int(given) > 0:
        return int(given)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LabProgress(ProgressSink):
    """Counts what the scan reports, for the heartbeat to publish."""

    def __init__(self) -> None:
        self.total = self.estimated = self.done = self.files = 0
        self.phase = "starting"

    def add_total(self, nbytes: int) -> None:
        self.total += nbytes

    def estimate(self, nbytes: int) -> None:
        self.estimated += nbytes

    def advance(self, nbytes: int, files: int = 1) -> None:
        self.done += nbytes
        self.files += files

    def status(self, text: str) -> None:
        self.phase = text

    def snapshot(self) -> dict[str, Any]:
        return {"bytes_hashed": self.done, "bytes_total": max(self.total, self.estimated),
                "files": self.files, "phase": self.phase}


_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
          "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end")
_RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) else return 0 end")


class Lease:
    """An exhibit's lease in Redis: one holder, an expiry, renewed while held."""

    def __init__(self, client: Any, key: str, seconds: float) -> None:
        self.client, self.key = client, key
        self.ms = int(seconds * 1000)
        self.token = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ms))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode("utf-8", "replace") if value else None

    def renew(self) -> bool:
        if self.client.eval(_RENEW, 1, self.key, self.token, self.ms):
            return True
        return self.acquire()  # expired meanwhile (Redis restarted, a long stall): take it again

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.token)


class Heartbeat(threading.Thread):
    """Renews the lease and publishes progress (Celery state RUNNING) while the scan runs."""

    def __init__(self, task: Any, lease: Lease, progress: LabProgress, meta: dict[str, Any],
                 interval: float) -> None:
        super().__init__(daemon=True, name="triage-lab-heartbeat")
        self.task, self.lease, self.progress, self.meta = task, lease, progress, meta
        self.task_id, self.request = task.request.id, task.request
        self.interval = interval
        self.stopped = threading.Event()
        self.warned = False

    def beat(self) -> None:
        try:
            if not self.lease.renew() and not self.warned:
                self.warned = True
                say(f"triage lab: lease of {self.lease.key} held by "
                      f"{self.lease.holder()}; the folder lock still guards the exhibit", warning=True)
            meta = dict(self.meta, **self.progress.snapshot(), updated=time.time())
            self.task.backend.store_result(self.task_id, meta, RUNNING, request=self.request)
        except Exception as e:  # noqa: BLE001 - Redis away for a moment: the scan goes on
            say(f"triage lab: heartbeat: {type(e).__name__}: {e}")

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


def read_summary(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def done_result(summary: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"status": "done", "exit_code": summary.get("exit_code"),
            "complete": bool(summary.get("complete")),
            "categories": summary.get("categories", {}),
            "known_bad_files": (summary.get("totals") or {}).get("known_bad_files", 0),
            "resumed": bool(summary.get("resumed")), **extra}


def scan_argv(case: cases.Case, ex: cases.Exhibit, out: Path) -> list[str]:
    """The plain ``triage scan`` this exhibit amounts to, recorded as the run's command."""
    s = case.scan
    argv = ["triage", "scan", ex.evidence]
    for flag, key in (("--hashset", "hashsets"), ("--known-good", "known_good"),
                      ("--pdq-set", "pdq_sets")):
        for h in s.get(key, []):
            argv += [flag, h]
    argv += ["--out", str(out), *argv_of(case_options(case))]
    if case.case:
        argv += ["--case", case.case]
    if case.examiner:
        argv += ["--examiner", case.examiner]
    return argv + ["--exhibit", ex.name]


def case_options(case: cases.Case) -> ScanOptions:
    """The options recorded in the case (``client.lab_options``); this machine's processes."""
    options = msgspec.convert(case.scan, ScanOptions)
    return msgspec.structs.replace(options, workers=cores())


def build_config(case: cases.Case, ex: cases.Exhibit, out: Path) -> ScanConfig:
    argv = scan_argv(case, ex, out)
    if (out / "summary.json").exists():  # an attempt died: continue it from its journal
        return resume_config(out, workers=cores(), argv=argv + ["(resumed by triage lab)"])
    s = case.scan
    return ScanConfig(
        **msgspec.structs.asdict(case_options(case)), evidence=[ex.evidence],
        hashsets=list(s.get("hashsets", [])), known_good=list(s.get("known_good", [])),
        pdq_sets=list(s.get("pdq_sets", [])), out=out, case=case.case or None,
        examiner=case.examiner or None, exhibit=ex.name, argv=argv)


def _redis(task: Any) -> Any:
    import redis

    return redis.Redis.from_url(task.app.conf.broker_url, socket_connect_timeout=5,
                                socket_timeout=30)


def _missing(case: cases.Case, ex: cases.Exhibit) -> str | None:
    """What this machine cannot see, in words (shared storage not mounted here?)."""
    host = socket.gethostname()
    if not os.path.lexists(ex.evidence):
        return (f"evidence {escape(ex.evidence)} not found on {host} (is the shared storage "
                "mounted at the same path on every worker machine?)")
    s = case.scan
    for h in [*s.get("hashsets", []), *s.get("known_good", []), *s.get("pdq_sets", [])]:
        if not os.path.exists(h):
            return f"hash set {escape(h)} not found on {host} (shared storage not mounted?)"
    return None


def run_exhibit(task: Any, case_dir: str, name: str, infra_retries: int = 0) -> dict[str, Any]:
    host, pid = socket.gethostname(), os.getpid()
    from celery.exceptions import Reject

    def failed(case: cases.Case | None, reason: str) -> dict[str, Any]:
        if case is not None:
            cases.write_lab_record(case, name, {"status": "failed", "reason": reason,
                                                "host": host, "finished": utc_now()})
        say(f"triage lab: exhibit {escape(name)} failed: {reason}")
        return {"status": "failed", "reason": reason, "host": host, "pid": pid}

    def infra(why: str) -> Any:
        if infra_retries >= settings.RETRY_MAX:
            return failed(case, f"{why} (gave up after {infra_retries} retries)")
        countdown = settings.RETRY_BASE * 2 ** infra_retries
        say(f"triage lab: exhibit {escape(name)}: {why}; retrying in {countdown:.0f} s")
        raise task.retry(countdown=countdown, max_retries=None,
                         kwargs={"infra_retries": infra_retries + 1})

    case = None
    if not os.path.isdir(case_dir):
        return failed(None, f"case folder {escape(case_dir)} not found on {host} (is the shared "
                            "storage mounted at the same path on every worker machine?)")
    try:
        case = cases.load(case_dir)
        ex = case.exhibit(name)
    except cases.CaseError as e:
        return failed(None, str(e))
    except OSError as e:
        return infra(f"case folder unreadable ({e})")
    out = case.out(name)
    summary = read_summary(out)
    if summary and summary.get("complete"):  # redelivered after it finished: nothing to do
        return done_result(summary, host=host, pid=pid, note="already finished")

    import redis

    try:
        lease = Lease(_redis(task), settings.lease_key(case.id, name), settings.lease_seconds())
        taken = lease.acquire()
        holder = None if taken else lease.holder()
    except redis.exceptions.RedisError as e:
        return infra(f"Redis unreachable ({e})")
    if not taken:
        wait = max(1.0, settings.lease_seconds() / 2)
        say(f"triage lab: exhibit {escape(name)} is being scanned by {holder}; "
              f"looking again in {wait:.0f} s")
        raise task.retry(countdown=wait, max_retries=None, kwargs={"infra_retries": infra_retries})
    beat = None
    try:
        summary = read_summary(out)  # finished while we waited for the lease?
        if summary and summary.get("complete"):
            return done_result(summary, host=host, pid=pid, note="already finished")
        why = _missing(case, ex)
        if why:
            return failed(case, why)
        try:
            config = build_config(case, ex, out)
        except TriageError as e:
            return failed(case, str(e))
        resuming = config.resume
        started = utc_now()
        cases.write_lab_record(case, name, {"status": "running", "host": host,
                                            "attempt": {"host": host, "pid": pid,
                                                        "started": started,
                                                        "resume": resuming}})
        progress = LabProgress()
        meta = {"host": host, "pid": pid, "started": started, "resume": resuming,
                "exhibit": name}
        beat = Heartbeat(task, lease, progress, meta,
                          max(0.5, min(2.0, settings.lease_seconds() / 4)))
        beat.beat()
        beat.start()
        say(f"triage lab: exhibit {escape(name)}: {'resuming' if resuming else 'scanning'} "
            f"{escape(ex.evidence)} into {escape(str(out))} with {config.workers} "
            "hashing processes")
        try:
            outcome = run_scan(config, progress)
        except KeyboardInterrupt:  # this worker is shutting down: hand the exhibit back
            raise Reject("worker stopped mid-scan; the exhibit resumes elsewhere", requeue=True)
        except OutputError as e:  # shared storage full or unwritable: retry, resumable
            return infra(f"output not writable ({e})")
        except UsageError as e:
            if "one folder, one scan" in str(e):  # another writer holds the folder's flock
                raise task.retry(countdown=max(1.0, settings.lease_seconds() / 2),
                                 max_retries=None, kwargs={"infra_retries": infra_retries})
            return failed(case, str(e))
        except TriageError as e:
            return failed(case, str(e))
        result = done_result(outcome.summary, host=host, pid=pid, resumed_here=resuming)
        cases.write_lab_record(case, name, {"status": "done", "host": host,
                                            "exit_code": int(outcome.exit_code),
                                            "finished": utc_now()})
        say(f"triage lab: exhibit {escape(name)} done: exit code "
            f"{int(outcome.exit_code)} ({ExitCode(outcome.exit_code).name.lower()})")
        return result
    finally:
        if beat is not None:
            beat.stop()
        try:
            lease.release()
        except redis.exceptions.RedisError:
            pass  # it expires by itself
