"""JSON Schemas of files.jsonl and summary.json, checked against real scan outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest
from conftest import TESTIMAGES
from test_reports_support import BASE_SUMMARY, SETS, record, records_of, scanned_run, summary_of

from triage import cli
from triage.cli.report import schema as schema_command
from triage.errors import UsageError
from triage.records import FILE_FIELDS, SCHEMA_VERSION
from triage.reports.schema import (
    FIELD_TYPES,
    OPTIONAL_FIELDS,
    file_schema,
    summary_schema,
)
from triage.run.scan import ScanConfig, run_scan

__all__ = ["scanned_run"]
Validator = jsonschema.Draft202012Validator


def test_schemas_are_valid_json_schema() -> None:
    Validator.check_schema(file_schema())
    Validator.check_schema(file_schema(("md5", "sha256")))
    Validator.check_schema(summary_schema())


def test_record_schema_derives_from_file_fields() -> None:
    fields = [f for f in FILE_FIELDS if f != "<hashes>"]
    assert sorted(FIELD_TYPES) == sorted(fields)
    s = file_schema(("md5",))
    required = [f for f in fields if f not in OPTIONAL_FIELDS]
    assert s["required"][: len(required)] == required and "md5" in s["required"]
    assert set(s["properties"]) >= set(fields)
    assert "sha1" in s["properties"] and "sha1" not in s["required"]


def test_real_outputs_validate(scanned_run: Path) -> None:
    summary = summary_of(scanned_run)
    Validator(summary_schema()).validate(summary)
    records = records_of(scanned_run)
    assert len(records) == summary["totals"]["files"] > 50
    v = Validator(file_schema(tuple(summary["options"]["algorithms"])))
    for r in records:
        v.validate(r)
    # the fixtures exercise the interesting shapes: NTFS attribute inodes, unread volumes
    assert any("-" in r["inode"] for r in records)
    statuses = {vol["status"] for ev in summary["evidence"] for vol in ev["volumes"]}
    assert "no-filesystem" in statuses


def test_xxh128_and_single_algorithm_runs_validate(tmp_path: Path) -> None:
    out = tmp_path / "x"
    run_scan(ScanConfig(evidence=[str(TESTIMAGES / "fat.img")], out=out, workers=1,
                        algorithms=("sha256", "xxh128"),
                        hashsets=[str(SETS / "caid.csv")]))
    summary = summary_of(out)
    Validator(summary_schema()).validate(summary)
    v = Validator(file_schema(tuple(summary["options"]["algorithms"])))
    for r in records_of(out):
        v.validate(r)
        assert r["xxh128"] is None or len(r["xxh128"]) == 32


def test_start_of_scan_summary_validates() -> None:
    """What a crashed scan leaves: the summary written at start, without the end keys."""
    start = {k: v for k, v in BASE_SUMMARY.items()
             if k not in ("interrupted", "elapsed_seconds", "evidence", "totals", "categories",
                          "first_hit_seconds", "exit_code")}
    start.update(complete=False, finished=None)
    Validator(summary_schema()).validate(start)
    with pytest.raises(jsonschema.ValidationError):  # finished, but the end keys are missing
        Validator(summary_schema()).validate({**start, "finished": "2024-01-01T00:00:00Z"})


@pytest.mark.parametrize("mutate", [
    lambda r: r.update(surprise=1),
    lambda r: r.pop("deleted"),
    lambda r: r.update(md5="XYZ"),
    lambda r: r.update(size=-1),
    lambda r: r.update(mtime="yesterday"),
    lambda r: r.update(matches=[{"hashset": "x"}]),
    lambda r: r.update(inode="12a"),
], ids=["extra", "missing", "bad-hash", "negative-size", "bad-time", "bad-match", "bad-inode"])
def test_record_schema_rejects_drift(mutate) -> None:
    r = record("/a", n=3).to_dict(("md5", "sha1", "sha256"))
    Validator(file_schema(("md5", "sha1", "sha256"))).validate(r)
    mutate(r)
    with pytest.raises(jsonschema.ValidationError):
        Validator(file_schema(("md5", "sha1", "sha256"))).validate(r)


def test_summary_schema_rejects_unknown_key_and_other_major() -> None:
    with pytest.raises(jsonschema.ValidationError):
        Validator(summary_schema()).validate({**BASE_SUMMARY, "surprise": 1})
    major = int(SCHEMA_VERSION.split(".")[0])
    with pytest.raises(jsonschema.ValidationError):
        Validator(summary_schema()).validate({**BASE_SUMMARY, "schema_version": f"{major + 1}.0.0"})
    minor_later = f"{major}.99.0"
    Validator(summary_schema()).validate({**BASE_SUMMARY, "schema_version": minor_later})


@pytest.mark.parametrize("which,builder", [("files", file_schema), ("summary", summary_schema)])
def test_schema_command_prints_the_schema(monkeypatch, which, builder) -> None:
    out = io.StringIO()
    monkeypatch.setattr(cli.env, "current", cli.Environment(stdout=out, stderr=io.StringIO(),
                                                     interactive=False))
    assert schema_command(which) == 0
    assert json.loads(out.getvalue()) == builder()


def test_schema_command_rejects_unknown() -> None:
    with pytest.raises(UsageError):
        schema_command("bogus")
