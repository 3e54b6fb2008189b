"""Property tests: generated sets round-trip through CSV and VICS; random bytes only raise HashSetError."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from triage.matching.categories import most_severe
from triage.errors import HashSetError
from triage.hashsets import FORMATS, load_hashset
from triage.hashsets.model import ALGORITHM_HEX_LENGTHS, EMPTY_DIGESTS

from ._factory import VICS_2_MEDIA

EMPTY = {bytes.fromhex(h) for h in EMPTY_DIGESTS.values()}
ALGORITHMS = list(ALGORITHM_HEX_LENGTHS)


def _digests(algorithm: str) -> st.SearchStrategy[bytes]:
    size = ALGORITHM_HEX_LENGTHS[algorithm] // 2
    benign = st.integers(0, 40).map(lambda n: hashlib.new(algorithm, f"file-{n}".encode()).digest())
    return st.one_of(benign, st.binary(min_size=size, max_size=size), st.just(bytes(size)),
                     st.just(hashlib.new(algorithm, b"").digest()))


def _entry(algorithms: list[str], categories: st.SearchStrategy[str | None]) -> st.SearchStrategy[tuple]:
    return st.sampled_from(algorithms).flatmap(
        lambda alg: st.tuples(st.just(alg), _digests(alg), categories)
    )


def _expected(entries: list[tuple[str, bytes, str | None]]) -> tuple[dict, int, int]:
    """The documented merge rules, written out independently of the builder.

    A digest keeps every category it was given (a conflict when there are two or more); a
    digest given none and some category keeps the category; the table shows the most severe.
    """
    given: dict[str, dict[bytes, set[str | None]]] = {}
    dropped = 0
    for alg, digest, category in entries:
        if digest in EMPTY or not any(digest):
            dropped += 1
            continue
        given.setdefault(alg, {}).setdefault(digest, set()).add(category)
    table: dict[str, dict[bytes, str | None]] = {}
    conflicts = 0
    for alg, digests in given.items():
        for digest, categories in digests.items():
            named = [c for c in categories if c is not None]
            conflicts += len(named) > 1
            table.setdefault(alg, {})[digest] = most_severe(named) if named else None
    return table, dropped, conflicts


CSV_CATEGORIES = st.one_of(
    st.none(),
    st.sampled_from(["A", "B", "C", "1", "2", "notable", "known-good", "x y"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
            min_size=1, max_size=6).filter(lambda s: s.strip() == s and not s.startswith("#")),
)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(_entry(ALGORITHMS, CSV_CATEGORIES), min_size=1, max_size=30),
    delimiter=st.sampled_from([",", ";", "\t"]),
    upper=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_csv_round_trip(entries: list, delimiter: str, upper: bool, encoding: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["MD5", "sha-1", "SHA256", "Category"])
    for alg, digest, category in entries:
        hex_digest = digest.hex().upper() if upper else digest.hex()
        writer.writerow([hex_digest if alg == a else "" for a in ALGORITHMS] + [category or ""])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.csv"
        path.write_bytes(out.getvalue().encode(encoding))
        hs = load_hashset(path)
    table, dropped, conflicts = _expected(entries)
    assert hs.format == "csv"
    assert hs.table == {alg: t for alg, t in table.items() if t}
    assert (hs.dropped_empty, hs.conflicts, hs.skipped) == (dropped, conflicts, 0)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(_entry(["md5", "sha1"], st.one_of(st.none(), st.integers(0, 12))), min_size=1, max_size=30),
    string_numbers=st.booleans(),
    cases=st.booleans(),
)
def test_vics_round_trip(entries: list, string_numbers: bool, cases: bool) -> None:
    media = []
    for alg, digest, category in entries:
        item: dict[str, object] = {"MD5" if alg == "md5" else "SHA1": digest.hex().upper(), "MediaSize": 10}
        if category is not None:
            item["Category"] = str(category) if string_numbers else category
        media.append(item)
    if cases:
        document = {"@odata.context": VICS_2_MEDIA.replace("#Media", "#Cases"),
                    "value": [{"CaseID": "c1", "Media": media[::2]}, {"CaseID": "c2", "Media": media[1::2]}]}
        ordered = entries[::2] + entries[1::2]
    else:
        document = {"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media", "value": media}
        ordered = entries
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.json"
        path.write_text(json.dumps(document))
        hs = load_hashset(path)
    table, dropped, conflicts = _expected(
        [(alg, digest, None if c is None else str(c)) for alg, digest, c in ordered]
    )
    assert hs.format == "vics"
    assert hs.table == {alg: t for alg, t in table.items() if t}
    assert (hs.dropped_empty, hs.conflicts, hs.skipped) == (dropped, conflicts, 0)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2048), format_id=st.sampled_from([None, *FORMATS]), lenient=st.booleans())
def test_random_bytes_only_raise_hash_set_error(data: bytes, format_id: str | None, lenient: bool) -> None:
    _load_or_hash_set_error(data, format_id, lenient)


# Text built from the characters the formats care about reaches much deeper into the parsers.
_PIECES = st.sampled_from(
    ["%%%% HASHDEEP-1.0\n", "%%%% size,md5,filename\n", '"SHA-1","MD5","FileName","FileSize"\n',
     "md5,sha1,category\n", '{"@odata.context":"x#Media","value":[', '{"MD5":', '"SHA1":', '"Category":',
     '"MediaSize":', "}", "]", "[", ",", ";", "\t", '"', "\n", "\r\n", "#", "\\", "MD5 (", ") = ", " *", "  ",
     "0", "a", "F", "g", "\ufeff", "null", "1.5", "-1", "true", hashlib.md5(b"x").hexdigest(),
     hashlib.sha1(b"x").hexdigest(), hashlib.sha256(b"x").hexdigest(), "\x00", "\xff"]
)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(_PIECES, max_size=60),
    format_id=st.sampled_from([None, *FORMATS]),
    lenient=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]),
)
def test_structured_noise_only_raises_hash_set_error(
    pieces: list[str], format_id: str | None, lenient: bool, encoding: str
) -> None:
    _load_or_hash_set_error("".join(pieces).encode(encoding, "replace"), format_id, lenient)


def _load_or_hash_set_error(data: bytes, format_id: str | None, lenient: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "noise.bin"
        path.write_bytes(data)
        try:
            hs = load_hashset(path, format=format_id, lenient=lenient)
        except HashSetError as exc:
            assert str(path) in str(exc) or "format" in str(exc)
            return
        assert hs.sha256 == hashlib.sha256(data).hexdigest()
        if not lenient:
            assert hs.skipped == 0  # strict mode refuses a bad record, it never skips one
            return
        # --lenient skips exactly the records strict mode refuses, and nothing else changes
        try:
            strict = load_hashset(path, format=format_id, lenient=False)
        except HashSetError:
            assert hs.skipped > 0
        else:
            assert hs.skipped == 0
            assert (strict.table, strict.dropped_empty, strict.conflicts) == \
                (hs.table, hs.dropped_empty, hs.conflicts)


# -- compiled index round trip, fast paths against the reference paths ------------------------

from triage.hashsets import import_hashsets, store  # noqa: E402
from triage.hashsets import tdb as tdb_module  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(_entry(ALGORITHMS, st.one_of(st.none(), st.sampled_from(["A", "B", "C", "1", "x"]))), min_size=1, max_size=60),
    budget=st.sampled_from([None, 64, 400]),
)
def test_compiled_round_trip(entries: list, budget: int | None) -> None:
    """Any set -> CSV -> .tdb (in memory, or spilled through many tiny runs) -> lookups."""
    lines = ["md5,sha1,sha256,category"]
    for alg, digest, category in entries:
        lines.append(",".join([digest.hex() if alg == a else "" for a in ALGORITHMS] + [category or ""]))
    table, dropped, conflicts = _expected(entries)
    original = store.memory_budget
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.csv"
        path.write_text("\n".join(lines) + "\n")
        if budget:
            store.memory_budget = lambda: budget
        try:
            import_hashsets([path], Path(tmp) / "gen.tdb")
        finally:
            store.memory_budget = original
        hs = load_hashset(Path(tmp) / "gen.tdb")
        assert hs.table == {alg: t for alg, t in table.items() if t}
        assert (hs.dropped_empty, hs.conflicts) == (dropped, conflicts)
        for alg, digest, category in entries:
            found = hs.lookup(alg, digest)
            if digest in EMPTY or not any(digest):
                assert found == []
            else:
                assert category in found or (category is None and found)
        assert tdb_module.verify(Path(tmp) / "gen.tdb")


_LINES = st.one_of(
    st.sampled_from(["", "#c", "  ", "\\", "MD5 (a) = ", "SHA1 (b) = ", "nothex  n", "*", " \t"]),
    st.builds(lambda alg, n, sep, case: getattr(hashlib, alg)(f"file-{n}".encode()).hexdigest().__getattribute__(case)() + sep,
              st.sampled_from(["md5", "sha1", "sha256", "sha512"]), st.integers(0, 30),
              st.sampled_from(["", "  name", " *bin", "\tx", "x", " ", "\\"]), st.sampled_from(["lower", "upper"])),
    st.builds(lambda n: "\\" + hashlib.md5(f"file-{n}".encode()).hexdigest() + "  a\\\\b", st.integers(0, 5)),
    st.builds(lambda n, w: "  " * w + hashlib.sha1(f"file-{n}".encode()).hexdigest(), st.integers(0, 5), st.integers(0, 2)),
    st.builds(lambda n: hashlib.md5(f"file-{n}".encode()).hexdigest()[: 31 - n % 3], st.integers(0, 5)),
    st.just(hashlib.md5(b"").hexdigest()), st.just("0" * 40),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(_LINES, max_size=40), crlf=st.booleans(), lenient=st.booleans())
def test_md5sum_fast_path_equals_reference(lines: list[str], crlf: bool, lenient: bool) -> None:
    """The vectorised md5sum reader accepts, rejects and numbers lines exactly like the
    line-by-line reader (which UTF-16 input always uses)."""
    text = ("\r\n" if crlf else "\n").join(lines) + "\n"
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for encoding in ("utf-8", "utf-16"):
            path = Path(tmp) / f"{encoding}.md5"
            path.write_bytes(text.encode(encoding))
            try:
                hs = load_hashset(path, format="md5sum", lenient=lenient)
                outcomes.append((hs.table, hs.skipped, hs.dropped_empty, hs.sources[0]["records"]))
            except HashSetError as exc:
                outcomes.append(str(exc).split(":", 1)[1])  # without the (different) file name
    assert outcomes[0] == outcomes[1]


_MEDIA_ITEMS = st.one_of(
    st.fixed_dictionaries(
        {"MD5": st.integers(0, 20).map(lambda n: hashlib.md5(f"file-{n}".encode()).hexdigest())},
        optional={
            "SHA1": st.one_of(st.integers(0, 20).map(lambda n: hashlib.sha1(f"file-{n}".encode()).hexdigest().upper()),
                              st.just(""), st.just("xyz"), st.none()),
            "Category": st.one_of(st.integers(-1, 300), st.sampled_from(["2", " 3", "x", "", "1.0"]), st.none(), st.booleans()),
            "MediaSize": st.one_of(st.integers(-2, 2**64), st.sampled_from(["12", "0", "abc", ""]), st.none()),
            "MediaFiles": st.lists(st.fixed_dictionaries({"MD5": st.just("nothex"), "FileName": st.just('a"},{b')}), max_size=2),
            "Media": st.lists(st.fixed_dictionaries({"MD5": st.integers(30, 33).map(lambda n: hashlib.md5(f"file-{n}".encode()).hexdigest())}), max_size=2),
        },
    ),
    st.sampled_from(["text", 5, None, [1, 2], {"Other": 1}]),
)


@settings(max_examples=150, deadline=None)
@given(media=st.lists(_MEDIA_ITEMS, max_size=25), lenient=st.booleans(), chunk=st.sampled_from([3, 40, 1 << 20]))
def test_vics_fast_path_equals_ijson_path(media: list, lenient: bool, chunk: int) -> None:
    """``#Media`` read in decoded chunks gives what the ijson walker gives, errors included."""
    from triage.hashsets import _vicsfast

    outcomes = []
    saved = _vicsfast.CHUNK
    _vicsfast.CHUNK = chunk
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for document in ({"@odata.context": VICS_2_MEDIA, "value": media},  # fast path
                             {"value": media, "@odata.context": VICS_2_MEDIA}):  # ijson walker
                path = Path(tmp) / "set.json"
                path.write_text(json.dumps(document))
                try:
                    hs = load_hashset(path, format="vics", lenient=lenient)
                    outcomes.append((hs.table, hs.skipped, hs.dropped_empty, hs.sources[0]["records"], hs.conflicts))
                except HashSetError as exc:
                    outcomes.append(str(exc))
    finally:
        _vicsfast.CHUNK = saved
    assert outcomes[0] == outcomes[1]


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=600), keep=st.integers(0, 400))
def test_garbage_index_only_raises_hash_set_error(data: bytes, keep: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "good.tdb"
        source = Path(tmp) / "s.md5"
        source.write_text(hashlib.md5(b"x").hexdigest() + "  x\n")
        import_hashsets([source], good)
        real = good.read_bytes()
        for candidate in (tdb_module.MAGIC + data, real[:keep] + data, real[: tdb_module.PREAMBLE.size] + data):
            path = Path(tmp) / "x.tdb"
            path.write_bytes(candidate)
            try:
                hs = load_hashset(path)
                for alg in hs.algorithms:
                    hs.lookup(alg, bytes(hs.tables[alg].width))
            except HashSetError:
                pass
