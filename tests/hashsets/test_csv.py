"""Generic CSV/TSV hash sets and legacy NSRL NSRLFile.txt."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import load_hashset

from ._factory import EMPTY_MD5, file_sha256, md5, raw, sha1, sha256, write_text


def _csv(rows: list[list[str]], delimiter: str = ",", lineterminator: str = "\r\n") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=lineterminator).writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_quotes_categories(tmp_path: Path, delimiter: str) -> None:
    rows = [
        ["SHA-256", "MD5", "Category", "Note"],
        [sha256(1), md5(1), "A", f"quoted{delimiter} with delimiter"],
        ["", md5(2).upper(), " B ", "x"],
        [sha256(3), "", "", "no category"],
    ]
    path = write_text(tmp_path / "set.csv", _csv(rows, delimiter))
    hs = load_hashset(path)
    assert hs.format == "csv"
    assert hs.table == {
        "md5": {raw(md5(1)): "A", raw(md5(2)): "B"},
        "sha256": {raw(sha256(1)): "A", raw(sha256(3)): None},
    }
    assert hs.sha256 == file_sha256(path)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_bom_and_crlf(tmp_path: Path, encoding: str) -> None:
    text = _csv([["md5", "CATEGORY"], [md5(1), "C"], [md5(2), "1"]])
    hs = load_hashset(write_text(tmp_path / "bom.csv", text, encoding))
    assert hs.format == "csv"
    assert hs.table == {"md5": {raw(md5(1)): "C", raw(md5(2)): "1"}}


def test_old_mac_cr_line_endings(tmp_path: Path) -> None:
    text = _csv([["md5", "category"], [md5(1), "A"], [md5(2), "B"]], lineterminator="\r")
    hs = load_hashset(write_text(tmp_path / "cr.csv", text))
    assert hs.table == {"md5": {raw(md5(1)): "A", raw(md5(2)): "B"}}


def test_icse_like_header(tmp_path: Path) -> None:
    header = (
        "MD5;SHA1;ZZ40;PhotoDNA;Lace;Image ID;Is distributed;Victim identified;Offender identified;"
        "Series name;Investigation name;Agency;Number of submissions;File Available;Media Type;Baseline"
    )
    line = f"{md5(1)};{sha1(1)};;;;IMG-0001;Y;N;N;example-series;;;3;True;Image;Yes"
    other = f"{md5(2)};{sha1(2)};;;;IMG-0002;N;N;N;;;;1;False;Video;No"
    short = f"{md5(3)};{sha1(3)}"  # IPED tolerates rows with fewer columns; so do we
    hs = load_hashset(write_text(tmp_path / "icse.csv", f"{header}\n{line}\n{other}\n{short}\n"))
    assert hs.format == "icse" and hs.kind == "known-bad"
    assert hs.table == {
        "md5": {raw(md5(1)): "baseline", raw(md5(2)): None, raw(md5(3)): None},
        "sha1": {raw(sha1(1)): "baseline", raw(sha1(2)): None, raw(sha1(3)): None},
    }


def test_duplicates_conflicts_and_none_vs_label(tmp_path: Path) -> None:
    rows = [
        ["md5", "category"],
        [md5(1), "C"],
        [md5(1), "C"],  # same: silent
        [md5(1), "A"],  # conflict, A is more severe
        [md5(1), "B"],  # conflict, A stays
        [md5(2), ""],
        [md5(2), "B"],  # None vs B: keep B, no conflict
        [md5(3), "B"],
        [md5(3), ""],  # B vs None: keep B
        [EMPTY_MD5, "A"],
    ]
    hs = load_hashset(write_text(tmp_path / "c.csv", _csv(rows)))
    assert hs.table == {"md5": {raw(md5(1)): "A", raw(md5(2)): "B", raw(md5(3)): "B"}}
    assert hs.conflicts == 1  # one digest carries several categories; every pair is kept
    assert sorted(hs.lookup("md5", raw(md5(1)))) == ["A", "B", "C"]
    assert hs.lookup("md5", raw(md5(2))) == ["B"]
    assert hs.dropped_empty == 1


def test_optional_empty_column_is_absent_but_all_empty_is_malformed(tmp_path: Path) -> None:
    rows = [["MD5", "SHA1", "Category"], [md5(1), "", "A"], ["", "", "B"], [md5(3), sha1(3), "C"]]
    path = write_text(tmp_path / "m.csv", _csv(rows, lineterminator="\n"))
    with pytest.raises(HashSetError) as info:
        load_hashset(path)
    assert f"{path}:3:" in str(info.value)
    hs = load_hashset(path, lenient=True)
    assert hs.skipped == 1
    assert hs.table == {"md5": {raw(md5(1)): "A", raw(md5(3)): "C"}, "sha1": {raw(sha1(3)): "C"}}


def test_multiline_quoted_field_keeps_line_numbers(tmp_path: Path) -> None:
    text = f'md5,note\n{md5(1)},"two\nlines"\n{md5(2)},ok\nnothex{md5(3)[6:]},bad\n'
    path = write_text(tmp_path / "q.csv", text)
    with pytest.raises(HashSetError, match=r"q\.csv:5: MD5 'nothex"):
        load_hashset(path)


def test_excel_mangled_hash_rejected(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.csv", f"MD5,Category\n{md5(1)},A\n1.23457E+31,B\n")
    with pytest.raises(HashSetError, match=r"x\.csv:3:.*1\.23457E\+31"):
        load_hashset(path)


def test_blank_and_comment_rows_ignored(tmp_path: Path) -> None:
    text = f"sha1,category\n\n# note\n,\n{sha1(1)},A\n"
    hs = load_hashset(write_text(tmp_path / "b.csv", text))
    assert hs.table == {"sha1": {raw(sha1(1)): "A"}}
    assert hs.skipped == 0


def test_first_line_without_hash_column_not_detected(tmp_path: Path) -> None:
    path = write_text(tmp_path / "n.csv", f"name,hash\na,{md5(1)}\n")
    with pytest.raises(HashSetError, match="not a recognised hash-set format"):
        load_hashset(path)
    with pytest.raises(HashSetError, match=r"n\.csv:1: header names no"):
        load_hashset(path, format="csv")


def test_md5sum_line_naming_a_hash_column_is_not_a_header(tmp_path: Path) -> None:
    hs = load_hashset(write_text(tmp_path / "l.txt", f"{md5(1)}  x,md5\n{md5(2)}  sha1\n"))
    assert hs.format == "md5sum"
    assert hs.entries == 2


NSRL_HEADER = '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'


def _nsrl_rows() -> str:
    return (
        f'"{sha1(1).upper()}","{md5(1).upper()}","DEADBEEF","setup, part 1.dll",1024,1234,"358",""\r\n'
        f'"{sha1(2).upper()}","{md5(2).upper()}","DEADBEEF","empty.txt",0,1234,"358",""\r\n'
        f'"{sha1(1).upper()}","{md5(1).upper()}","DEADBEEF","copy.dll",1024,99,"358",""\r\n'
    )


def test_nsrl_rds2_plain(tmp_path: Path) -> None:
    path = write_text(tmp_path / "NSRLFile.txt", NSRL_HEADER + _nsrl_rows())
    hs = load_hashset(path, kind="known-good")
    assert hs.format == "nsrl-rds2"
    assert hs.kind == "known-good"
    assert hs.table == {"md5": {raw(md5(1)): None}, "sha1": {raw(sha1(1)): None}}
    assert hs.dropped_empty == 2
    assert hs.name == "NSRLFile"


def test_nsrl_rds2_zipped(tmp_path: Path) -> None:
    path = tmp_path / "NSRLFile.txt.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", "not this one")
        zf.writestr("rds/NSRLFile.txt", NSRL_HEADER + _nsrl_rows())
    hs = load_hashset(path)
    assert hs.format == "nsrl-rds2"
    assert hs.entries == 2
    assert hs.sha256 == file_sha256(path)


def test_nsrl_older_layout_and_bad_size(tmp_path: Path) -> None:
    header = '"SHA-1","FileName","FileSize","ProductCode","OpSystemCode","MD4","MD5","CRC32","SpecialCode"\n'
    good = f'"{sha1(1)}","a.dll",10,1,"1","{"0" * 32}","{md5(1)}","0",""\n'
    bad = f'"{sha1(2)}","b.dll",ten,1,"1","","{md5(2)}","0",""\n'
    path = write_text(tmp_path / "NSRLFile.txt", header + good + bad)
    with pytest.raises(HashSetError, match=r"NSRLFile\.txt:3: FileSize 'ten'"):
        load_hashset(path)
    hs = load_hashset(path, lenient=True)
    assert hs.table == {"md5": {raw(md5(1)): None}, "sha1": {raw(sha1(1)): None}}


def test_zip_without_nsrl_entry_not_recognised(tmp_path: Path) -> None:
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.txt", f"{md5(1)}  a\n")
    with pytest.raises(HashSetError, match="not a recognised"):
        load_hashset(path)
    with pytest.raises(HashSetError, match="no NSRLFile.txt entry"):
        load_hashset(path, format="nsrl-rds2")
