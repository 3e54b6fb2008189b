"""Formats added for national-scale sets: HashKeeper, TSK .idx, NIST CAID, VICS regions, and the
VICS fast path (chunked decoding) checked against the reference (ijson) path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import _vicsfast, load_hashset

from ._factory import EMPTY_MD5, VICS_1_MEDIA, VICS_2_MEDIA, md5, raw, sha1, sha256, vics, write_text

HASHKEEPER_HEADER = ('"file_id","hashset_id","file_name","directory","hash","file_size","date_modified",'
                     '"time_modified","time_zone","comments","date_accessed","time_accessed"')


def test_hashkeeper(tmp_path: Path) -> None:
    rows = [f'1,7,"a, b.jpg","C:\\x","{md5(1).upper()}",120,,,,"",,',
            f'2,7,"c.jpg","C:\\x","{md5(2)}",,,,,"",,',
            f'3,7,"e.jpg","C:\\x","{EMPTY_MD5}",0,,,,"",,']
    hs = load_hashset(write_text(tmp_path / "set.hsh", HASHKEEPER_HEADER + "\n" + "\n".join(rows) + "\n"))
    assert hs.format == "hashkeeper"
    assert hs.table == {"md5": {raw(md5(1)): None, raw(md5(2)): None}}
    assert hs.dropped_empty == 1
    assert hs.sizes is None  # row 2 declares no size: no size filter


def test_hashkeeper_bad_hash_and_size(tmp_path: Path) -> None:
    text = HASHKEEPER_HEADER + f'\n1,7,"a","d","{sha1(1)}",5\n2,7,"b","d","{md5(2)}",big\n'
    path = write_text(tmp_path / "bad.hsh", text)
    with pytest.raises(HashSetError, match=r"bad\.hsh:2: MD5 '.*' has 40 hex digits, expected 32"):
        load_hashset(path)
    hs = load_hashset(path, lenient=True)
    assert hs.skipped == 2 and hs.entries == 0


def test_tsk_idx(tmp_path: Path) -> None:
    text = ("00000000000000000000000000000000000000000|md5sum\n"
            "00000000000000000000000000000000000000001|example hashes\n"
            f"{md5(1).upper()}|0000000000000000\n{md5(2).upper()}|0000000000000049\n"
            f"{'0' * 32}|0000000000000077\nNOT-A-LINE\n")
    path = write_text(tmp_path / "set-md5.idx", text)
    with pytest.raises(HashSetError, match=r"set-md5\.idx:6: expected 'HASH\|offset'"):
        load_hashset(path)
    hs = load_hashset(path, lenient=True)
    assert hs.format == "tsk-idx"
    assert hs.table == {"md5": {raw(md5(1)): None, raw(md5(2)): None}}
    assert (hs.skipped, hs.dropped_empty) == (1, 1)


def test_nist_caid_is_known_good_and_ignores_category(tmp_path: Path) -> None:
    ctx = "http://github.com/ICMEC/ProjectVic/DataModels/1.2.xml#Media"
    media = [{"MediaFiles": [{"MD5": md5(1), "FileName": "t.png"}], "MediaID": 0, "MD5": md5(1),
              "SHA1": sha1(1), "Category": 8, "MediaSize": "488"},
             {"MediaID": 0, "MD5": md5(2), "Category": "not a number", "MediaSize": "12"}]
    path = write_text(tmp_path / "NSRL-CAID-X.json", vics(ctx, media))
    hs = load_hashset(path)
    assert (hs.format, hs.kind) == ("nsrl-caid", "known-good")
    assert hs.table == {"md5": {raw(md5(1)): None, raw(md5(2)): None}, "sha1": {raw(sha1(1)): None}}
    assert list(hs.sizes) == [12, 488]
    assert load_hashset(path, kind="known-bad").kind == "known-bad"  # an explicit kind wins
    with pytest.raises(HashSetError, match="Category 'not a number'"):  # read as plain VICS
        load_hashset(path, format="vics")


@pytest.mark.parametrize(("region", "profile"), [("US", "us"), ("UK", "uk"), ("Default", None), ("CUSTOM", None)])
def test_vics_region_is_recorded_and_picks_the_profile(tmp_path: Path, region: str, profile: str | None) -> None:
    ctx = VICS_2_MEDIA.replace("/Default/", f"/{region}/")
    hs = load_hashset(write_text(tmp_path / "r.json", vics(ctx, [{"MD5": md5(1), "Category": 1}])))
    assert hs.sources[0]["vics_profile"] == region
    assert hs.sources[0]["vics_version"] == "2.0" and hs.sources[0]["vics_shape"] == "Media"
    assert (hs.profile.name if hs.profile else None) == profile


def test_vics_1x_version(tmp_path: Path) -> None:
    hs = load_hashset(write_text(tmp_path / "v.json", vics(VICS_1_MEDIA, [{"MD5": md5(1)}])))
    assert hs.sources[0]["vics_version"] == "1.3" and "vics_profile" not in hs.sources[0]


# -- the fast path against the reference path ------------------------------------------------

def _media(n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        item: dict[str, object] = {"MediaID": i, "MD5": md5(i).upper(), "Category": i % 5, "MediaSize": 100 + i}
        if i % 3 == 0:
            item["SHA1"] = sha1(i)
            item["MediaFiles"] = [{"MD5": md5(i), "FileName": f"n{j}.jpg", "Note": "},{\"MediaID\":"} for j in range(i % 4)]
        if i % 7 == 0:
            item["SHA256"] = sha256(i)
        if i % 11 == 0:
            item["Category"] = str(i % 5)
            item["MediaSize"] = str(100 + i)
        if i % 13 == 0:
            item["Comments"] = 'quote \\" bracket ] brace } backslash \\\\'
        out.append(item)
    out.append({"CaseID": "in-a-media-set", "Media": [{"MD5": md5(1000)}, {"SHA1": sha1(1001), "Category": 2}]})
    out.append({"MD5": md5(1), "Category": 4})  # a conflict with item 1
    return out


def _reference(path: Path, **kw: object):
    """The same document with the context last: parsed by the ijson event walker."""
    doc = json.loads(path.read_text())
    other = path.with_name("reference.json")
    other.write_text(json.dumps({"value": doc["value"], "@odata.context": doc["@odata.context"]}))
    return load_hashset(other, **kw)


@pytest.mark.parametrize("chunk", [7, 64, 1000, 8 * 1024 * 1024])
@pytest.mark.parametrize("indent", [None, 2])
def test_fast_path_equals_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, indent: int | None) -> None:
    monkeypatch.setattr(_vicsfast, "CHUNK", chunk)
    doc = {"@odata.context": VICS_2_MEDIA, "value": _media(60), "odata.count": 62}
    path = tmp_path / "set.json"
    path.write_text(json.dumps(doc, indent=indent))
    fast, ref = load_hashset(path), _reference(path)
    assert fast.table == ref.table
    assert (fast.entries, fast.conflicts, fast.dropped_empty) == (ref.entries, ref.conflicts, ref.dropped_empty)
    assert fast.sources[0]["records"] == ref.sources[0]["records"]
    assert fast.conflicts == 1 and sorted(fast.lookup("md5", raw(md5(1)))) == ["1", "4"]


@pytest.mark.parametrize("chunk", [5, 50, 8 * 1024 * 1024])
def test_fast_path_errors_name_the_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(_vicsfast, "CHUNK", chunk)
    media = _media(30)
    media[17] = {"MD5": md5(17)[:-2], "Category": 1}
    path = write_text(tmp_path / "bad.json", vics(VICS_2_MEDIA, media))
    with pytest.raises(HashSetError, match=r"bad\.json:value\[17\]: MD5 '.*' has 30 hex digits"):
        load_hashset(path)
    media[23] = {"MD5": 5}
    path = write_text(tmp_path / "bad.json", vics(VICS_2_MEDIA, media))
    hs = load_hashset(path, lenient=True)
    assert hs.skipped == 2


@pytest.mark.parametrize("chunk", [9, 8 * 1024 * 1024])
def test_fast_path_truncated_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(_vicsfast, "CHUNK", chunk)
    text = vics(VICS_2_MEDIA, [{"MD5": md5(i), "Category": 1, "MediaFiles": [{"A": "x"}]} for i in range(3)])
    start = text.index('"value"') + 10
    for cut in range(start, len(text) - 1, 3):
        path = write_text(tmp_path / "t.json", text[:cut])
        with pytest.raises(HashSetError, match=r"t\.json"):
            load_hashset(path, lenient=True)


def test_fast_path_trailing_members_and_garbage(tmp_path: Path) -> None:
    ok = vics(VICS_2_MEDIA, [{"MD5": md5(1)}])[:-1] + ', "@odata.nextLink": "x", "n": [1, 2]}'
    assert load_hashset(write_text(tmp_path / "ok.json", ok)).entries == 1
    bad = vics(VICS_2_MEDIA, [{"MD5": md5(1)}]) + " trailing"
    with pytest.raises(HashSetError, match=r"bad\.json"):
        load_hashset(write_text(tmp_path / "bad.json", bad))


def test_fast_path_without_msgspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vicsfast, "_DECODER", None)
    path = write_text(tmp_path / "set.json", vics(VICS_2_MEDIA, _media(40)))
    assert load_hashset(path).table == _reference(path).table


_ONE = '{"MD5":"%s"}' % md5(1)


@pytest.mark.parametrize("chunk", [3, 8 * 1024 * 1024])
@pytest.mark.parametrize(
    ("body", "valid"),
    [(_ONE, True), (f"{_ONE},{_ONE}", True), (f"{_ONE} ,\n {_ONE}", True), ("", True), (" ", True),
     (f"{_ONE},", False), (f",{_ONE}", False), (_ONE + _ONE, False), (f"{_ONE},,{_ONE}", False)],
)
def test_fast_path_separators_are_strict_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, body: str, valid: bool) -> None:
    monkeypatch.setattr(_vicsfast, "CHUNK", chunk)
    path = write_text(tmp_path / "s.json", '{"@odata.context":"%s","value":[%s]}' % (VICS_2_MEDIA, body))
    if valid:
        load_hashset(path)
    else:
        with pytest.raises(HashSetError, match=r"s\.json"):
            load_hashset(path)
