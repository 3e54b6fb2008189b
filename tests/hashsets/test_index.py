"""The compiled index (.tdb): round trip, bounded-memory build, damage, kind safety, pickling."""

from __future__ import annotations

import gc
import hashlib
import json
import pickle
import random
from pathlib import Path

import pytest

from triage.errors import HashSetError
from triage.hashsets import import_hashsets, load_hashset, loader, store, tdb

from ._factory import VICS_2_MEDIA, md5, raw, sha1, sha256, vics, write_text


def _vics_set(tmp_path: Path) -> Path:
    media = [{"MD5": md5(i), "SHA1": sha1(i), "Category": i % 3, "MediaSize": 10 + i} for i in range(1, 40)]
    media.append({"MD5": md5(1), "Category": 2})  # md5(1): categories 1 and 2 -> a kept conflict
    return write_text(tmp_path / "pv.json", vics(VICS_2_MEDIA.replace("Default", "US"), media))


def test_round_trip_and_header(tmp_path: Path) -> None:
    source = _vics_set(tmp_path)
    out = tmp_path / "pv.tdb"
    header = import_hashsets([source], out, name="ProjectVIC")
    memory, index = load_hashset(source), load_hashset(out)
    assert (index.format, index.name, index.kind) == ("tdb", "ProjectVIC", "known-bad")
    assert index.table == memory.table
    assert index.entries == memory.entries == 78
    assert index.conflicts == memory.conflicts == 1
    assert sorted(index.lookup("md5", raw(md5(1)))) == ["1", "2"]
    assert index.lookup("sha1", raw(sha1(3))) == ["0"]
    assert index.lookup("md5", raw(md5(99))) == [] and index.lookup("sha256", raw(sha256(1))) == []
    assert index.lookup("md5", b"short") == []
    assert index.profile.name == "us" and index.label("1") == "Child Abuse Material (CAM)"
    assert index.sha256 == header["sections_sha256"] and tdb.verify(out)
    assert header["format_version"] == tdb.FORMAT_VERSION and header["created"].endswith("Z")
    src = header["sources"][0]
    assert src["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (src["format"], src["records"], src["vics_profile"]) == ("vics", 40, "US")
    assert header["algorithms"]["md5"]["counts"] == {"0": 13, "1": 13, "2": 14}
    assert header["conflicts"]["examples"] == [
        {"algorithm": "md5", "digest": md5(1), "categories": ["1", "2"]}]
    assert header["sizes"]["complete"] is False  # the extra record has no MediaSize
    assert index.may_contain_size(123456)


def test_sizes_are_kept_when_every_record_has_one(tmp_path: Path) -> None:
    media = [{"MD5": md5(i), "MediaSize": s} for i, s in enumerate([5, 7, 7, 2**40], 1)]
    out = tmp_path / "s.tdb"
    import_hashsets([write_text(tmp_path / "s.json", vics(VICS_2_MEDIA, media))], out)
    hs = load_hashset(out)
    assert list(hs.sizes) == [5, 7, 2**40]
    assert hs.may_contain_size(7) and not hs.may_contain_size(6) and not hs.may_contain_size(2**41)


def test_lookup_many_equals_lookup(tmp_path: Path) -> None:
    out = tmp_path / "pv.tdb"
    import_hashsets([_vics_set(tmp_path)], out)
    hs = load_hashset(out)
    queries = [raw(md5(i)) for i in range(0, 60)] + [b"", raw(sha1(1))]
    assert hs.lookup_many("md5", queries) == [tuple(hs.lookup("md5", q)) for q in queries]
    assert hs.lookup_many("sha256", queries[:3]) == [(), (), ()]


def test_several_sources_one_index(tmp_path: Path) -> None:
    csv = write_text(tmp_path / "caid.csv", f"MD5,Category\n{md5(1)},A\n{md5(500)},B\n")
    out = tmp_path / "all.tdb"
    header = import_hashsets([_vics_set(tmp_path), csv], out, profile="uk")
    hs = load_hashset(out)
    assert [s["format"] for s in header["sources"]] == ["vics", "csv"]
    assert sorted(hs.lookup("md5", raw(md5(1)))) == ["1", "2", "A"]
    assert hs.profile.name == "uk" and hs.label("A").startswith("Category A")


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    source, out = _vics_set(tmp_path), tmp_path / "pv.tdb"
    import_hashsets([source], out)
    with pytest.raises(HashSetError, match="--force"):
        import_hashsets([source], out)
    import_hashsets([source], out, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pv.json", "pv.tdb"]  # no temp files left


def test_kind_is_recorded_and_enforced(tmp_path: Path) -> None:
    good = tmp_path / "good.tdb"
    import_hashsets([write_text(tmp_path / "g.md5", f"{md5(1)}  a\n")], good, kind="known-good")
    assert load_hashset(good).kind == "known-good"
    assert load_hashset(good, kind="known-good").kind == "known-good"
    with pytest.raises(HashSetError, match="compiled as known-good"):
        load_hashset(good, kind="known-bad")
    bad = tmp_path / "bad.tdb"
    import_hashsets([_vics_set(tmp_path)], bad)
    with pytest.raises(HashSetError, match="compiled as known-bad"):  # would hide hits
        load_hashset(bad, kind="known-good")


def test_nsrl_default_kind_is_known_good(tmp_path: Path) -> None:
    nsrl = write_text(tmp_path / "NSRLFile.txt", f'"SHA-1","MD5","CRC32","FileName","FileSize"\n"{sha1(1)}","{md5(1)}","0","a",3\n')
    assert import_hashsets([nsrl], tmp_path / "n.tdb")["kind"] == "known-good"


# -- bounded memory: the external build gives exactly the in-memory result -------------------

def _random_rows(rng: random.Random, n: int) -> list[str]:
    lines = ["MD5,SHA1,Category"]
    for i in range(n):
        a = hashlib.md5(f"r{rng.randrange(n // 2)}".encode()).hexdigest()  # duplicates
        if i % 5 == 0:
            a = "07" + a[2:]  # skew: many digests share a first byte
        if i % 17 == 0:
            a = "07" * 8 + "11" * 8  # one digest repeated with many categories
        b = hashlib.sha1(f"s{i}".encode()).hexdigest()
        cat = rng.choice(["", "A", "B", "C", "1"])
        lines.append(f"{a},{b},{cat}")
    return lines


def test_external_build_equals_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_text(tmp_path / "big.csv", "\n".join(_random_rows(random.Random(5), 4000)) + "\n")
    expected = load_hashset(source)
    monkeypatch.setattr(store, "memory_budget", lambda: 2000)  # a spill every ~100 rows
    out = tmp_path / "big.tdb"
    header = import_hashsets([source], out)
    hs = load_hashset(out)
    assert hs.table == expected.table
    assert hs.conflicts == expected.conflicts > 0
    assert sorted(hs.lookup("md5", bytes.fromhex("07" * 8 + "11" * 8))) == sorted(
        expected.lookup("md5", bytes.fromhex("07" * 8 + "11" * 8)))
    assert header["algorithms"]["md5"]["rows"] == len(expected.tables["md5"])
    monkeypatch.setattr(loader, "IN_MEMORY_LIMIT", 0)  # a raw source too big for RAM
    temp = load_hashset(source)
    assert temp.index_file and Path(temp.index_file).exists() and temp.table == expected.table
    assert temp.format == "csv" and temp.path == str(source)
    clone = pickle.loads(pickle.dumps(temp))  # what a scan worker receives: the file name
    assert clone.table == expected.table and clone.name == "big"
    name = temp.index_file
    del temp, clone
    gc.collect()
    assert not Path(name).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("triage-", ".big"))]


