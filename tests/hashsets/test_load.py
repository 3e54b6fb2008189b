"""The public entry point: registry, detection, options, and file-level errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from triage.errors import ExitCode, HashSetError
from triage.hashsets import FORMATS, load_hashset

from ._factory import VICS_2_MEDIA, file_sha256, md5, raw, sha1, vics, write_text


def test_registry_ids_and_detection_order() -> None:
    assert list(FORMATS) == [
        "vics", "nsrl-caid", "nsrl-rds3", "tsk-kdb", "hashdeep", "tsk-idx", "nsrl-rds2",
        "hashkeeper", "icse", "csv", "md5sum",
    ]
    for format_id, parser in FORMATS.items():
        assert parser.id == format_id
        assert parser.description
        assert callable(parser.detect) and callable(parser.parse)


def test_detection_is_by_content_not_extension(tmp_path: Path) -> None:
    samples = {
        "vics": vics(VICS_2_MEDIA, [{"MD5": md5(1)}]),
        "hashdeep": f"%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n1,{md5(1)},a\n",
        "nsrl-rds2": f'"SHA-1","MD5","CRC32","FileName","FileSize"\n"{sha1(1)}","{md5(1)}","0","a",1\n',
        "csv": f"MD5,Category\n{md5(1)},A\n",
        "md5sum": f"{md5(1)}  a\n",
    }
    for expected, text in samples.items():
        path = write_text(tmp_path / f"{expected}.dat", text)
        assert load_hashset(path).format == expected
        for format_id, parser in FORMATS.items():
            assert parser.detect(path.read_bytes()[:4096], path) == (
                format_id == expected or (expected == "nsrl-rds2" and format_id == "csv")
            ), (expected, format_id)


def test_options_name_kind_format(tmp_path: Path) -> None:
    path = write_text(tmp_path / "my set.v1.txt", f"{md5(1)}  a\n")
    hs = load_hashset(str(path))
    assert hs.name == "my set.v1"
    assert hs.path == str(path)
    hs = load_hashset(path, kind="known-good", name="Good", format="md5sum")
    assert (hs.name, hs.kind, hs.format) == ("Good", "known-good", "md5sum")
    assert hs.table == {"md5": {raw(md5(1)): None}}
    assert hs.sha256 == file_sha256(path)
    assert hs.algorithms == ["md5"]


def test_unknown_format_lists_valid_ids(tmp_path: Path) -> None:
    path = write_text(tmp_path / "a.txt", f"{md5(1)}\n")
    with pytest.raises(HashSetError) as info:
        load_hashset(path, format="encase")
    for format_id in FORMATS:
        assert format_id in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(HashSetError, match="kind"):
        load_hashset(write_text(tmp_path / "a.txt", f"{md5(1)}\n"), kind="bad")


def test_forced_wrong_format_is_a_hash_set_error(tmp_path: Path) -> None:
    path = write_text(tmp_path / "a.md5", f"{md5(1)}  a\n{md5(2)}  b\n")
    for format_id in FORMATS:
        if format_id != "md5sum":
            with pytest.raises(HashSetError, match=r"a\.md5"):
                load_hashset(path, format=format_id)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (bytes(range(256)) * 64, "not a recognised"),
        (b"\x00" * 100, "not a recognised"),
        (b"hello world\nthis is prose\n", "not a recognised"),
        (b"\xff\xd8\xff\xe0" + bytes(range(200)), "not a recognised"),
        (b"{\"a\": 1}", "not a recognised"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    with pytest.raises(HashSetError, match=message) as info:
        load_hashset(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(HashSetError, match="no such file"):
        load_hashset(tmp_path / "missing.txt")
    with pytest.raises(HashSetError, match="is a directory"):
        load_hashset(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_unreadable(tmp_path: Path) -> None:
    path = write_text(tmp_path / "locked.txt", f"{md5(1)}\n")
    path.chmod(0)
    try:
        with pytest.raises(HashSetError, match="permission denied"):
            load_hashset(path)
    finally:
        path.chmod(0o600)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(HashSetError, match="not a regular file"):
        load_hashset(fifo)
