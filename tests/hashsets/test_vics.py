"""Project VIC VICS JSON, 1.x and 2.0, #Media and #Cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import load_hashset

from ._factory import (
    EMPTY_MD5,
    VICS_1_CASES,
    VICS_1_MEDIA,
    VICS_2_CASES,
    VICS_2_MEDIA,
    file_sha256,
    md5,
    raw,
    sha1,
    sha256,
    vics,
    write_text,
)


def _media() -> list[dict[str, object]]:
    return [
        {"MediaID": 1, "Category": 1, "MD5": md5(1).upper(), "SHA1": sha1(1).upper(), "MediaSize": 2835,
         "IsPrecategorized": "true", "MediaFiles": [{"MD5": "not-a-hash", "FileName": "a.jpg"}]},
        {"MediaID": 2, "Category": "2", "MD5": md5(2), "MediaSize": "4096", "Series": "example"},
        {"MediaID": 3, "MD5": md5(3), "SHA256": sha256(3), "Segments": [{"Category": 9}]},
        {"MediaID": 4, "Category": 3, "MD5": md5(4), "SHA1": sha1(4), "MediaSize": "0"},
        {"MediaID": 5, "Category": 0, "SHA1": sha1(5), "MediaSize": None},
        {"MediaID": 6, "Category": 4, "MD5": EMPTY_MD5, "MediaSize": 7},
    ]


EXPECTED = {
    "md5": {raw(md5(1)): "1", raw(md5(2)): "2", raw(md5(3)): None},
    "sha1": {raw(sha1(1)): "1", raw(sha1(5)): "0"},
    "sha256": {raw(sha256(3)): None},
}


@pytest.mark.parametrize("context", [VICS_1_MEDIA, VICS_2_MEDIA])
def test_media_shape(tmp_path: Path, context: str) -> None:
    path = write_text(tmp_path / "set.json", vics(context, _media()))
    hs = load_hashset(path)
    assert hs.format == "vics"
    assert hs.table == EXPECTED
    assert hs.dropped_empty == 3  # media 4 (size 0: MD5 + SHA1) and media 6 (empty MD5)
    assert hs.sha256 == file_sha256(path)


@pytest.mark.parametrize("context", [VICS_1_CASES, VICS_2_CASES])
def test_cases_shape(tmp_path: Path, context: str) -> None:
    media = _media()
    cases = [
        {"CaseID": "{00000000-0000-0000-0000-000000000001}", "SourceApplicationName": "test",
         "Media@odata.navigationLinkUrl": "Cases(1)/Media", "Media": media[:3]},
        {"CaseID": "{00000000-0000-0000-0000-000000000002}", "Media": media[3:]},
        {"CaseID": "{00000000-0000-0000-0000-000000000003}", "Media": []},
    ]
    hs = load_hashset(write_text(tmp_path / "cases.json", vics(context, cases)))
    assert hs.format == "vics"
    assert hs.table == EXPECTED


def test_context_after_value_and_media_array_marks_cases(tmp_path: Path) -> None:
    text = json.dumps({"value": [{"CaseID": "x", "Media": [{"MD5": md5(1), "Category": 1}]}],
                       "@odata.context": VICS_2_CASES})
    hs = load_hashset(write_text(tmp_path / "late.json", text))
    assert hs.table == {"md5": {raw(md5(1)): "1"}}


def test_context_last_media_shape(tmp_path: Path) -> None:
    text = json.dumps({"value": _media(), "odata.metadata": VICS_1_MEDIA})
    hs = load_hashset(write_text(tmp_path / "late-media.json", text))
    assert hs.table == EXPECTED
    assert hs.dropped_empty == 3


def test_case_inside_media_set(tmp_path: Path) -> None:
    value = [{"MD5": md5(1)}, {"CaseID": "x", "Media": [{"MD5": md5(2)}, {"Category": 1}]}]
    path = write_text(tmp_path / "mixed.json", vics(VICS_2_MEDIA, value))
    with pytest.raises(HashSetError, match=r"mixed\.json:value\[1\]\.Media\[1\]: media has neither"):
        load_hashset(path)
    assert load_hashset(path, lenient=True).entries == 2


def test_nist_caid_shape(tmp_path: Path) -> None:
    media = [{"odata.id": "Media(0)", "MediaFiles@odata.navigationLinkUrl": "Media(0)/MediaFiles",
              "MediaFiles": [{"MD5": md5(1), "FileName": "tex01.png", "FilePath": "Game/Content"}],
              "MediaID": 0, "MD5": md5(1), "SHA1": sha1(1), "Category": 8, "MediaSize": "488"}]
    ctx = "http://github.com/ICMEC/ProjectVic/DataModels/1.2.xml#Media"
    hs = load_hashset(write_text(tmp_path / "NSRL-CAID-X.json", vics(ctx, media)))
    # Category 8 marks known non-CSAM media: the set is known-good and its categories are ignored
    assert (hs.format, hs.kind) == ("nsrl-caid", "known-good")
    assert hs.table == {"md5": {raw(md5(1)): None}, "sha1": {raw(sha1(1)): None}}
    assert hs.sizes is not None and list(hs.sizes) == [488]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_bom(tmp_path: Path, encoding: str) -> None:
    text = vics(VICS_2_MEDIA, [{"MD5": md5(1), "Category": 1}])
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path = tmp_path / "bom.json"
    path.write_bytes(data)
    hs = load_hashset(path)
    assert hs.format == "vics"
    assert hs.table == {"md5": {raw(md5(1)): "1"}}


def test_duplicates_and_conflicts(tmp_path: Path) -> None:
    media = [{"MD5": md5(1), "Category": 2}, {"MD5": md5(1), "Category": 1}, {"MD5": md5(1), "Category": 1},
             {"MD5": md5(2)}, {"MD5": md5(2), "Category": 3}]
    hs = load_hashset(write_text(tmp_path / "d.json", vics(VICS_2_MEDIA, media)))
    assert hs.table == {"md5": {raw(md5(1)): "1", raw(md5(2)): "3"}}
    assert hs.conflicts == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"Category": 1, "MediaSize": 5}, "neither MD5 nor SHA1"),
        ({"MD5": md5(9)[:-1]}, md5(9)[:-1]),
        ({"MD5": md5(9), "SHA1": "xyz"}, "'xyz'"),
        ({"MD5": 12345}, "MD5 is not a string"),
        ({"MD5": md5(9), "Category": "high"}, "Category 'high'"),
        ({"MD5": md5(9), "MediaSize": "big"}, "MediaSize 'big'"),
        ("just a string", "expected a Media"),
    ],
)
@pytest.mark.parametrize("context_last", [False, True])
def test_malformed_media_reports_index(tmp_path: Path, bad: object, reason: str, context_last: bool) -> None:
    media = [{"MD5": md5(1)}, {"MD5": md5(2)}, bad, {"MD5": md5(3)}]
    text = vics(VICS_2_MEDIA, media)
    if context_last:  # unusual key order: parsed event by event instead of object by object
        text = json.dumps({"value": media, "@odata.context": VICS_2_MEDIA})
    path = write_text(tmp_path / "bad.json", text)
    with pytest.raises(HashSetError) as info:
        load_hashset(path)
    assert f"{path}:value[2]:" in str(info.value)
    assert reason in str(info.value)
    hs = load_hashset(path, lenient=True)
    assert hs.skipped == 1
    assert set(hs.table["md5"]) == {raw(md5(1)), raw(md5(2)), raw(md5(3))}


def test_malformed_nested_media_reports_case_and_media_index(tmp_path: Path) -> None:
    cases = [{"Media": [{"MD5": md5(1)}]}, {"Media": [{"MD5": md5(2)}, {"SHA1": "00"}]}]
    path = write_text(tmp_path / "c.json", vics(VICS_2_CASES, cases))
    with pytest.raises(HashSetError, match=r"c\.json:value\[1\]\.Media\[1\]:"):
        load_hashset(path)


@pytest.mark.parametrize("cut", [10, 60, 150, -3, -1])
def test_truncated_json(tmp_path: Path, cut: int) -> None:
    text = vics(VICS_2_MEDIA, [{"MD5": md5(i), "Category": 1} for i in range(5)])
    path = write_text(tmp_path / "trunc.json", text[:cut])
    with pytest.raises(HashSetError, match=r"trunc\.json"):
        load_hashset(path)
    with pytest.raises(HashSetError, match=r"trunc\.json"):
        load_hashset(path, lenient=True)


@pytest.mark.parametrize(
    "document",
    [
        {"@odata.context": VICS_2_MEDIA, "value": {"MD5": "x"}},
        {"@odata.context": VICS_2_MEDIA},
        [{"@odata.context": VICS_2_MEDIA}],
    ],
)
def test_structurally_wrong_json(tmp_path: Path, document: object) -> None:
    path = write_text(tmp_path / "s.json", json.dumps(document))
    with pytest.raises(HashSetError, match=r"s\.json"):
        load_hashset(path, format="vics")


def test_invalid_utf8_in_json(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    path.write_bytes(vics(VICS_2_MEDIA, [{"MD5": md5(1), "Series": "X"}]).encode().replace(b'"X"', b'"\xff\xfe"'))
    with pytest.raises(HashSetError, match=r"u\.json"):
        load_hashset(path)
