"""SQLite hash sets: NIST NSRL RDSv3 (minimal and full flavour) and TSK/Autopsy .kdb."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import FORMATS, load_hashset

from ._factory import (
    EMPTY_MD5, KDB_SCHEMA, RDS3_FULL_SCHEMA, RDS3_MINIMAL_SCHEMA, md5, raw, rds3_row, sha1, sha256,
    sqlite_db,
)


def test_rds3_minimal(tmp_path: Path) -> None:
    rows = [rds3_row(1, 10), rds3_row(2, 20), rds3_row(1, 10), rds3_row(3, 0)]  # dup; size 0 dropped
    path = sqlite_db(tmp_path / "RDS_2024.03.1_modern_minimal.db", RDS3_MINIMAL_SCHEMA,
                     {"FILE": rows, "VERSION": [("2024.03.1", "x", None, None, "modern minimal")]})
    hs = load_hashset(path)
    assert (hs.format, hs.kind) == ("nsrl-rds3", "known-good")
    assert hs.table == {
        "md5": {raw(md5(1)): None, raw(md5(2)): None},
        "sha1": {raw(sha1(1)): None, raw(sha1(2)): None},
        "sha256": {raw(sha256(1)): None, raw(sha256(2)): None},
    }
    assert hs.dropped_empty == 3  # the three digests of the zero-size row
    assert list(hs.sizes) == [10, 20]
    source = hs.sources[0]
    assert source["rds_flavour"] == "minimal" and source["rds_table"] == "FILE"
    assert "2024.03.1" in source["rds_version"]


def test_rds3_full_flavour_reads_columns_by_name(tmp_path: Path) -> None:
    rows = [(sha256(1), sha1(1), md5(1), "0", "a", 5, 1, "dll"), (sha256(2), sha1(2), md5(2), "0", "b", 7, 1, "exe")]
    path = sqlite_db(tmp_path / "full.db", RDS3_FULL_SCHEMA, {"METADATA": rows})
    hs = load_hashset(path)
    assert hs.format == "nsrl-rds3" and hs.sources[0]["rds_flavour"] == "full"
    assert set(hs.table) == {"md5", "sha1"}  # the FILE view has no SHA-256 column
    assert set(hs.table["sha1"]) == {raw(sha1(1)), raw(sha1(2))}
    assert list(hs.sizes) == [5, 7]


def test_rds3_bad_rows_name_the_row(tmp_path: Path) -> None:
    bad = (sha256(2), "XYZ", md5(2), "0", "b", 7, 1)
    path = sqlite_db(tmp_path / "bad.db", RDS3_MINIMAL_SCHEMA,
                     {"FILE": [rds3_row(1), bad, (sha256(3), sha1(3), EMPTY_MD5, "0", "c", 9, 1)]})
    with pytest.raises(HashSetError, match=r"bad\.db:FILE row 2: SHA-1 'XYZ'"):
        load_hashset(path)
    hs = load_hashset(path, lenient=True)
    assert hs.skipped == 1 and hs.dropped_empty == 1
    assert set(hs.table["md5"]) == {raw(md5(1))}


def test_rds3_negative_size_is_malformed(tmp_path: Path) -> None:
    path = sqlite_db(tmp_path / "neg.db", RDS3_MINIMAL_SCHEMA, {"FILE": [rds3_row(1, -5)]})
    with pytest.raises(HashSetError, match=r"FILE row 1: file_size"):
        load_hashset(path)


def test_kdb_blobs(tmp_path: Path) -> None:
    rows = [(1, raw(md5(1)), raw(sha1(1)), None), (2, raw(md5(2)), None, raw(sha256(2))),
            (3, md5(3).upper(), None, None)]  # some tools store hex text: accepted too
    path = sqlite_db(tmp_path / "notable.kdb", KDB_SCHEMA,
                     {"hashes": rows, "db_properties": [("Schema Major Version", "1")]})
    hs = load_hashset(path)
    assert hs.format == "tsk-kdb" and hs.kind == "known-bad"
    assert hs.table == {
        "md5": {raw(md5(1)): None, raw(md5(2)): None, raw(md5(3)): None},
        "sha1": {raw(sha1(1)): None},
        "sha256": {raw(sha256(2)): None},
    }
    assert hs.sources[0]["kdb_properties"] == {"Schema Major Version": "1"}


def test_kdb_wrong_length_blob(tmp_path: Path) -> None:
    path = sqlite_db(tmp_path / "short.kdb", KDB_SCHEMA, {"hashes": [(1, raw(md5(1))[:15], None, None)]})
    with pytest.raises(HashSetError, match=r"short\.kdb:hashes row 1: MD5 '.*' has 30 hex digits"):
        load_hashset(path)
    assert load_hashset(path, lenient=True).skipped == 1


def test_kdb_odd_value_type(tmp_path: Path) -> None:
    path = sqlite_db(tmp_path / "odd.kdb", KDB_SCHEMA, {"hashes": [(1, 12345, None, None)]})
    with pytest.raises(HashSetError, match=r"hashes row 1: md5 '12345' is not text or a BLOB"):
        load_hashset(path)


def test_sqlite_without_known_tables_is_not_recognised(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(HashSetError, match="not a recognised"):
        load_hashset(path)
    for fmt in ("nsrl-rds3", "tsk-kdb"):
        with pytest.raises(HashSetError, match=r"other\.db.*SQLite database without"):
            load_hashset(path, format=fmt)


@pytest.mark.parametrize("fmt", ["nsrl-rds3", "tsk-kdb"])
def test_forced_on_text_or_damaged_db(tmp_path: Path, fmt: str) -> None:
    text = tmp_path / "a.txt"
    text.write_text(f"{md5(1)}  a\n")
    with pytest.raises(HashSetError, match="not a SQLite database"):
        load_hashset(text, format=fmt)
    db = sqlite_db(tmp_path / "d.db", RDS3_MINIMAL_SCHEMA, {"FILE": [rds3_row(i) for i in range(200)]})
    data = bytearray(db.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # clobber a page
    db.write_bytes(bytes(data))
    with pytest.raises(HashSetError):
        load_hashset(db, format=fmt)


def test_database_is_opened_read_only(tmp_path: Path) -> None:
    path = sqlite_db(tmp_path / "ro.db", RDS3_MINIMAL_SCHEMA, {"FILE": [rds3_row(1)]})
    path.chmod(0o444)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert load_hashset(path).entries == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no -journal / -wal next to it


def test_registry_has_sqlite_parsers() -> None:
    assert {"nsrl-rds3", "tsk-kdb"} <= set(FORMATS)
