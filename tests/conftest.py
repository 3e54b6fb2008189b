"""Shared fixtures.

The public corpus lives in ``../shared/corpus`` beside the repository (or ``$TRIAGE_CORPUS``);
its gzipped images are unpacked once per session with the corpus' own ``unpack.py``. Tests that
need it skip cleanly when it is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from triage.reports.schema import Summary, summary_schema

REPO = Path(__file__).resolve().parents[1]
TESTIMAGES = REPO / "testimages"


def corpus_source() -> Path | None:
    env = os.environ.get("TRIAGE_CORPUS")
    candidate = Path(env) if env else REPO.parent / "shared" / "corpus"
    return candidate if (candidate / "index.json").is_file() else None


def corpus_index() -> list[dict]:
    src = corpus_source()
    return json.loads((src / "index.json").read_text()) if src else []


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = corpus_source()
    if src is None:
        pytest.skip("public corpus ../shared/corpus not present")
    dest = tmp_path_factory.mktemp("corpus")
    subprocess.run([sys.executable, str(src / "unpack.py"), str(dest)], check=True,
                   capture_output=True)
    return dest


def triage(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command line as a user runs it (a new process)."""
    return subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """A user error's single stderr line (never a traceback)."""
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("triage: error:")
    return lines[0]


def needs_tool(name: str) -> None:
    if shutil.which(name) is None:
        pytest.skip(f"{name} not installed")


# --- internal errors fail the suite ---------------------------------------------------------
# A worker exception is a defect, never a result (issue 13). Every scan a test runs - through
# run_scan or a `python -m triage` subprocess, which inherits the environment - appends a line
# to the file named by TRIAGE_INTERNAL_ERRORS_LOG when it met an internal error
# (triage.run.scan._log_internal_errors). Each test's new lines fail that test unless it is marked
# ``internal_errors_expected`` (a deliberate fault injection); at the end of the session every
# summary.json under the session's temporary folder is checked as well, for runs whose
# environment did not carry the variable.

INTERNAL_LOG = "TRIAGE_INTERNAL_ERRORS_LOG"
_ALLOWED_RUNS: set[str] = set()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "internal_errors_expected: the test injects a defect on purpose; the "
        "internal errors its scans report do not fail it")
    if not os.environ.get(INTERNAL_LOG):
        import tempfile

        fd, path = tempfile.mkstemp(prefix="triage-internal-errors-", suffix=".jsonl")
        os.close(fd)
        os.environ[INTERNAL_LOG] = path
        config.stash[_LOG_KEY] = path
    _LOG_PATH[:] = [os.environ[INTERNAL_LOG]]


_LOG_KEY = pytest.StashKey[str]()
_LOG_PATH: list[str] = []  # the session's log, even if a test empties os.environ


def pytest_unconfigure(config: pytest.Config) -> None:
    path = config.stash.get(_LOG_KEY, None)
    if path:
        Path(path).unlink(missing_ok=True)
        os.environ.pop(INTERNAL_LOG, None)


def _internal_lines(start: int) -> tuple[int, list[dict]]:
    path = Path(_LOG_PATH[0])
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError:
        return start, []
    return start + len(data), [json.loads(x) for x in data.decode().splitlines() if x.strip()]


@pytest.fixture(autouse=True)
def _no_internal_errors(request: pytest.FixtureRequest):
    """Fail the test if any scan it ran reported an internal error it did not expect."""
    start, _ = _internal_lines(0)
    yield
    _, runs = _internal_lines(start)
    _ALLOWED_RUNS.update(r["out"] for r in runs)  # expected, or reported here once
    if runs and not request.node.get_closest_marker("internal_errors_expected"):
        pytest.fail("internal errors (defects of triage) in this test's scans: "
                    + "; ".join(f"{r['out']}: {r['internal_errors']} (first: {r['first']})"
                                for r in runs), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _no_internal_errors_anywhere(tmp_path_factory: pytest.TempPathFactory):
    """Session end: every summary.json under the session's temporary folder says 0."""
    yield
    bad, undescribed = [], []
    validator = jsonschema.Draft202012Validator(summary_schema())
    for summary in tmp_path_factory.getbasetemp().rglob("summary.json"):
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
            n = data.get("totals", {}).get("internal_errors", 0)
        except (OSError, ValueError, AttributeError):
            continue
        if n and str(summary.parent.resolve()) not in _ALLOWED_RUNS:
            bad.append(f"{summary.parent}: {n} (first: {data.get('first_internal_error')})")
        # a scan's summary (a sample's has a kind; a test's hand-made fragment no version)
        if ("schema_version" in data and "kind" not in data
                and not summary.parent.name.startswith(ALTERED)):
            undescribed += _undescribed(summary, data, validator)
    if bad:
        pytest.fail("internal errors (defects of triage) in scans of this session: "
                    + "; ".join(bad), pytrace=False)
    if undescribed:
        pytest.fail("summary.json written that its description (reports.schema.Summary) "
                    "does not describe: " + "; ".join(undescribed[:5]), pytrace=False)


# A run folder whose summary.json a test alters on purpose (named so): not checked above.
ALTERED = "altered-"


def _undescribed(path: Path, data: dict, validator: Any) -> list[str]:
    """Every scan summary of the session, from every test, against the one description."""
    try:
        msgspec.convert(data, Summary)
    except msgspec.ValidationError as e:
        return [f"{path}: {e}"]
    return [f"{path}: {e.message} at {list(e.absolute_path)}"
            for e in validator.iter_errors(data)][:1]
