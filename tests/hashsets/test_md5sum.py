"""md5sum / sha1sum / sha256sum lists, BSD tag lines and bare hash lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import load_hashset

from ._factory import EMPTY_MD5, EMPTY_SHA256, file_sha256, md5, raw, sha1, sha256, write_text


def test_gnu_forms_mixed_algorithms(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "set.md5",
        f"{md5(1)}  photo 1.jpg\n"
        f"{sha1(2).upper()} *clip.mp4\n"
        f"\\{sha256(3)}  dir\\\\name.png\n"
        f"{md5(4)}\n",
    )
    hs = load_hashset(path)
    assert hs.format == "md5sum"
    assert hs.table == {
        "md5": {raw(md5(1)): None, raw(md5(4)): None},
        "sha1": {raw(sha1(2)): None},
        "sha256": {raw(sha256(3)): None},
    }
    assert hs.entries == 4
    assert (hs.skipped, hs.dropped_empty, hs.conflicts) == (0, 0, 0)
    assert hs.sha256 == file_sha256(path)
    assert hs.name == "set"
    assert hs.kind == "known-bad"


def test_bsd_tag_form_uses_last_marker(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "tags.txt",
        f"MD5 (report.pdf) = {md5(1)}\n"
        f"SHA1 (odd) = name) = x) = {sha1(2)}\n"
        f"SHA256 (c.bin) = {sha256(3).upper()}\n",
    )
    hs = load_hashset(path)
    assert hs.format == "md5sum"
    assert set(hs.table["md5"]) == {raw(md5(1))}
    assert set(hs.table["sha1"]) == {raw(sha1(2))}
    assert set(hs.table["sha256"]) == {raw(sha256(3))}


def test_comments_blank_lines_crlf_and_bom(tmp_path: Path) -> None:
    text = f"# exported list\r\n\r\n{md5(1)}  a\r\n   \r\n# {md5(9)}\r\n{md5(2)}  b\r\n"
    for encoding, name in (("utf-8-sig", "bom8.txt"), ("utf-16", "bom16.txt"), ("utf-8", "plain.txt")):
        hs = load_hashset(write_text(tmp_path / name, text, encoding))
        assert hs.format == "md5sum"
        assert set(hs.table["md5"]) == {raw(md5(1)), raw(md5(2))}


def test_old_mac_cr_line_endings(tmp_path: Path) -> None:
    hs = load_hashset(write_text(tmp_path / "cr.md5", f"{md5(1)}  a\r{md5(2)}  b\r{md5(3)}  c\r"))
    assert set(hs.table["md5"]) == {raw(md5(1)), raw(md5(2)), raw(md5(3))}


def test_empty_and_zero_digests_dropped_and_duplicates_merged(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "d.md5",
        f"{md5(1)}  a\n{EMPTY_MD5}  empty\n{'0' * 32}  zero\n{EMPTY_SHA256}  e2\n"
        f"{md5(1).upper()}  same-again\n",
    )
    hs = load_hashset(path)
    assert hs.table == {"md5": {raw(md5(1)): None}}
    assert hs.dropped_empty == 3
    assert hs.conflicts == 0


@pytest.mark.parametrize(
    ("bad_line", "quoted"),
    [
        (f"{md5(2)[:-1]}  short", md5(2)[:-1]),
        ("zz" + md5(2)[2:] + "  nonhex", "zz" + md5(2)[2:]),
        (f"SHA512 (x) = {md5(2)}", "SHA512"),
        (f"MD5 (x) {md5(2)}", "MD5 (x)"),
        (f"MD5 (x) = {sha1(2)}", sha1(2)),
        ("just some words", "just"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str, quoted: str) -> None:
    path = write_text(tmp_path / "bad.md5", f"{md5(1)}  ok\n# comment\n{bad_line}\n{md5(3)}  ok\n")
    with pytest.raises(HashSetError) as info:
        load_hashset(path)
    message = str(info.value)
    assert f"{path}:3:" in message
    assert quoted in message
    hs = load_hashset(path, lenient=True)
    assert hs.skipped == 1
    assert set(hs.table["md5"]) == {raw(md5(1)), raw(md5(3))}


def test_long_field_is_truncated_in_message(tmp_path: Path) -> None:
    path = write_text(tmp_path / "long.md5", f"{md5(1)}  ok\n{'g' * 5000}\n")
    with pytest.raises(HashSetError) as info:
        load_hashset(path)
    assert len(str(info.value)) < 250


def test_over_long_line_is_malformed_not_buffered(tmp_path: Path) -> None:
    path = write_text(tmp_path / "huge.md5", f"{md5(1)}  ok\n{md5(2)}  {'n' * 200_000}\n{md5(3)}  ok\n")
    with pytest.raises(HashSetError, match=r"huge\.md5:2:"):
        load_hashset(path)
    hs = load_hashset(path, lenient=True)
    assert hs.skipped == 1
    assert set(hs.table["md5"]) == {raw(md5(1)), raw(md5(3))}


def test_sha512_list_is_not_recognised(tmp_path: Path) -> None:
    path = write_text(tmp_path / "s.sha512", "ab" * 64 + "  x\n")
    with pytest.raises(HashSetError, match="not a recognised hash-set format"):
        load_hashset(path)
