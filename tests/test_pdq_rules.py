"""One set of rules for a hash set's exact and PDQ columns (issue 16, item 4).

The same file must never give a media one category through its MD5 and another through its PDQ
hash. Before, the PDQ reader had its own VICS and CSV rules: a CSV ``cat`` column, a NIST CAID
``Category`` (which the exact reader ignores: it is not an alert category), a text or boolean
VICS ``Category`` (the exact reader refuses it) all came out differently. Truth here is the exact
reader's answer for each media, read from the same file; the PDQ category is looked up with a
distance-0 search in an index built from the file's PDQ column.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from triage.errors import HashSetError
from triage.hashsets import import_hashsets, load_hashset
from triage.hashsets.pdqsection import open_pdq
from triage.perceptual.index import PdqIndex, PdqSet
from triage.perceptual.sources import load_pdq_set

CAID_CONTEXT = "http://www.example.org/DataModels/1.2.xml#Media"
VICS_CONTEXT = ("http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/"
                "$metadata#Media")


def pdqs(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256) | 1 << 255:064x}" for _ in range(n)]


def md5(i: int) -> str:
    return f"{i + 1:032x}"


def exact_category(path: Path, digest: str, lenient: bool) -> list[str | None]:
    hs = load_hashset(path, lenient=lenient)
    return hs.lookup("md5", bytes.fromhex(digest))


def pdq_category(path: Path, pdq: str, lenient: bool) -> list[str | None]:
    index = PdqIndex.build([load_pdq_set(path, lenient=lenient)])
    return sorted(m["category"] for m in index.matches(pdq, 0))


def _agree(path: Path, rows: list[tuple[str, str]], lenient: bool) -> None:
    """Each (md5, pdq) pair gets the same category both ways (None shows as ``notable``)."""
    for digest, pdq in rows:
        exact = exact_category(path, digest, lenient)
        near = pdq_category(path, pdq, lenient)
        assert near == sorted(c or "notable" for c in exact), (digest, exact, near)


def test_csv_category_column_is_read_the_same_way(tmp_path: Path) -> None:
    """``cat`` is not a category column for the exact reader: not for PDQ either."""
    p = pdqs(2)
    f = tmp_path / "set.csv"
    f.write_text(f"MD5,PDQ,Cat\n{md5(0)},{p[0]},1\n{md5(1)},{p[1]},2\n")
    _agree(f, [(md5(0), p[0]), (md5(1), p[1])], lenient=False)
    g = tmp_path / "named.csv"
    g.write_text(f"md5;pdq;Category\n{md5(0)};{p[0]};1\n{md5(1)};{p[1]}; 2 \n")
    _agree(g, [(md5(0), p[0]), (md5(1), p[1])], lenient=False)
    assert exact_category(g, md5(1), False) == ["2"]


def test_caid_category_is_ignored_for_pdq_too(tmp_path: Path) -> None:
    """NIST CAID's ``Category`` (8 in NIST's sample) is not an alert category."""
    p = pdqs(1)
    f = tmp_path / "caid.json"
    f.write_text(json.dumps({"odata.metadata": CAID_CONTEXT, "value": [
        {"MD5": md5(0), "Category": 8, "MediaSize": 10,
         "AlternativeHashes": [{"HashName": "PDQ", "HashValue": p[0]}]}]}))
    assert exact_category(f, md5(0), False) == [None]
    _agree(f, [(md5(0), p[0])], lenient=False)


@pytest.mark.parametrize("category", ["CSAM", True, 1.5, "x1"])
def test_vics_category_the_exact_reader_refuses(tmp_path: Path, category: object) -> None:
    """Strict: refused for PDQ as for exact. Lenient: the media is skipped by both."""
    p = pdqs(2)
    f = tmp_path / "pv.json"
    f.write_text(json.dumps({"@odata.context": VICS_CONTEXT, "value": [
        {"MD5": md5(0), "Category": category, "MediaSize": 10,
         "AlternativeHashes": [{"HashName": "PDQ", "HashValue": p[0]}]},
        {"MD5": md5(1), "Category": "2", "MediaSize": 11,
         "AlternativeHashes": [{"HashName": "PDQ", "HashValue": p[1]}]}]}))
    with pytest.raises(HashSetError):
        load_hashset(f)
    with pytest.raises(HashSetError):
        load_pdq_set(f)
    _agree(f, [(md5(0), p[0]), (md5(1), p[1])], lenient=True)
    assert exact_category(f, md5(0), True) == []
    assert exact_category(f, md5(1), True) == ["2"]


def test_compiled_index_gives_the_same_categories(tmp_path: Path) -> None:
    """``hashset import``: exact and PDQ sections of one .tdb agree per media."""
    p = pdqs(3)
    f = tmp_path / "set.csv"
    f.write_text(f"md5,pdq,Cat\n{md5(0)},{p[0]},A\n{md5(1)},{p[1]},\n"
                 f"{md5(2)},{p[2]},B\n")
    import_hashsets([f], tmp_path / "set.tdb")
    hs = load_hashset(tmp_path / "set.tdb")
    index = open_pdq(tmp_path / "set.tdb")
    for i in range(3):
        exact = hs.lookup("md5", bytes.fromhex(md5(i)))
        near = [m["category"] for m in index.matches(p[i], 0)]
        assert near == [c or "notable" for c in exact]


CASES_CONTEXT = ("http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/"
                 "$metadata#Cases")


def _sources(tmp: Path) -> tuple[dict[str, Path], set[tuple[str, str]]]:
    """The same five media in every shape the exact readers take: VICS #Media (msgspec fast
    path), the same in UTF-16 (ijson items), #Cases (event walker), CSV. Truth: the pairs
    written here."""
    p = pdqs(5, seed=11)
    media = [{"MD5": md5(i), "Category": i % 3 + 1, "MediaSize": 10 + i,
              "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": "zz"},
                                    {"HashName": "PDQ", "HashValue": p[i]}]}
             for i in range(5)]
    media.append({"MD5": md5(9), "Category": 1, "MediaSize": 3})  # no PDQ
    media[2]["Category"] = "2x"  # odd: leaves the plain batch, goes the per-media way
    truth = {(p[i], str(i % 3 + 1)) for i in range(5) if i != 2}
    files = {}
    doc = json.dumps({"@odata.context": VICS_CONTEXT, "value": media})
    files["media"] = tmp / "media.json"
    files["media"].write_text(doc)
    files["utf16"] = tmp / "utf16.json"
    files["utf16"].write_bytes(doc.encode("utf-16"))
    files["cases"] = tmp / "cases.json"
    files["cases"].write_text(json.dumps({"@odata.context": CASES_CONTEXT, "value": [
        {"CaseNumber": "1", "Media": media[:3]}, {"CaseNumber": "2", "Media": media[3:]}]}))
    files["csv"] = tmp / "set.csv"
    files["csv"].write_text("md5,pdq,category\n" + "".join(
        f"{m['MD5']},{p[i]},{m['Category']}\n" for i, m in enumerate(media[:5]) if i != 2))
    return files, truth


def pairs_of(s: PdqSet) -> set[tuple[str, str | None]]:
    """(hash, category) pairs of a PDQ set: its arrays, or the rows it was streamed into
    (``load_hashset(pdq=True)``: ``sink``, read back from its sort)."""
    if s.sink is None:
        return {(s.hashes[i].tobytes().hex(), s.labels[s.codes[i]]) for i in range(s.entries)}
    rows, out = s.sink, set()
    for block in rows.rows.finish().blocks(rows.ALGORITHM):
        for row in block.keys.view(np.uint8).reshape(-1, 36):
            out.add((row[:32].tobytes().hex(),
                     rows.store.categories[int.from_bytes(row[32:34].tobytes(), "big")]))
    return out


def test_one_parse_gives_both_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--hashset SET --pdq`` and ``hashset import``: the exact parser hands over the PDQ
    column in its own pass; the PDQ-set reader is never called for such a source."""
    import triage.hashsets.pdqsection as section
    import triage.perceptual.sources as sources

    def second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("the source was parsed a second time for its PDQ column")

    files, truth = _sources(tmp_path)
    monkeypatch.setattr(sources, "load_pdq_set", second_pass)
    monkeypatch.setattr(section, "load_pdq_set", second_pass)
    for shape, path in files.items():
        hs = load_hashset(path, lenient=True, pdq=True)
        assert pairs_of(hs.pdq_set) == truth, shape
        assert load_hashset(path, lenient=True).pdq_set is None  # not asked: not kept
        import_hashsets([path], tmp_path / f"{shape}.tdb", lenient=True)
        index = open_pdq(tmp_path / f"{shape}.tdb")
        for h, category in truth:
            assert [m["category"] for m in index.matches(h, 0)] == [category], shape
    # and it is the same set the PDQ-set reader gives on its own
    monkeypatch.undo()
    for shape, path in files.items():
        alone = load_pdq_set(path, lenient=True)
        together = load_hashset(path, lenient=True, pdq=True).pdq_set
        assert (pairs_of(alone), alone.entries, alone.skipped, alone.dropped) == (
            pairs_of(together), together.entries, together.skipped, together.dropped), shape
