"""A process pool that survives its workers: crashes and hangs become task failures.

TSK has a long record of segfaults and infinite loops on corrupt file systems, so every
directory listing and every content read runs in a worker process. Workers send a heartbeat
while they make progress; a worker that dies, or is silent for longer than its task's timeout,
is killed and replaced, and the task is reported failed with the reason. The scheduler decides
what to retry.

A failure is *internal* (``Event.internal``: a defect of this tool, counted in
``totals.internal_errors``) when a task raised anything but ``OSError`` - a TypeError, an
AttributeError ... in our code - or when its worker process died (a crash of our code or of a
library we run; TSK has segfaulted on corrupt file systems, still a defect, never a result).
Evidence errors are ``OSError``: pytsk3 raises IOError for what TSK cannot read,
``evidence.StreamImage`` turns every libyal error into OSError and ``ewf_native`` raises it, so
an OSError that escapes a task is the evidence's. A task that makes no progress for its timeout
is a limit (slow or looping media), not internal. ``concurrent.futures`` cannot kill one hung worker, hence this small pool.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

BEAT_INTERVAL = 0.5


@dataclass
class Event:
    kind: str  # "done" | "failed"
    task_id: int
    payload: Any  # the task's result, or the failure reason
    internal: bool = False  # a failed task's cause is a defect of this tool (module docstring)


class Beat:
    """Handed to task functions: call it while making progress (cheap; throttled)."""

    def __init__(self, conn: Connection, task_id: int) -> None:
        self._conn, self._id, self._last = conn, task_id, time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last >= BEAT_INTERVAL:
            self._last = now
            _send(self._conn, ("beat", self._id, None))


def _send(conn: Connection, msg: Any) -> None:
    """Send to the parent; when it is gone (killed) there is no one to tell: exit quietly,
    not with a BrokenPipeError traceback from every worker."""
    try:
        conn.send(msg)
    except OSError:  # BrokenPipeError, ConnectionResetError
        os._exit(0)


def _watch_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL) exits within a second, even in the middle of a
    long read or a hang: it would otherwise work on for no one."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _worker_main(conn: Connection, tasks: dict[str, Callable[..., Any]]) -> None:
    """Imports happen at spawn; the state is built from the first message, so a pool can be
    started before the scan knows its hash sets (start-up overlaps the main process's work)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    msg = _recv(conn)
    if msg is None:
        return
    init, init_arg = msg
    state = init(init_arg)
    while (msg := _recv(conn)) is not None:
        task_id, name, arg = msg
        try:
            result = tasks[name](state, arg, Beat(conn, task_id))
        except OSError as e:  # the evidence's: reported to the parent as a task failure
            _send(conn, ("fail", task_id, f"{type(e).__name__}: {e}"))
        except Exception as e:  # noqa: BLE001 - a defect: the parent counts it as internal
            _send(conn, ("defect", task_id, describe_defect(e)))
        else:
            _send(conn, ("done", task_id, result))


def describe_defect(e: BaseException) -> str:
    """``TypeError: message (at triage/content/census.py:312)``: the exception and the innermost frame
    of our code, so the first internal error shown on the terminal says where to look."""
    text = f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]
    ours = [f for f in traceback.extract_tb(e.__traceback__)
            if f.filename.startswith(PACKAGE_DIR)]
    if ours:  # the package's own frames only (a checkout may itself be a folder named triage)
        f = ours[-1]
        where = "triage/" + f.filename[len(PACKAGE_DIR):].replace(os.sep, "/")
        text += f" (at {where}:{f.lineno})"
    return text


PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _recv(conn: Connection) -> Any:
    """The next message; None when the parent says stop or is gone."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


class _Worker:
    def __init__(self, ctx: Any, tasks: dict[str, Callable[..., Any]],
                 init: tuple[Callable[[Any], Any], Any] | None) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, tasks), daemon=True)
        self.proc.start()
        child.close()
        if init is not None:
            self.conn.send(init)
        self.task: int | None = None
        self.deadline = 0.0
        self.timeout = 0.0


class WorkerPool:
    def __init__(self, workers: int, tasks: dict[str, Callable[..., Any]],
                 init: Callable[[Any], Any] | None = None, init_arg: Any = None) -> None:
        """Spawn the workers now; they wait for ``initialize`` unless ``init`` is given."""
        self._ctx = multiprocessing.get_context("spawn")
        self._tasks = tasks
        self._init: tuple[Callable[[Any], Any], Any] | None = None
        self._workers = [_Worker(self._ctx, tasks, None) for _ in range(max(1, workers))]
        if init is not None:
            self.initialize(init, init_arg)

    def initialize(self, init: Callable[[Any], Any], init_arg: Any) -> None:
        """Each worker's state is ``init(init_arg)`` (replacement workers' too)."""
        self._init = (init, init_arg)
        for w in self._workers:
            w.conn.send(self._init)

    @property
    def size(self) -> int:
        return len(self._workers)

    def idle(self) -> int:
        return sum(1 for w in self._workers if w.task is None)

    def submit(self, task_id: int, name: str, arg: Any, timeout: float) -> None:
        w = next(w for w in self._workers if w.task is None)
        w.task, w.timeout = task_id, timeout
        w.deadline = time.monotonic() + timeout
        w.conn.send((task_id, name, arg))

    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for results; report finished, failed, timed-out."""
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            return []
        now = time.monotonic()
        wait_for = max(0.0, min(timeout, min(w.deadline for w in busy) - now))
        ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], wait_for))
        events: list[Event] = []
        for w in busy:
            if w.conn in ready:
                events.extend(self._drain(w))
            elif w.proc.sentinel in ready:
                events.append(self._replace(w, f"worker process died (exit code {w.proc.exitcode})",
                                            internal=True))
        now = time.monotonic()
        for w in busy:
            if w.task is not None and now > w.deadline:
                events.append(self._replace(w, f"no progress for {w.timeout:g} s (killed)"))
        return events

    def _drain(self, w: _Worker) -> list[Event]:
        events = []
        while w.task is not None and w.conn.poll():
            try:
                kind, task_id, payload = w.conn.recv()
            except (EOFError, OSError):
                w.proc.join(1)
                events.append(self._replace(w, f"worker process died (exit code {w.proc.exitcode})",
                                            internal=True))
                break
            if kind == "beat":
                w.deadline = time.monotonic() + w.timeout
                continue
            w.task = None
            events.append(Event("done" if kind == "done" else "failed", task_id, payload,
                                internal=kind == "defect"))
        return events

    def _replace(self, w: _Worker, reason: str, internal: bool = False) -> Event:
        task_id = w.task
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join(5)
        w.conn.close()
        self._workers[self._workers.index(w)] = _Worker(self._ctx, self._tasks, self._init)
        return Event("failed", task_id if task_id is not None else -1, reason, internal)

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self._workers:
            w.proc.join(5)
            if w.proc.is_alive():
                w.proc.kill()

    def kill(self) -> None:
        for w in self._workers:
            if w.proc.is_alive():
                w.proc.kill()
        for w in self._workers:
            w.proc.join(5)
