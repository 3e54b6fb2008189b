"""Hostile input: nesting bombs, huge tokens and lines, NUL bytes. One clear error, bounded
memory and time, never a traceback."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import FORMATS, load_hashset

from ._factory import VICS_2_CASES, VICS_2_MEDIA, md5

DEPTH = 200_000  # ijson would need O(depth^2) memory: gigabytes


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(
    "document",
    [
        '{"@odata.context":"%s","value":[' % VICS_2_MEDIA + "[" * DEPTH + "]" * DEPTH + "]}",  # fast path
        '{"@odata.context":"%s","value":[{"MD5":"%s","x":' % (VICS_2_MEDIA, md5(1)) + "[" * DEPTH + "]" * DEPTH + "}]}",
        '{"@odata.context":"%s","value":[{"Media":[' % VICS_2_CASES + "{\"a\":" * DEPTH + "1" + "}" * DEPTH + "]}]}",
        '{"value":[{"MD5":"%s","x":' % md5(1) + "[" * DEPTH + "]" * DEPTH + '}],"@odata.context":"x#Media"}',
        "[" * DEPTH,
    ],
    ids=["fast-path", "fast-path-field", "cases", "context-last", "unterminated"],
)
@pytest.mark.parametrize("lenient", [False, True])
def test_json_nesting_bomb(tmp_path: Path, document: str, lenient: bool) -> None:
    path = tmp_path / "bomb.json"
    path.write_text(document)
    before = _rss_mb()
    with pytest.raises(HashSetError, match=r"bomb\.json.*(nested|not a recognised|invalid)") as info:
        load_hashset(path, lenient=lenient, format="vics" if document.startswith("[") else None)
    assert "\n" not in str(info.value)
    assert _rss_mb() - before < 300


def test_huge_json_string(tmp_path: Path) -> None:
    cases = '{"@odata.context":"%s","value":[{"Media":[{"MD5":"' % VICS_2_CASES + "a" * (8 << 20) + '"}]}]}'
    path = tmp_path / "s.json"
    path.write_text(cases)
    with pytest.raises(HashSetError, match="JSON string longer than"):
        load_hashset(path)
    media = '{"@odata.context":"%s","value":[{"MD5":"' % VICS_2_MEDIA + "a" * (8 << 20) + '"}]}'
    path.write_text(media)  # the fast path decodes it and rejects the value
    with pytest.raises(HashSetError, match="has 8388608 hex digits"):
        load_hashset(path)


@pytest.mark.parametrize("fmt", ["md5sum", "csv", "hashdeep", "nsrl-rds2", "icse", "hashkeeper", "tsk-idx"])
def test_huge_single_line(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "one.txt"
    path.write_bytes(b"x" * (32 << 20))  # 32 MiB, no newline
    before = _rss_mb()
    try:
        hs = load_hashset(path, format=fmt, lenient=True)
        assert hs.entries == 0
    except HashSetError as exc:
        assert "one.txt" in str(exc)
    with pytest.raises(HashSetError, match="one.txt"):
        load_hashset(path, format=fmt)
    assert _rss_mb() - before < 400


def test_csv_with_nul_bytes(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(f"md5,category\n{md5(1)},A\n\x00\x00{md5(2)[2:]},\x00B\n{md5(3)},C\n".encode())
    with pytest.raises(HashSetError, match="not a recognised"):  # NULs: not taken for text
        load_hashset(path)
    with pytest.raises(HashSetError, match=r"nul\.csv:3:"):
        load_hashset(path, format="csv")
    hs = load_hashset(path, format="csv", lenient=True)
    assert hs.skipped == 1 and set(hs.table["md5"]) == {bytes.fromhex(md5(1)), bytes.fromhex(md5(3))}


@pytest.mark.parametrize("fmt", [None, *FORMATS])
def test_binary_garbage(tmp_path: Path, fmt: str | None) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 4096 + b"\n" + b"\xff\x00" * 1000)
    try:
        hs = load_hashset(path, format=fmt, lenient=True)
        assert hs.entries == 0
    except HashSetError as exc:
        assert "garbage.bin" in str(exc) and "\n" not in str(exc)
