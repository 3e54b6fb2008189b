"""Where the lab's queue lives and how long things may take: one place for every knob.

The broker is a Redis URL (``--broker``, else ``TRIAGE_BROKER``, else the local default); the
same Redis is Celery's result backend and holds the per-exhibit leases. The timings are read
from the environment so a lab (and the tests) can shorten them without code:

* ``TRIAGE_LAB_VISIBILITY_TIMEOUT`` (seconds, default 12 h): a task taken by a worker that then
  vanishes without a word (machine off, SIGKILL of the whole worker) goes back to the queue
  after this long. Longer than the longest scan, so a running exhibit is normally never handed
  out twice; if it is (a scan that outlives it), the lease below keeps the second copy waiting.
* ``TRIAGE_LAB_LEASE`` (seconds, default 60): the per-exhibit lease in Redis, renewed every
  quarter of it while a scan runs. A worker that dies stops renewing; after this long another
  may take the exhibit over, so a stale lock never blocks for ever. (Progress for ``lab status``
  is published with each renewal, at least every 2 s.)
* ``TRIAGE_LAB_RESTORE_INTERVAL`` (seconds, default 10): how often idle workers look for such
  vanished tasks.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

DEFAULT_BROKER = "redis://localhost:6379/0"
BROKER_ENV = "TRIAGE_BROKER"
DEFAULT_QUEUE = "triage"
KEY_PREFIX = "triage:lab:"


def broker_url(given: str | None = None) -> str:
    return given or os.environ.get(BROKER_ENV) or DEFAULT_BROKER


def shown_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = re.sub(r":[^:@]*@", ":***@", parts.netloc, count=1)
    return urlunsplit(parts._replace(netloc=netloc))


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def visibility_timeout() -> float:
    return _seconds("TRIAGE_LAB_VISIBILITY_TIMEOUT", 12 * 3600.0)


def lease_seconds() -> float:
    return _seconds("TRIAGE_LAB_LEASE", 60.0)


def restore_interval() -> float:
    return _seconds("TRIAGE_LAB_RESTORE_INTERVAL", 10.0)


# Infrastructure errors (shared storage unwritable, Redis gone) are retried with backoff:
# RETRY_BASE * 2**n seconds, at most RETRY_MAX times; a damaged image is a result, never retried.
RETRY_BASE = 15.0
RETRY_MAX = 6


def lease_key(case_id: str, exhibit: str) -> str:
    return f"{KEY_PREFIX}lease:{case_id}:{exhibit}"
