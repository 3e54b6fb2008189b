"""Exit codes and the user-facing error hierarchy.

Every error a user can cause is a ``TriageError`` carrying its exit code, so the CLI turns it
into one line on stderr instead of a traceback. The base class has no exit code: each error
class states its own, and one that forgets is refused when the class is defined (a default
would silently turn, say, a disk-full report into "usage error").
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar, Self


class ExitCode(IntEnum):
    OK = 0  # finished, no known-bad match
    HITS = 1  # finished with at least one known-bad match
    USAGE = 2  # usage error or bad input (hash set, option, missing file)
    EVIDENCE = 3  # evidence could not be opened at all
    INCOMPLETE = 4  # finished, but some files or volumes could not be read
    OUTPUT = 5  # the output folder could not be written (disk full, permissions)
    INTERRUPTED = 130  # stopped by Ctrl-C / SIGTERM; outputs are valid but incomplete


class TriageError(Exception):
    """Base of the user-facing errors; raise a subclass, which names its exit code."""

    exit_code: ClassVar[ExitCode]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(cls.__dict__.get("exit_code"), ExitCode):
            raise TypeError(f"{cls.__qualname__}: a TriageError must state its exit_code "
                            "(an ExitCode) in its own class body")

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        if cls is TriageError:
            raise TypeError("TriageError has no exit code: raise one of its subclasses")
        return super().__new__(cls, *args, **kwargs)


class UsageError(TriageError):
    """Bad command line or bad input file (exit 2)."""

    exit_code = ExitCode.USAGE


class HashSetError(TriageError):
    """A hash set that cannot be parsed; the message names file and line."""

    exit_code = ExitCode.USAGE


class EvidenceError(TriageError):
    """An evidence item that cannot be opened at all (exit 3)."""

    exit_code = ExitCode.EVIDENCE


class OutputError(TriageError):
    """The output folder cannot be written: disk full, read-only, permissions (exit 5)."""

    exit_code = ExitCode.OUTPUT
