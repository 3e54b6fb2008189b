"""Deliberate test seam: make a worker crash or hang on one file, on request of the tests.

``TRIAGE_FAULT_INJECT=crash:<path suffix>`` makes the worker process exit abruptly (exit 70)
when it is about to read a file whose path ends with the suffix; ``hang:<suffix>`` makes it
sleep for an hour instead; ``raise:<suffix>`` raises a RuntimeError (a Python exception in our
code: an internal error). The tests use it to prove that a worker dying, stuck or raising on
one file costs only that file, that a defect is counted as an internal error, and to interrupt
a scan at a known point. It is not a user option.

The variable is read once, when a worker imports ``triage.run.tasks`` (workers are fresh
processes). Unset — every real run — ``wrap`` returns the function unchanged, so the
production read path carries no check at all.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

ENV = "TRIAGE_FAULT_INJECT"
F = TypeVar("F", bound=Callable[..., Any])


def wrap(fn: F, path_of: Callable[..., str]) -> F:
    """``fn`` itself unless the seam is enabled; then ``fn`` preceded by the fault, for the
    file whose path ``path_of(*args)`` names."""
    spec = os.environ.get(ENV, "")
    if not spec:
        return fn
    kind, _, suffix = spec.partition(":")
    if kind not in ("crash", "hang", "raise"):
        raise ValueError(f"{ENV}={spec!r}: expected crash:, hang: or raise:<path suffix>")

    @functools.wraps(fn)
    def faulty(*args: Any, **kwargs: Any) -> Any:
        if path_of(*args, **kwargs).endswith(suffix):
            if kind == "crash":
                os._exit(70)
            if kind == "raise":
                raise RuntimeError(f"injected fault ({ENV})")
            time.sleep(3600)
        return fn(*args, **kwargs)

    return faulty  # type: ignore[return-value]
