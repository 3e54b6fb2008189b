"""Exit codes and the user-facing error hierarchy.

Every error a user can cause is a ``TriageError`` carrying its exit code, so the CLI turns it
into one line on stderr instead of a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # finished, no known-bad match
    HITS = 1  # finished with at least one known-bad match
    USAGE = 2  # usage error or bad input (hash set, option, missing file)
    EVIDENCE = 3  # evidence could not be opened at all
    INCOMPLETE = 4  # finished, but some files or volumes could not be read
    OUTPUT = 5  # the output folder could not be written (disk full, permissions)
    INTERRUPTED = 130  # stopped by Ctrl-C / SIGTERM; outputs are valid but incomplete


class TriageError(Exception):
    exit_code: ExitCode = ExitCode.USAGE


class UsageError(TriageError):
    exit_code = ExitCode.USAGE


class HashSetError(TriageError):
    """A hash set that cannot be parsed; the message names file and line."""

    exit_code = ExitCode.USAGE


class EvidenceError(TriageError):
    exit_code = ExitCode.EVIDENCE
