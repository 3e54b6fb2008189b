"""Every user-facing error states its exit code: no default on the base class to fall back on."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import triage
from triage.errors import ExitCode, TriageError, UsageError


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def test_every_error_class_in_triage_states_its_exit_code() -> None:
    for info in pkgutil.walk_packages(triage.__path__, "triage."):
        if info.name != "triage.__main__":
            importlib.import_module(info.name)
    classes = _all_subclasses(TriageError)
    names = {c.__name__ for c in classes}
    assert {"UsageError", "HashSetError", "EvidenceError", "OutputError", "ReportError"} <= names
    for cls in classes:
        assert isinstance(cls.__dict__.get("exit_code"), ExitCode), cls


def test_a_class_without_exit_code_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="exit_code"):
        class Forgot(TriageError):
            pass
    with pytest.raises(TypeError, match="exit_code"):
        class Inherits(UsageError):  # inheriting a parent's code is not stating one
            pass
    with pytest.raises(TypeError, match="exit_code"):
        class NotACode(TriageError):
            exit_code = 5


def test_the_base_class_cannot_be_raised() -> None:
    with pytest.raises(TypeError, match="subclasses"):
        TriageError("no code")
    assert UsageError("x").exit_code == ExitCode.USAGE
