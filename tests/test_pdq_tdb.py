"""PDQ hashes inside a compiled index (.tdb 1.1): import, info, in-place search, old files, scan.

Truth is computed here: brute-force Hamming distances by bit counting, and the reference
``pdqhash`` on drawn pictures (helpers of tests/test_pdq.py); images are built with
``mke2fs -d`` as the other PDQ tests do.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_pdq import drawing, encode, originals, pdq_off, reference, variants

from triage import cli
from triage.errors import HashSetError, TriageError
from triage.hashsets import import_hashsets, load_hashset, tdb
from triage.hashsets.pdqsection import describe_tdb, open_pdq
from triage.perceptual.index import PdqIndex
from triage.perceptual.sets import load_pdq_set

__all__ = ["originals", "pdq_off"]
THRESHOLD = 31


def hexes(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def bits_apart(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def flip(h: str, d: int, rng: random.Random) -> str:
    value = int(h, 16)
    for bit in rng.sample(range(256), d):
        value ^= 1 << bit
    return f"{value:064x}"


def vics(media: list[dict]) -> str:
    return json.dumps({"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/"
                       "DataModels/2.0.xml/US/$metadata#Media", "value": media})


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv), cli.Environment(interactive=False))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


# ---------------------------------------------------------------------------------------------
# Import


def test_import_every_pdq_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(1)
    pv = hexes(rng, 4)
    media = [{"MD5": f"{i + 1:032x}", "Category": c, "MediaSize": 10 + i,
              "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": "zz"},
                                    {"HashName": "PDQ", "HashValue": h}]}
             for i, (h, c) in enumerate(zip(pv, (1, 2, 1, 3)))]
    media.append({"MD5": f"{9:032x}", "Category": 1, "MediaSize": 3})  # no PDQ
    (tmp_path / "pv.json").write_text(vics(media))
    mixed = hexes(rng, 2)
    (tmp_path / "mixed.csv").write_text(  # exact + PDQ, exact only, PDQ only
        f"md5,pdq,category\n{'a' * 32},{mixed[0]},A\n{'b' * 32},,B\n,{mixed[1]},C\n")
    plain = hexes(rng, 3)
    (tmp_path / "list.txt").write_text("".join(h + "\n" for h in plain))

    header = import_hashsets([tmp_path / "pv.json", tmp_path / "mixed.csv"], tmp_path / "a.tdb")
    assert header["format_version"] == 1 and header["format_minor"] == 3
    assert header["pdq"]["unique"] == 6 and header["pdq"]["counts"] == {
        "1": 2, "2": 1, "3": 1, "A": 1, "C": 1}
    assert header["algorithms"]["md5"]["unique"] == 7  # the PDQ-only row is no exact record
    by_source = {s["name"]: s for s in header["sources"]}
    assert by_source["pv.json"]["pdq_hashes"] == 4 and by_source["mixed.csv"]["pdq_hashes"] == 2
    assert tdb.verify(tmp_path / "a.tdb")

    # a plain 64-hex list is SHA-256 unless told otherwise
    header = import_hashsets([tmp_path / "list.txt"], tmp_path / "sha.tdb")
    assert "pdq" not in header and header["algorithms"]["sha256"]["unique"] == 3
    header = import_hashsets([tmp_path / "list.txt"], tmp_path / "l.tdb", format="pdq")
    assert header["pdq"]["unique"] == 3 and header["algorithms"] == {}
    assert header["pdq"]["counts"] == {"null": 3}

    code, stdout, _ = run(capsys, "hashset", "info", str(tmp_path / "a.tdb"), "--verify")
    assert code == 0 and "pdq       6 PDQ hashes" in stdout and "format v1.3" in stdout
    assert "OK: data matches" in stdout
    code, stdout, _ = run(capsys, "hashset", "info", str(tmp_path / "a.tdb"), "--json")
    assert json.loads(stdout)["pdq"] == {"hashes": 6, "rows": 6, "categories": header_counts(
        tmp_path / "a.tdb")}
    code, stdout, _ = run(capsys, "hashset", "import", str(tmp_path / "list.txt"), "--format",
                          "pdq", "--out", str(tmp_path / "cli.tdb"))
    assert code == 0 and "PDQ 3" in stdout
    code, stdout, _ = run(capsys, "hashset", "info", str(tmp_path / "sha.tdb"))
    assert "pdq       none" in stdout


def header_counts(path: Path) -> dict[str, int]:
    return tdb.read_header(path)[0]["pdq"]["counts"]


def test_bad_pdq_in_a_source_names_it(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(vics([{"MD5": "1" * 32, "AlternativeHashes": [
        {"HashName": "PDQ", "HashValue": "12"}]}]))
    with pytest.raises(HashSetError, match=r"value\[0\]"):
        import_hashsets([tmp_path / "bad.json"], tmp_path / "x.tdb")
    header = import_hashsets([tmp_path / "bad.json"], tmp_path / "x.tdb", lenient=True)
    assert "pdq" not in header and header["sources"][0]["pdq_skipped"] == 1


def test_conflicting_categories_are_kept(tmp_path: Path) -> None:
    h = hexes(random.Random(4), 1)[0]
    (tmp_path / "c.csv").write_text(f"pdq,category\n{h},A\n{h},B\n{h},A\n")
    import_hashsets([tmp_path / "c.csv"], tmp_path / "c.tdb")
    index = open_pdq(tmp_path / "c.tdb")
    assert [m["category"] for m in index.matches(h)] == ["A", "B"]
    assert tdb.read_header(tmp_path / "c.tdb")[0]["pdq"]["unique"] == 1


# ---------------------------------------------------------------------------------------------
# In-place search


@pytest.mark.parametrize("n", [1, 500, 40_000])
def test_mapped_search_equals_brute_force(n: int, tmp_path: Path) -> None:
    rng = random.Random(n)
    hashes = hexes(rng, n)
    (tmp_path / "s.txt").write_text("".join(h + "\n" for h in hashes))
    import_hashsets([tmp_path / "s.txt"], tmp_path / "s.tdb", format="pdq")
    index = open_pdq(tmp_path / "s.tdb")
    assert isinstance(_root(index.words), mmap.mmap) and not index.ids.flags.writeable
    stored = [bytes(r).hex() for r in np.asarray(index.words).astype(">u8").view(np.uint8)
              .reshape(-1, 32)]
    assert sorted(stored) == sorted(set(hashes))
    raw = PdqIndex.build([load_pdq_set(tmp_path / "s.txt")])
    queries = [flip(rng.choice(hashes), rng.randrange(0, 45), rng) for _ in range(60)]
    queries += hexes(rng, 10)
    for t in (0, 10, 31, 32):
        for q in queries:
            rows, dist = index.search(q, t)
            truth = sorted(d for h in hashes if (d := bits_apart(h, q)) <= t)
            assert sorted(dist.tolist()) == truth, (n, t)
            assert [stored[r] for r in rows] == [h for h in stored if bits_apart(h, q) <= t]
            assert sorted(raw.search(q, t)[1].tolist()) == truth
    m = index.matches(queries[0])
    assert all(x["hashset"] == "s" and x["category"] == "notable" for x in m)


def _root(array: np.ndarray) -> object:
    base = array
    while getattr(base, "base", None) is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


# ---------------------------------------------------------------------------------------------
# Format versions


def _rewrite(path: Path, out: Path, minor: int, change, digest: bool) -> None:
    """``path`` with its header changed by ``change`` and written as minor ``minor`` (with the
    header's SHA-256 in the preamble when ``digest``), as another triage version would."""
    data = path.read_bytes()
    magic, major, _, offset, length, _ = tdb.PREAMBLE.unpack_from(data)
    header = json.loads(data[offset:])
    change(header)
    raw = json.dumps(header).encode()
    pre = tdb.PREAMBLE.pack(magic, major, minor, offset, len(raw),
                            hashlib.sha256(raw).digest() if digest else bytes(32))
    out.write_bytes(pre + data[tdb.PREAMBLE.size:offset] + raw)


def test_old_files_open_and_newer_minor_too(tmp_path: Path) -> None:
    (tmp_path / "a.md5").write_text(f"{'1' * 32}\n")
    import_hashsets([tmp_path / "a.md5"], tmp_path / "a.tdb")
    data = bytearray((tmp_path / "a.tdb").read_bytes())
    magic, major, minor, offset, length, digest = tdb.PREAMBLE.unpack_from(data)
    assert (major, minor) == (1, 3) and digest == hashlib.sha256(data[offset:]).digest()

    def older(header):  # 1.0: written before PDQ and the minor key existed
        del header["format_minor"]

    def newer(header):  # a future minor: a key this reader does not know
        header.update(format_minor=9, later={"deep": [[1]]})

    for minor, change, with_digest in ((0, older, False), (1, lambda h: h.update(format_minor=1), False),
                                       (2, lambda h: h.update(format_minor=2), True),
                                       (9, newer, True)):
        _rewrite(tmp_path / "a.tdb", tmp_path / "v.tdb", minor, change, with_digest)
        hs = load_hashset(tmp_path / "v.tdb")
        assert hs.lookup("md5", bytes.fromhex("1" * 32)) == [None]
        assert describe_tdb(tmp_path / "v.tdb", required=False) is None
        with pytest.raises(HashSetError, match="carries no PDQ"):
            open_pdq(tmp_path / "v.tdb")
    # a 1.3 file whose preamble was set back to 1.1 (skipping the header check) is refused
    tdb.PREAMBLE.pack_into(data, 0, magic, major, 1, offset, length, digest)
    (tmp_path / "v.tdb").write_bytes(data)
    with pytest.raises(HashSetError, match="minor version 3 in the header, 1 in the preamble"):
        load_hashset(tmp_path / "v.tdb")
    tdb.PREAMBLE.pack_into(data, 0, magic, 2, 0, offset, length, digest)
    (tmp_path / "v.tdb").write_bytes(data)
    with pytest.raises(HashSetError, match="format version 2"):
        load_hashset(tmp_path / "v.tdb")


def test_damaged_pdq_section_is_caught(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("".join(h + "\n" for h in hexes(random.Random(2), 50)))
    header = import_hashsets([tmp_path / "s.txt"], tmp_path / "s.tdb", format="pdq")
    data = bytearray((tmp_path / "s.tdb").read_bytes())
    data[header["pdq"]["words"]["offset"] + 5] ^= 0x10
    (tmp_path / "s.tdb").write_bytes(data)
    assert not tdb.verify(tmp_path / "s.tdb")


# ---------------------------------------------------------------------------------------------
# Scan


@pytest.fixture()
def picture_image(originals, tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[int, str]]]:
    """An ext4 image of variants of three originals, a VICS set with their PDQ (and the exact
    MD5 of one file), and the truth: path -> (distance, category)."""
    if shutil.which("mke2fs") is None:
        pytest.skip("mke2fs not installed")
    import hashlib

    seeds = list(originals)[:3]
    src = tmp_path / "src"
    src.mkdir()
    truth: dict[str, tuple[int, str]] = {}
    media = []
    for n, s in enumerate(seeds, 1):
        set_hash = reference(encode(originals[s], "PNG"))[0]
        media.append({"MD5": f"{n:032x}", "Category": n, "MediaSize": 100 + n,
                      "AlternativeHashes": [{"HashName": "PDQ", "HashValue": set_hash}]})
        for name in ("jpeg50", "half"):
            data = variants(originals[s])[name]
            path = f"/p{s}-{name}.bin"
            (src / path[1:]).write_bytes(data)
            truth[path] = (bits_apart(reference(data)[0], set_hash), str(n))
    exact = src / f"p{seeds[0]}-half.bin"
    media.append({"MD5": hashlib.md5(exact.read_bytes()).hexdigest(), "Category": 2,
                  "MediaSize": exact.stat().st_size})
    (tmp_path / "pv.json").write_text(vics(media))
    image = tmp_path / "pictures.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "16M"],
                   check=True, capture_output=True,
                   env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"))
    return image, tmp_path / "pv.json", truth


def _near(out: Path) -> dict[str, list[tuple[str, int, str]]]:
    rows = [json.loads(line) for line in (out / "files.jsonl").read_text().splitlines()]
    return {r["path"]: [(m["hashset"], m["distance"], m["category"]) for m in r["matches"]
                        if m["algorithm"] == "pdq"] for r in rows}


def test_scan_uses_the_tdb_pdq_in_place(picture_image, tmp_path: Path) -> None:
    from triage.run.scan import ScanConfig, run_scan

    image, source, truth = picture_image
    import_hashsets([source], tmp_path / "pv.tdb")
    assert all(d <= THRESHOLD for d, _ in truth.values())  # the premise
    want = {p: [("pv", d, c)] for p, (d, c) in truth.items()}

    # --hashset pv.tdb --pdq: the index's own PDQ section, and its exact MD5
    first = run_scan(ScanConfig(evidence=[str(image)], hashsets=[str(tmp_path / "pv.tdb")],
                                out=tmp_path / "o1", workers=2, pdq=True))
    assert _near(first.out) == want
    assert first.summary["totals"]["known_bad_files"] == 1
    assert [(s["format"], s["entries"], s["name"]) for s in first.summary["pdq_sets"]] == [
        ("tdb", 3, "pv")]
    assert not (first.out / ".pdq-index").exists()

    # --pdq-set pv.tdb alone, and both at once (searched once)
    for config in ({"pdq_sets": [str(tmp_path / "pv.tdb")]},
                   {"pdq_sets": [str(tmp_path / "pv.tdb")], "pdq": True,
                    "hashsets": [str(tmp_path / "pv.tdb")]}):
        outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "o", force=True,
                                      workers=2, **config))
        assert _near(outcome.out) == want
        assert len(outcome.summary["pdq_sets"]) == 1

    # the raw VICS as --pdq-set gives the same near matches (set named after the file)
    raw = run_scan(ScanConfig(evidence=[str(image)], pdq_sets=[str(source)],
                              out=tmp_path / "o3", workers=2))
    assert _near(raw.out) == {p: [("pv.json", d, c)] for p, (d, c) in truth.items()}


