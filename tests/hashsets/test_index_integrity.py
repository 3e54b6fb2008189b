"""A compiled index is verified, and reported by what it is (issue 14, item 3).

Every byte of the preamble and the header is changed in turn: opening refuses each with one
line. One byte of each data section (digests, categories, buckets, sizes, every PDQ array, every
vPDQ array) is changed: the data check fails, ``hashset lookup`` and ``scan`` exit 2 with one line, and the
scan's summary.json holds the digest the header records and the one computed, which differ.
Crafted headers (hypothesis over the header's values, lists where numbers belong, NaN, deep
nesting) are one line and exit 2, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.errors import HashSetError
from triage.hashsets import import_hashsets, load_hashset, tdb
from triage.reports.schema import summary_schema

from ._factory import content, md5, sha1

PDQS = [f"{random.Random(n).getrandbits(256):064x}" for n in range(1, 7)]
VPDQ_ARRAYS = ("words", "ids", "offsets", "video", "times", "categories", "frames",
               "name_offsets", "names")


def _index(folder: Path) -> Path:
    """md5 + sha1 with three categories (a category array), sizes, PDQ hashes and two vPDQ
    videos (ThreatExchange vpdq text, category B)."""
    rows = ["md5,sha1,size,category,pdq"]
    for n in range(1, 7):
        rows.append(f"{md5(n)},{sha1(n)},{len(content(n))},{'ABC'[n % 3]},{PDQS[n - 1]}")
    source = folder / "set.csv"
    source.write_text("\n".join(rows) + "\n")
    videos = folder / "videos"
    videos.mkdir()
    for v in range(2):
        rng = random.Random(100 + v)
        (videos / f"video-{v}.txt").write_text("".join(
            f"{i},100,{rng.getrandbits(256):064x},{i:.3f}\n" for i in range(5)))
    out = folder / "set.tdb"
    import_hashsets([source, f"{videos}:B"], out, name="set")
    return out


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _index(tmp_path_factory.mktemp("index"))


def _sections(path: Path) -> dict[str, tuple[int, int]]:
    header = tdb.read_header(path)[0]
    found = {}
    for algorithm, table in header["algorithms"].items():
        for name in ("digests", "categories", "buckets"):
            spec = table[name]
            if "offset" in spec:
                found[f"{algorithm} {name}"] = (spec["offset"], spec["length"])
    found["sizes"] = (header["sizes"]["offset"], header["sizes"]["length"])
    for name in ("words", "meta", "ids", "offsets"):
        found[f"pdq {name}"] = (header["pdq"][name]["offset"], header["pdq"][name]["length"])
    for name in VPDQ_ARRAYS:
        found[f"vpdq {name}"] = (header["vpdq"][name]["offset"], header["vpdq"][name]["length"])
    return found


def _triage(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=dict(os.environ))


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("triage: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_fixture_has_every_section(index: Path) -> None:
    names = set(_sections(index))
    assert {"md5 digests", "md5 categories", "md5 buckets", "sha1 digests", "sha1 categories",
            "sha1 buckets", "sizes", "pdq words", "pdq meta", "pdq ids", "pdq offsets",
            *(f"vpdq {name}" for name in VPDQ_ARRAYS)} <= names
    check = tdb.Verification(index)
    assert check.wait() and check.summary()["status"] == "verified"
    assert check.computed == check.recorded == tdb.read_header(index)[0]["sections_sha256"]


def test_every_header_byte_is_checked(index: Path, tmp_path: Path) -> None:
    """Each byte of the preamble and the header, changed alone, is refused when opened."""
    data = index.read_bytes()
    offset = tdb.PREAMBLE.unpack_from(data)[3]
    target = tmp_path / "x.tdb"
    positions = list(range(tdb.PREAMBLE.size)) + list(range(offset, len(data)))
    for position in positions:
        changed = bytearray(data)
        changed[position] ^= 0x01 if position % 2 else 0x20
        target.write_bytes(changed)
        with pytest.raises(HashSetError) as caught:
            load_hashset(target)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("section", ["md5 digests", "md5 categories", "md5 buckets",
                                     "sha1 digests", "sha1 categories", "sha1 buckets",
                                     "sizes", "pdq words", "pdq meta", "pdq ids", "pdq offsets",
                                     *(f"vpdq {name}" for name in VPDQ_ARRAYS), "padding"])
def test_one_byte_in_each_data_section(index: Path, tmp_path: Path, section: str) -> None:
    data = bytearray(index.read_bytes())
    sections = _sections(index)
    if section == "padding":  # between two sections: still covered by the digest
        ends = sorted(o + n for o, n in sections.values())
        starts = {o for o, _ in sections.values()}
        position = next(e for e in ends if e not in starts and e % tdb.ALIGN)
    else:
        start, length = sections[section]
        position = start + length // 2
    data[position] ^= 0x04
    target = tmp_path / "x.tdb"
    target.write_bytes(data)
    load_hashset(target)  # the header is intact: it opens...
    check = tdb.Verification(target)
    assert not check.wait()  # ...and the data check fails
    summary = check.summary()
    assert summary["status"] == "failed" and "does not match" in summary["problem"]
    assert summary["sections_sha256_computed"] != summary["sections_sha256_recorded"]
    assert not tdb.verify(target)
    error = _one_line_error(_triage("hashset", "lookup", str(target), md5(1)))
    assert "does not match the SHA-256 in its header" in error


def test_zeroed_bucket_table_invalidates_the_scan(index: Path, tmp_path: Path) -> None:
    """The issue's case: buckets zeroed, header untouched. Before, exit 0 and the header's
    digest in summary.json; now exit 2, invalid, both digests reported."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "bad.bin").write_bytes(content(1))  # in the set: category B
    (evidence / "other.bin").write_bytes(b"nothing known")
    pristine = _triage("scan", str(evidence), "--hashset", str(index), "--out",
                       str(tmp_path / "run1"), "--workers", "1", "--quiet")
    assert pristine.returncode == 1, pristine.stderr
    good = json.loads((tmp_path / "run1" / "summary.json").read_text())
    check = good["hashsets"][0]["verification"]
    assert check["status"] == "verified" and good["invalid"] == [] and good["complete"]
    assert check["sections_sha256_computed"] == check["sections_sha256_recorded"]
    assert check["sections_sha256_computed"] == good["hashsets"][0]["sha256"]

    data = bytearray(index.read_bytes())
    start, length = _sections(index)["md5 buckets"]
    data[start:start + length] = bytes(length)
    altered = tmp_path / "altered.tdb"
    altered.write_bytes(data)
    proc = _triage("scan", str(evidence), "--hashset", str(altered), "--out",
                   str(tmp_path / "run2"), "--workers", "1", "--quiet")
    assert "does not match the SHA-256 in its header" in _one_line_error(proc)
    summary = json.loads((tmp_path / "run2" / "summary.json").read_text())
    check = summary["hashsets"][0]["verification"]
    assert summary["exit_code"] == 2 and summary["complete"] is False
    assert summary["invalid"] and "does not match" in summary["invalid"][0]
    assert check["status"] == "failed"
    assert check["sections_sha256_recorded"] == good["hashsets"][0]["sha256"]
    assert check["sections_sha256_computed"] == hashlib.sha256(
        bytes(data[tdb.PREAMBLE.size:tdb.PREAMBLE.unpack_from(data)[3]])).hexdigest()
    assert check["sections_sha256_computed"] != check["sections_sha256_recorded"]
    jsonschema.validate(summary, summary_schema())
    jsonschema.validate(good, summary_schema())
    page = (tmp_path / "run2" / "report.html").read_text()
    assert "Run invalid" in page and check["sections_sha256_computed"] in page
    assert check["sections_sha256_recorded"] in page


