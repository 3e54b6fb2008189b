"""Every scan option survives ``--resume`` (issue 16, item 2's test).

The option list is not written here: it is every field of ``ScanConfig``, so an option added to
the configuration and forgotten in summary.json's ``options``/``resume_config`` fails this test
instead of silently disappearing on resume. Each field gets a value different from its default;
the run is recorded; ``resume_config`` must give back every one of them.
"""

from __future__ import annotations

import msgspec
import hashlib
import random
from pathlib import Path

from conftest import TESTIMAGES

import json

import pytest
from conftest import ALTERED, one_line_error, triage
from jsonschema import ValidationError
from jsonschema import Draft202012Validator as Validator

from triage.cli import Environment, main
from triage.config import (CASE, INPUT, ScanConfig, ScanOptions, argv_of, fields, options_of,
                           problem, recorded)
from triage.errors import UsageError
from triage.reports.schema import summary_schema
from triage.run.scan import resume_config, run_scan

# Fields that describe this invocation, not the run: where it writes, whether it may replace a
# folder, that it is a resume, and the command line it was typed as.
NOT_OPTIONS = {"out", "force", "resume", "argv"}


def _blockset(tmp: Path) -> Path:
    ref = tmp / "ref"
    ref.mkdir()
    (ref / "r.bin").write_bytes(random.Random(5).randbytes(16384))
    out = tmp / "b.tbs"
    try:
        main(["blockset", "build", str(ref), "--out", str(out), "--category", "1"],
             Environment(interactive=False))
    except SystemExit as e:
        assert not e.code, e.code
    return out


def _values(tmp_path: Path) -> dict:
    """A value other than the default for every field of the description."""
    image = TESTIMAGES / "fat.img"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"md5,size\n{hashlib.md5(b'x').hexdigest()},1\n")
    good = tmp_path / "good.md5"
    good.write_text(f"{hashlib.md5(b'y').hexdigest()}  y\n")
    pdq = tmp_path / "p.txt"
    pdq.write_text(f"{random.Random(1).getrandbits(256) | 1 << 255:064x}\n")
    vpdq = tmp_path / "video.txt"  # a one-frame vPDQ hash file
    vpdq.write_text(f"0,100,{random.Random(2).getrandbits(256) | 1 << 255:064x},0.000\n")
    values = dict(
        evidence=[str(image)], hashsets=[str(bad)], known_good=[str(good)],
        algorithms=("md5", "sha256"), workers=1, lenient=True, include_orphans=False,
        max_orphans=7, verify_image=True, order="smallest", formats="csv",
        stop_on_first_hit=True, pdq=True, pdq_threshold=20, pdq_sets=[str(pdq)],
        size_filter=True, blockset=str(_blockset(tmp_path)), fs_timeout=99.0,
        read_timeout=77.0, file_timeout=55.0, case="C-1", examiner="E. X.", exhibit="X9",
        vpdq=True, vpdq_interval=2.0, vpdq_sets=[f"{vpdq}:X"], vpdq_query_pct=70.0,
        vpdq_target_pct=10.0,
    )
    return values


def _same(name: str, got: object, value: object) -> None:
    if name in ("evidence", "hashsets", "known_good", "pdq_sets", "blockset"):
        got = [str(Path(p).resolve()) for p in got] if isinstance(got, list) else (
            str(Path(got).resolve()) if got else got)
        value = [str(Path(p).resolve()) for p in value] if isinstance(value, list) else (
            str(Path(value).resolve()))
    assert got == value, f"{name} lost on --resume: {value!r} -> {got!r}"


def test_every_scan_option_survives_resume(tmp_path: Path) -> None:
    values = _values(tmp_path)
    defaults = ScanConfig(evidence=[])
    options = {f.name for f in msgspec.structs.fields(ScanConfig)} - NOT_OPTIONS
    assert set(values) == options, f"give the new option a value here: {options ^ set(values)}"
    for name, value in values.items():
        assert value != getattr(defaults, name), f"{name}: pick a value other than the default"
    out = tmp_path / "run"
    run_scan(ScanConfig(out=out, **values))
    back = resume_config(out)
    for name, value in values.items():
        _same(name, getattr(back, name), value)


