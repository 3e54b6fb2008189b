"""The Celery application: Redis as broker and result backend, and the lab's two tasks.

Settings that make the queue lose nothing (``configure``):

* ``task_acks_late``: a task is acknowledged when it has finished, not when it was taken, so a
  worker that dies mid-exhibit leaves the message in Redis (``unacked``) to be handed out again;
* ``task_reject_on_worker_lost``: with a prefork pool, a child killed (OOM, SIGKILL) puts its
  task straight back in the queue (``triage lab worker`` runs the solo pool: the exhibit runs in
  the worker process itself, whose hashing processes use every core, so the worker's death is
  the task's and the visibility timeout below brings it back);
* ``worker_prefetch_multiplier = 1`` and concurrency 1: a worker holds one exhibit at a time
  (the scan inside uses every core of the machine) and reserves no other, so an idle machine
  takes the next exhibit;
* the Redis ``visibility_timeout`` (``settings.visibility_timeout``), longer than a scan: the
  time after which a task taken by a worker that vanished (machine off) is handed out again;
* results in Redis for 30 days; JSON messages holding paths and names only.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import Celery

from triage.lab import settings

app = Celery("triage.lab")


def configure(broker: str | None = None) -> Celery:
    url = settings.broker_url(broker)
    transport = {
        "visibility_timeout": settings.visibility_timeout(),
        "unacked_restore_interval": settings.restore_interval(),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 5,
    }
    app.conf.update(
        broker_url=url, result_backend=url,
        broker_transport_options=transport, result_backend_transport_options=transport,
        task_acks_late=True, task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1, worker_concurrency=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,  # a scan outlives a broker restart
        broker_connection_retry_on_startup=True, broker_connection_max_retries=None,
        task_track_started=True, result_expires=30 * 24 * 3600, result_extended=True,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_default_queue=settings.DEFAULT_QUEUE, worker_hijack_root_logger=False,
        worker_send_task_events=False, task_send_sent_event=False,
    )
    return app


def host() -> str:
    return socket.gethostname()


@app.task(bind=True, name="triage.lab.scan_exhibit", acks_late=True,
          reject_on_worker_lost=True)
def scan_exhibit(self: Any, case_dir: str, exhibit: str, infra_retries: int = 0) -> dict[str, Any]:
    """One exhibit of a case: a whole ``run_scan`` (or its resume) into CASE_DIR/EXHIBIT."""
    from triage.lab.worker import run_exhibit

    return run_exhibit(self, case_dir, exhibit, infra_retries)


@app.task(bind=True, name="triage.lab.rematch_exhibit", acks_late=True,
          reject_on_worker_lost=True)
def rematch_exhibit(self: Any, run_dir: str, out: str, hashsets: list[str],
                    known_good: list[str], formats: str | None) -> dict[str, Any]:
    """Re-match one finished run's files.jsonl against new hash sets (no evidence read)."""
    from triage.errors import TriageError
    from triage.lab.rematching import rematch_run

    try:
        result = rematch_run(run_dir, hashsets, known_good, out=out, formats=formats)
    except TriageError as e:  # a bad set or run: a result with its reason, not a retry
        return {"status": "failed", "reason": str(e), "host": host(), "out": out,
                "run": run_dir}
    return {"status": "done", "host": host(), "pid": os.getpid(), **result}