def test_scan_refuses_what_would_silently_match_nothing(picture_image, tmp_path: Path) -> None:
    from triage.run.scan import ScanConfig, run_scan

    image, source, _ = picture_image
    (tmp_path / "a.md5").write_text(f"{'1' * 32}\n")
    import_hashsets([tmp_path / "a.md5"], tmp_path / "nopdq.tdb")
    import_hashsets([source], tmp_path / "good.tdb", kind="known-good")
    (tmp_path / "l.txt").write_text(reference(encode(drawing(1), "PNG"))[0] + "\n")
    import_hashsets([tmp_path / "l.txt"], tmp_path / "only.tdb", format="pdq")
    cases = [({"pdq_sets": [str(tmp_path / "nopdq.tdb")]}, "carries no PDQ"),
             ({"pdq_sets": [str(tmp_path / "good.tdb")]}, "compiled as known-good"),
             ({"hashsets": [str(tmp_path / "only.tdb")]}, "PDQ hashes only: add --pdq")]
    for config, message in cases:
        with pytest.raises(TriageError, match=message):
            run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "r", force=True,
                                workers=1, **config))


def test_raw_hashset_with_pdq_is_searched_with_pdq(picture_image, tmp_path: Path) -> None:
    """``--hashset pv.json --pdq``: the raw VICS set's own PDQ column, no --pdq-set or compiled
    index needed; the same near matches and categories as the compiled index gives, and its
    exact MD5 still matches. Without --pdq nothing near is searched."""
    from triage.run.scan import ScanConfig, run_scan

    image, source, truth = picture_image
    want = {p: [("pv", d, c)] for p, (d, c) in truth.items()}
    raw = run_scan(ScanConfig(evidence=[str(image)], hashsets=[str(source)], pdq=True,
                              out=tmp_path / "o1", workers=2))
    assert _near(raw.out) == want
    assert raw.summary["totals"]["known_bad_files"] == 1
    assert [(s["format"], s["entries"], s["name"]) for s in raw.summary["pdq_sets"]] == [
        ("vics", 3, "pv")]
    # given both ways (--hashset and --pdq-set), searched once
    both = run_scan(ScanConfig(evidence=[str(image)], hashsets=[str(source)], pdq=True,
                               pdq_sets=[str(source)], out=tmp_path / "o2", workers=2))
    assert len(both.summary["pdq_sets"]) == 1
    off = run_scan(ScanConfig(evidence=[str(image)], hashsets=[str(source)],
                              out=tmp_path / "o3", workers=2))
    assert off.summary["pdq_sets"] == [] and all(v == [] for v in _near(off.out).values())
    # a CSV twin (md5, pdq, category columns): the same near matches, named after the file
    media = [m for m in json.loads(source.read_text())["value"] if "AlternativeHashes" in m]
    rows = ["md5,pdq,category"] + [f"{m['MD5']},{m['AlternativeHashes'][0]['HashValue']},"
                                   f"{m['Category']}" for m in media]
    (tmp_path / "set.csv").write_text("\n".join(rows) + "\n")
    csv_run = run_scan(ScanConfig(evidence=[str(image)], hashsets=[str(tmp_path / "set.csv")],
                                  pdq=True, out=tmp_path / "o4", workers=2))
    assert [(s["format"], s["entries"]) for s in csv_run.summary["pdq_sets"]] == [("pdq-csv", 3)]
    assert _near(csv_run.out) == {p: [("set", d, c)] for p, (d, c) in truth.items()}


def test_pdq_only_csv_as_hashset_names_pdq_set(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A CSV with only a pdq column given to --hashset: refused, one line naming --pdq-set."""
    rng = random.Random(3)
    (tmp_path / "p.csv").write_text("pdq,category\n" + "".join(
        f"{h},1\n" for h in hexes(rng, 2)))
    with pytest.raises(HashSetError, match="--pdq-set"):
        load_hashset(tmp_path / "p.csv")
    image = tmp_path / "e.img"
    image.write_bytes(bytes(1 << 20))
    code, out, err = run(capsys, "scan", str(image), "--hashset", str(tmp_path / "p.csv"),
                         "--pdq", "--out", str(tmp_path / "o"))
    assert code == 2 and "--pdq-set" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