def _cli_argv(values: dict) -> list[str]:
    """The same run typed as a command line, built from the description's flags only."""
    argv = ["scan", *values["evidence"]]
    for f in fields():
        if f.group in (INPUT, CASE) and f.flag:
            value = values[f.name]
            for item in value if isinstance(value, list) else [value]:
                argv += [f.flag, item]
    return argv + argv_of(options_of(ScanConfig(**values)))


def test_every_option_typed_on_the_command_line_survives_resume(tmp_path: Path) -> None:
    """triage scan's options come from the description: each flag reaches the run, is recorded
    and comes back on --resume (the CLI path, not the library's)."""
    values = _values(tmp_path)
    out = tmp_path / "cli-run"
    with pytest.raises(SystemExit) as done:
        main([*_cli_argv(values), "--out", str(out), "--quiet"], Environment(interactive=False))
    assert done.value.code in (0, 1, 4), done.value.code
    back = resume_config(out)
    for name, value in values.items():
        _same(name, getattr(back, name), value)
    assert json.loads((out / "summary.json").read_text())["options"] == \
        recorded(back)["options"]


def test_resume_takes_only_the_options_that_may_change(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run_scan(ScanConfig(evidence=[str(TESTIMAGES / "fat.img")], out=out, workers=1))
    allowed = [f.name for f in fields() if f.on_resume]
    assert allowed == ["workers"]
    assert resume_config(out, workers=2).workers == 2
    proc = triage("scan", "--resume", str(out), "--pdq-threshold", "3")
    assert proc.returncode == 2
    assert "--pdq-threshold" in one_line_error(proc)
    proc = triage("scan", "--resume", str(out), "--no-orphans")  # named as typed
    assert "remove --no-orphans" in one_line_error(proc)


def test_recorded_options_are_validated_on_resume(tmp_path: Path) -> None:
    """A summary.json whose options break the description's bounds is not a run to resume."""
    out = tmp_path / f"{ALTERED}r"
    run_scan(ScanConfig(evidence=[str(TESTIMAGES / "fat.img")], out=out, workers=1))
    summary = json.loads((out / "summary.json").read_text())
    summary["complete"] = False
    summary["options"]["pdq_threshold"] = 65
    (out / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(UsageError, match="no readable summary.json"):
        resume_config(out)
    Validator(summary_schema()["properties"]["options"]).validate(
        recorded(ScanConfig(evidence=["x"]))["options"])
    with pytest.raises(ValidationError):
        Validator(summary_schema()["properties"]["options"]).validate(summary["options"])


def test_option_bounds_come_from_the_description(tmp_path: Path) -> None:
    """An option outside its declared bounds is one line naming its flag, exit 2."""
    proc = triage("scan", str(TESTIMAGES / "fat.img"), "--out", str(tmp_path / "o"),
                  "--fs-timeout", "0")
    assert proc.returncode == 2
    assert "--fs-timeout" in one_line_error(proc)
    assert problem(ScanConfig(evidence=["x"], vpdq_interval=0.001)).startswith("--vpdq-interval")
    assert problem(ScanConfig(evidence=["x"])) is None


def test_lab_options_are_the_scan_options(tmp_path: Path) -> None:
    """A lab case records the description's options (not a copy of them); the command a
    worker records gives the same options back; an option a lab cannot apply is refused."""
    from triage.lab import case as cases
    from triage.lab.client import lab_options
    from triage.lab.worker import case_options, scan_argv

    options = ScanOptions(algorithms=("md5",), order="smallest", pdq=True, pdq_threshold=9,
                          include_orphans=False, vpdq=True, vpdq_query_pct=50.0,
                          file_timeout=3.0)
    the_case = cases.new_case(tmp_path / "case", "C", "E", "q")
    the_case.scan = {**lab_options(options), "hashsets": [], "known_good": []}
    ex = cases.Exhibit("x1", str(TESTIMAGES / "fat.img"), "t", "now")
    got = case_options(the_case)
    assert msgspec.structs.replace(got, workers=options.workers) == options
    argv = scan_argv(the_case, ex, tmp_path / "o")
    for flag in ("--algorithms", "--order", "--pdq", "--pdq-threshold", "--no-orphans",
                 "--vpdq", "--vpdq-query-pct", "--file-timeout"):
        assert flag in argv, flag
    with pytest.raises(UsageError, match="--stop-on-first-hit"):
        lab_options(ScanOptions(stop_on_first_hit=True))