# -- crafted headers ------------------------------------------------------------------------


def _with_header(path: Path, target: Path, raw: bytes) -> Path:
    """``path`` with its header replaced by ``raw`` (and the matching header digest, so the
    schema itself must refuse what is wrong)."""
    data = path.read_bytes()
    magic, major, minor, offset, _, _ = tdb.PREAMBLE.unpack_from(data)
    target.write_bytes(tdb.PREAMBLE.pack(magic, major, minor, offset, len(raw),
                                         hashlib.sha256(raw).digest())
                       + data[tdb.PREAMBLE.size:offset] + raw)
    return target


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    yield path


def _replace(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_crafted_headers_are_one_line(index: Path, tmp_path: Path, data) -> None:
    """Any value of the header replaced by any JSON value (with a valid header digest): the
    index is refused with one line, or it opens, verifies and answers lookups."""
    header = json.loads(index.read_bytes()[tdb.PREAMBLE.unpack_from(index.read_bytes())[3]:])
    paths = list(_leaves(header))
    where = data.draw(st.sampled_from(paths))
    crafted = _replace(header, where, data.draw(_JSON))
    target = _with_header(index, tmp_path / "c.tdb", json.dumps(crafted).encode())
    try:
        hs = load_hashset(target)
    except HashSetError as exc:
        assert "\n" not in str(exc)
        return
    check = tdb.Verification(target)
    check.wait()
    assert check.status in ("verified", "failed")
    for algorithm in hs.algorithms:
        hs.lookup(algorithm, bytes(16 if algorithm == "md5" else 20))


@pytest.mark.parametrize("name, change", [
    ("list for a number", lambda h: h.replace(b'"rows": 6', b'"rows": [6]', 1)),
    ("NaN", lambda h: h.replace(b'"rows": 6', b'"rows": NaN', 1)),
    ("deep nesting", lambda h: h[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("huge number", lambda h: h.replace(b'"rows": 6', b'"rows": 1' + b"0" * 400, 1)),
    ("offset past the end", lambda h: h.replace(b'"digests": {"length": 96, "offset": 64}',
                                                b'"digests": {"length": 96, "offset": 6400000}', 1)),
    ("not an object", lambda h: b"[]"),
])
def test_crafted_header_scan_exit_2(index: Path, tmp_path: Path, name: str, change) -> None:
    data = index.read_bytes()
    raw = data[tdb.PREAMBLE.unpack_from(data)[3]:]
    crafted = change(raw)
    assert crafted != raw, name
    target = _with_header(index, tmp_path / "c.tdb", crafted)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.bin").write_bytes(content(1))
    error = _one_line_error(_triage("scan", str(evidence), "--hashset", str(target), "--out",
                                    str(tmp_path / "run"), "--workers", "1", "--quiet"))
    assert "damaged header" in error


def test_known_good_index_with_pdq_verifies(tmp_path: Path) -> None:
    """The id checks read the PDQ section themselves (open_pdq refuses known-good)."""
    source = tmp_path / "set.csv"
    source.write_text(f"md5,pdq\n{md5(1)},{PDQS[0]}\n{md5(2)},{PDQS[1]}\n")
    out = tmp_path / "good.tdb"
    import_hashsets([source], out, kind="known-good")
    check = tdb.Verification(out)
    assert check.wait(), check.problem


def test_altered_pdq_set_index_invalidates_the_scan(index: Path, tmp_path: Path) -> None:
    """--pdq-set x.tdb (not a --hashset) is checked too: pdq_sets[].verification."""
    data = bytearray(index.read_bytes())
    start, length = _sections(index)["pdq words"]
    data[start + length // 2] ^= 0x40
    altered = tmp_path / "pdq.tdb"
    altered.write_bytes(data)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.bin").write_bytes(b"nothing known")
    proc = _triage("scan", str(evidence), "--pdq-set", str(altered), "--out",
                   str(tmp_path / "run"), "--workers", "1", "--quiet")
    assert "does not match the SHA-256 in its header" in _one_line_error(proc)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    check = summary["pdq_sets"][0]["verification"]
    assert check["status"] == "failed" and summary["exit_code"] == 2 and summary["invalid"]
    assert check["sections_sha256_computed"] != check["sections_sha256_recorded"]
    jsonschema.validate(summary, summary_schema())


def test_altered_vpdq_set_index_invalidates_the_scan(index: Path, tmp_path: Path) -> None:
    """--vpdq-set x.tdb is checked too: vpdq_sets[].verification; a crafted vPDQ header is one
    line, exit 2."""
    data = bytearray(index.read_bytes())
    start, length = _sections(index)["vpdq words"]
    data[start + length // 2] ^= 0x40
    altered = tmp_path / "vpdq.tdb"
    altered.write_bytes(data)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.bin").write_bytes(b"nothing known")
    proc = _triage("scan", str(evidence), "--vpdq-set", str(altered), "--out",
                   str(tmp_path / "run"), "--workers", "1", "--quiet")
    assert "does not match the SHA-256 in its header" in _one_line_error(proc)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    check = summary["vpdq_sets"][0]["verification"]
    assert check["status"] == "failed" and summary["exit_code"] == 2 and summary["invalid"]
    jsonschema.validate(summary, summary_schema())
    raw = bytes(index.read_bytes()[tdb.PREAMBLE.unpack_from(index.read_bytes())[3]:])
    header = json.loads(raw)
    for change in ({"videos": 3}, {"rows": 11}, {"names": {**header["vpdq"]["names"], "dtype": "<u8"}},
                   {"times": {**header["vpdq"]["times"], "offset": 10**9}}, {"counts": {"B": 1}}):
        crafted = {**header, "vpdq": {**header["vpdq"], **change}}
        target = _with_header(index, tmp_path / "c.tdb", json.dumps(crafted).encode())
        error = _one_line_error(_triage("scan", str(evidence), "--vpdq-set", str(target),
                                        "--out", str(tmp_path / "run2"), "--workers", "1",
                                        "--quiet"))
        assert "damaged header" in error and "vPDQ" in error, error


def test_vpdq_ids_are_checked(index: Path, tmp_path: Path) -> None:
    """A video id past the video table, with a consistent digest, fails the data check."""
    data = bytearray(index.read_bytes())
    start, _ = _sections(index)["vpdq video"]
    data[start:start + 4] = (7).to_bytes(4, "little")
    offset = tdb.PREAMBLE.unpack_from(data)[3]
    header = json.loads(bytes(data[offset:]))
    header["sections_sha256"] = hashlib.sha256(bytes(data[tdb.PREAMBLE.size:offset])).hexdigest()
    target = _with_header(index, tmp_path / "ids.tdb", json.dumps(header).encode())
    crafted = target.read_bytes()
    target.write_bytes(crafted[:tdb.PREAMBLE.size] + bytes(data[tdb.PREAMBLE.size:offset])
                       + crafted[offset:])
    check = tdb.Verification(target)
    assert not check.wait() and "video id past the video table" in check.problem
