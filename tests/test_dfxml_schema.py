"""files.dfxml is valid DFXML: validated against NIST's DFXML XML Schema (dfxml_schema, kept in
tests/data/dfxml_schema with its licence) by xmlschema, a maintained validator, offline."""

from __future__ import annotations

import re
from pathlib import Path

import xmlschema
from conftest import TESTIMAGES

from triage.run.scan import ScanConfig, run_scan

SCHEMA = Path(__file__).parent / "data" / "dfxml_schema" / "dfxml.xsd"
SETS = TESTIMAGES / "hashsets"


def errors(path: Path) -> list[str]:
    schema = xmlschema.XMLSchema(str(SCHEMA))
    return [str(e) for e in schema.iter_errors(str(path))]


def test_files_dfxml_is_valid_dfxml(tmp_path: Path) -> None:
    """Two images in one run: MBR with FAT/ext4/ext2 as E01, and NTFS with streams; known-bad
    and known-good matches, deleted entries, unicode names."""
    outcome = run_scan(ScanConfig(
        evidence=[str(TESTIMAGES / "mbr.E01"), str(TESTIMAGES / "ntfs.img")],
        hashsets=[str(SETS / "caid.csv"), str(SETS / "projectvic.json")],
        known_good=[str(SETS / "known-good.md5")], out=tmp_path / "o", workers=1))
    dfxml = outcome.out / "files.dfxml"
    text = dfxml.read_text(encoding="utf-8")
    assert text.count("<fileobject") == outcome.summary["totals"]["files"] > 20
    assert errors(dfxml) == []


def test_the_validation_can_fail(tmp_path: Path) -> None:
    """The schema is really applied: a file size that is not a number is refused."""
    outcome = run_scan(ScanConfig(evidence=[str(TESTIMAGES / "fat.img")], out=tmp_path / "o",
                                  workers=1, hashsets=[str(SETS / "caid.csv")]))
    good = outcome.out / "files.dfxml"
    bad = tmp_path / "bad.dfxml"
    text = good.read_text(encoding="utf-8")
    assert "<filesize>" in text
    bad.write_text(re.sub(r"<filesize>\d+</filesize>", "<filesize>many</filesize>", text,
                          count=1), encoding="utf-8")
    assert errors(good) == []
    assert any("filesize" in e for e in errors(bad))