def test_pickled_index_is_small(tmp_path: Path) -> None:
    out = tmp_path / "pv.tdb"
    import_hashsets([_vics_set(tmp_path)], out)
    data = pickle.dumps(load_hashset(out, name="renamed"))
    assert len(data) < 2000
    assert pickle.loads(data).name == "renamed"
    small = load_hashset(tmp_path / "pv.json")  # in memory: pickles its arrays
    assert pickle.loads(pickle.dumps(small)).table == small.table


# -- damage -----------------------------------------------------------------------------------

def _index(tmp_path: Path) -> Path:
    out = tmp_path / "pv.tdb"
    import_hashsets([_vics_set(tmp_path)], out)
    return out


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d[:-10], "truncated or damaged"),
        (lambda d: d[:40], "not a triage index|truncated"),
        (lambda d: b"XRIAGEDB" + d[8:], "not a recognised"),
        (lambda d: d[:8] + (99).to_bytes(4, "little") + d[12:], "format version 99"),
        (lambda d: d + b"x", "truncated or damaged"),
    ],
)
def test_damaged_index(tmp_path: Path, mangle, message: str) -> None:
    path = _index(tmp_path)
    path.write_bytes(mangle(path.read_bytes()))
    with pytest.raises(HashSetError, match=message):
        load_hashset(path)


def test_damaged_header_json(tmp_path: Path) -> None:
    path = _index(tmp_path)
    header, offset, _ = tdb.read_header(path)
    data = path.read_bytes()
    for change in ({"algorithms": {"md5": {"digest_bytes": 16}}}, {"categories": []},
                   {"sizes": {"complete": True, "offset": 10**9, "length": 8, "dtype": "<u8"}}):
        mangled = json.dumps({**header, **change}).encode()
        pre = tdb.PREAMBLE.pack(tdb.MAGIC, tdb.FORMAT_VERSION, 2, offset, len(mangled),
                                hashlib.sha256(mangled).digest())
        path.write_bytes(pre + data[tdb.PREAMBLE.size : offset] + mangled)
        with pytest.raises(HashSetError, match="damaged"):
            load_hashset(path)


def test_verify_detects_altered_data(tmp_path: Path) -> None:
    path = _index(tmp_path)
    data = bytearray(path.read_bytes())
    data[tdb.PREAMBLE.size + 3] ^= 1
    path.write_bytes(bytes(data))
    assert load_hashset(path)  # opening does not read the data...
    assert not tdb.verify(path)  # ...verify does


def test_open_reads_header_only(tmp_path: Path) -> None:
    """Opening must not copy the data: every array is a read-only view on the mapping."""
    hs = load_hashset(_index(tmp_path))
    for table in hs.tables.values():
        for array in (table.keys, table.cats, table.buckets):
            if array is not None:
                assert not array.flags.owndata and not array.flags.writeable


def test_no_digests_at_all(tmp_path: Path) -> None:
    source = write_text(tmp_path / "e.md5", "# nothing but a comment\n")
    out = tmp_path / "e.tdb"
    header = import_hashsets([source], out, format="md5sum")
    hs = load_hashset(out)
    assert header["algorithms"] == {} and hs.entries == 0 and hs.lookup("md5", raw(md5(1))) == []
