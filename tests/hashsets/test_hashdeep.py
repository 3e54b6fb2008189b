"""hashdeep audit files."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import load_hashset

from ._factory import md5, raw, sha1, sha256, write_text

HEADER = "%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n## Invoked from: /evidence\n## $ hashdeep -c md5,sha256 -r .\n## \n"


def test_basic_with_comma_in_name_and_empty_size(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "audit.txt",
        HEADER
        + f"4096,{md5(1)},{sha256(1)},./a,b.jpg\n"
        + f"10,{md5(2).upper()},{sha256(2)},./x, y ,z.png\n"
        + f"0,{md5(3)},{sha256(3)},./empty.txt\n",
    )
    hs = load_hashset(path)
    assert hs.format == "hashdeep"
    assert hs.table == {
        "md5": {raw(md5(1)): None, raw(md5(2)): None},
        "sha256": {raw(sha256(1)): None, raw(sha256(2)): None},
    }
    assert hs.dropped_empty == 2  # both digests of the zero-size line


def test_crlf_bom_and_unsupported_columns_read_past(tmp_path: Path) -> None:
    text = (
        "%%%% HASHDEEP-1.0\r\n%%%% size,md5,sha1,tiger,filename\r\n"
        f"5,{md5(1)},{sha1(1)},{'ab' * 24},C:\\a,b\r\n"
    )
    hs = load_hashset(write_text(tmp_path / "w.hashdeep", text, "utf-8-sig"))
    assert hs.format == "hashdeep"
    assert hs.table == {"md5": {raw(md5(1)): None}, "sha1": {raw(sha1(1)): None}}


@pytest.mark.parametrize(
    ("bad_line", "quoted"),
    [
        (f"12,{md5(2)}", md5(2)),  # too few fields
        (f"x12,{md5(2)},{sha256(2)},n", "x12"),  # size not a number
        (f"12,,{sha256(2)},n", "md5"),  # required hash empty
        (f"12,{md5(2)},{sha256(2)[:-2]},n", sha256(2)[:-2]),  # wrong length
    ],
)
def test_malformed_lines(tmp_path: Path, bad_line: str, quoted: str) -> None:
    path = write_text(tmp_path / "bad.txt", HEADER + f"1,{md5(1)},{sha256(1)},ok\n{bad_line}\n")
    with pytest.raises(HashSetError) as info:
        load_hashset(path)
    assert f"{path}:7:" in str(info.value)
    assert quoted in str(info.value)
    hs = load_hashset(path, lenient=True)
    assert (hs.skipped, hs.entries) == (1, 2)


def test_header_without_supported_algorithm_fails_even_lenient(tmp_path: Path) -> None:
    path = write_text(tmp_path / "t.txt", "%%%% HASHDEEP-1.0\n%%%% size,tiger,filename\n1,abc,n\n")
    with pytest.raises(HashSetError, match=r"t\.txt:2:"):
        load_hashset(path, lenient=True)


def test_data_before_column_header(tmp_path: Path) -> None:
    path = write_text(tmp_path / "h.txt", f"%%%% HASHDEEP-1.0\n1,{md5(1)},n\n")
    with pytest.raises(HashSetError, match=r"h\.txt:2: data line before"):
        load_hashset(path)
