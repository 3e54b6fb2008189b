"""Block sets (``.tbs``): build, lookup, distinct-block rules, exclude/subtract, categories,
piecewise import and bad input (issue 17).

Truth comes from outside the tool: xxhash/hashlib over the bytes the test wrote, and
``hashdeep``/``md5deep -p`` for the piecewise MD5 form. Reference files are benign: random
payloads and Pillow pictures made here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xxhash
from conftest import one_line_error, triage
from PIL import Image

from triage.blocks.build import LOW_ENTROPY_VALUES, build_blockset, subtract_blocksets
from triage.blocks.digest import hash_blocks
from triage.blocks.tbs import BlockSet, BlockSetError

B = 4096



def picture(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """A benign noisy picture as PNG (compressed: high entropy, like the lab's pictures)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()


def xxh_blocks(data: bytes, size: int = B) -> list[bytes]:
    """Truth: xxh3-128 of each full block, straight from the xxhash module."""
    return [xxhash.xxh3_128_digest(data[i : i + size]) for i in range(0, len(data) - size + 1, size)]


def md5_blocks(data: bytes, size: int = B) -> list[bytes]:
    return [hashlib.md5(data[i : i + size]).digest() for i in range(0, len(data) - size + 1, size)]


def query(bs: BlockSet, digests: list[bytes]) -> np.ndarray:
    keys = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 16)
    return bs.lookup(keys)


@pytest.fixture
def refs(tmp_path: Path) -> dict[str, bytes]:
    """A reference folder: random payloads, pictures, a nested folder."""
    rnd = random.Random(17)
    files = {
        "ref/random1.bin": rnd.randbytes(10 * B + 123),
        "ref/random2.bin": rnd.randbytes(7 * B),  # exact multiple: no partial block
        "ref/pics/one.png": picture(1),
        "ref/pics/two.png": picture(2, (200, 90)),
    }
    for name, data in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


# -- digests ---------------------------------------------------------------------------------


def test_hash_blocks_matches_xxhash_and_hashlib() -> None:
    data = random.Random(1).randbytes(5 * B + 100)
    got = hash_blocks(data, B)
    assert got.shape == (5, 16) and got.dtype == np.uint8
    assert [bytes(r) for r in got] == xxh_blocks(data)
    assert [bytes(r) for r in hash_blocks(data, B, "md5")] == md5_blocks(data)
    step = hash_blocks(memoryview(data), 1024, step=512)
    truth = [xxhash.xxh3_128_digest(data[i : i + 1024]) for i in range(0, len(data) - 1023, 512)]
    assert [bytes(r) for r in step] == truth
    assert hash_blocks(data[:100], B).shape == (0, 16)
    with pytest.raises(ValueError):
        hash_blocks(data, B, "sha1")


# -- build and lookup ------------------------------------------------------------------------


def test_build_every_block_found_with_file_and_offset(tmp_path: Path, refs: dict[str, bytes]) -> None:
    out = tmp_path / "set.tbs"
    proc = triage("blockset", "build", str(tmp_path / "ref"), "--out", str(out), "--category", "A")
    assert proc.returncode == 0, proc.stderr
    started = time.perf_counter()
    bs = BlockSet.open(out)
    assert time.perf_counter() - started < 0.2
    assert (bs.block_size, bs.digest, bs.name) == (B, "xxh3-128", "set")
    expected = sum(len(d) // B for d in refs.values())
    assert bs.n_blocks == expected and bs.categories == {"A": expected}
    for name, data in refs.items():
        digests = xxh_blocks(data)
        entries = query(bs, digests)
        assert (entries >= 0).all(), name
        for i, entry in enumerate(entries.tolist()):
            (ref,) = bs.refs(entry)
            assert ref.offset == i * B
            assert ref.file.name == name
            assert ref.file.md5 == hashlib.md5(data).hexdigest()
            assert ref.file.sha1 == hashlib.sha1(data).hexdigest()
            assert ref.file.size == len(data) and ref.file.category == "A"
    # blocks that are not in the set: other random data, a block shifted by one byte
    other = random.Random(99).randbytes(20 * B)
    shifted = refs["ref/random1.bin"][1 : 1 + B]
    assert (query(bs, xxh_blocks(other) + xxh_blocks(shifted)) == -1).all()
    info = bs.info()
    assert info["verified"] is True and info["sha256_computed"] == info["sha256_recorded"]
    assert info["dropped"]["partial"] == 3  # random1, one.png, two.png end mid-block
    assert info["files"] == 4 and info["source"]["bytes"] == sum(map(len, refs.values()))
    assert info["file_bytes"] < 16 * bs.n_blocks + 4096  # 16 B/block + small tables
    bs.close()


def test_md5_digest_matches_hashdeep(tmp_path: Path, refs: dict[str, bytes]) -> None:
    """--digest md5 stores the same block digests hashdeep -p computes."""
    out = tmp_path / "m.tbs"
    assert triage("blockset", "build", str(tmp_path / "ref"), "--out", str(out), "--digest",
                  "md5").returncode == 0
    pw = subprocess.run(["hashdeep", "-c", "md5", "-p", str(B), "-r", str(tmp_path / "ref")],
                        capture_output=True, text=True, check=True).stdout
    digests = [bytes.fromhex(line.split(",")[1]) for line in pw.splitlines()
               if line[:1].isdigit() and line.split(",")[0] == str(B)]
    assert len(digests) == sum(len(d) // B for d in refs.values())
    with BlockSet.open(out) as bs:
        assert bs.digest == "md5"
        assert (query(bs, digests) >= 0).all()


# -- distinct blocks -------------------------------------------------------------------------


def test_distinct_rules_and_counts(tmp_path: Path) -> None:
    rnd = random.Random(5)
    unique = rnd.randbytes(3 * B)
    pattern = (rnd.randbytes(64) * (B // 64 + 1))[:B]  # period 64: the longest the test catches
    long_period = (rnd.randbytes(96) * (B // 96 + 1))[:B]  # period 96: kept (not short)
    low = bytes(rnd.choice(b"abcdefghijklmno") for _ in range(B))  # 15 distinct values
    enough = bytes(rnd.choice(bytes(range(40, 40 + LOW_ENTROPY_VALUES))) for _ in range(B))
    data = (bytes(B) + b"\xff" * B + unique + pattern + b"xy" * (B // 2) + low + enough
            + long_period + b"tail")
    shared = rnd.randbytes(B)  # in 3 files: dropped with --max-files 2, kept with 3
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "mixed.bin").write_bytes(data)
    for i in range(3):
        (ref / f"s{i}.bin").write_bytes(rnd.randbytes(B) + shared)
    (ref / "copy.bin").write_bytes(data)  # same MD5 as mixed.bin: not added twice
    (ref / "small.bin").write_bytes(b"short")
    header = build_blockset([ref], tmp_path / "a.tbs", max_files=2)
    assert header["dropped"] == {"constant": 2, "pattern": 2, "low-entropy": 1, "partial": 2,
                                 "shared": 3, "excluded": 0}
    assert header["source"]["duplicate_files"] == 1 and header["source"]["empty_files"] == 1
    with BlockSet.open(tmp_path / "a.tbs") as bs:
        kept = xxh_blocks(unique) + xxh_blocks(enough) + xxh_blocks(long_period)
        assert (query(bs, kept) >= 0).all()
        gone = xxh_blocks(bytes(B) + pattern + low + shared)
        assert (query(bs, gone) == -1).all()
        assert bs.n_blocks == 3 + 1 + 1 + 3  # unique, enough, long period, s0..s2 own blocks
    build_blockset([ref], tmp_path / "b.tbs", max_files=3)
    with BlockSet.open(tmp_path / "b.tbs") as bs:
        entry = int(query(bs, xxh_blocks(shared))[0])
        assert entry >= 0
        found = sorted((r.file.name, r.offset) for r in bs.refs(entry))
        assert found == [("ref/s0.bin", B), ("ref/s1.bin", B), ("ref/s2.bin", B)]
        assert bs.n_blocks == 3 + 1 + 1 + 6


def test_block_repeated_inside_one_file_is_kept_with_every_offset(tmp_path: Path) -> None:
    rnd = random.Random(8)
    block = rnd.randbytes(B)
    (tmp_path / "r.bin").write_bytes(block + rnd.randbytes(B) + block)
    build_blockset([tmp_path / "r.bin"], tmp_path / "r.tbs")
    with BlockSet.open(tmp_path / "r.tbs") as bs:
        entry = int(query(bs, xxh_blocks(block))[0])
        assert [r.offset for r in bs.refs(entry)] == [0, 2 * B]
        assert bs.n_entries == 2 and bs.n_blocks == 3


def test_exclude_and_subtract(tmp_path: Path) -> None:
    rnd = random.Random(9)
    innocent = rnd.randbytes(4 * B)  # e.g. an operating-system file
    bad = rnd.randbytes(5 * B)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "bad.bin").write_bytes(bad + innocent[B : 3 * B])
    (tmp_path / "os").mkdir()
    (tmp_path / "os" / "kernel").write_bytes(innocent)
    proc = triage("blockset", "build", str(tmp_path / "ref"), "--out", str(tmp_path / "x.tbs"),
                  "--exclude", str(tmp_path / "os"))
    assert proc.returncode == 0, proc.stderr
    with BlockSet.open(tmp_path / "x.tbs") as bs:
        assert bs.info()["dropped"]["excluded"] == 2
        assert (query(bs, xxh_blocks(bad)) >= 0).all()
        assert (query(bs, xxh_blocks(innocent)) == -1).all()
    # the same through subtract: A (everything) minus B (the innocent files)
    assert triage("blockset", "build", str(tmp_path / "ref"), "--out",
                  str(tmp_path / "a.tbs")).returncode == 0
    assert triage("blockset", "build", str(tmp_path / "os"), "--out",
                  str(tmp_path / "b.tbs")).returncode == 0
    proc = triage("blockset", "subtract", str(tmp_path / "a.tbs"), str(tmp_path / "b.tbs"),
                  "--out", str(tmp_path / "c.tbs"))
    assert proc.returncode == 0, proc.stderr
    with BlockSet.open(tmp_path / "c.tbs") as bs:
        assert bs.n_blocks == 5 and bs.info()["dropped"]["subtracted"] == 2
        entries = query(bs, xxh_blocks(bad))
        assert [bs.refs(int(e))[0].offset for e in entries] == [i * B for i in range(5)]
        assert (query(bs, xxh_blocks(innocent)) == -1).all()
        assert bs.info()["verified"]


def test_categories_from_a_csv_hash_set(tmp_path: Path) -> None:
    rnd = random.Random(11)
    files = {"a.png": picture(3), "b.bin": rnd.randbytes(3 * B), "c.bin": rnd.randbytes(2 * B)}
    (tmp_path / "ref").mkdir()
    for name, data in files.items():
        (tmp_path / "ref" / name).write_bytes(data)
    rows = ["MD5,SHA1,Category",
            f"{hashlib.md5(files['a.png']).hexdigest().upper()},,A",
            f",{hashlib.sha1(files['b.bin']).hexdigest()},B"]  # by SHA-1 only
    (tmp_path / "set.csv").write_text("\n".join(rows) + "\n")
    proc = triage("blockset", "build", str(tmp_path / "ref"), "--out", str(tmp_path / "c.tbs"),
                  "--categories-from", str(tmp_path / "set.csv"))
    assert proc.returncode == 0, proc.stderr
    with BlockSet.open(tmp_path / "c.tbs") as bs:
        want = {"A": len(files["a.png"]) // B, "B": 3, "null": 2}
        assert bs.categories == want
        for name, data in files.items():
            entry = int(query(bs, xxh_blocks(data)[:1])[0])
            assert bs.refs(entry)[0].file.category == {"a.png": "A", "b.bin": "B"}.get(name)
        assert bs.info(verify=False)["source"]["uncategorised_files"] == 1


# -- piecewise import ------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["md5deep", "hashdeep", "dfxml", "hashdeep-dfxml"])
def test_piecewise_import_matches_hashlib(tmp_path: Path, refs: dict[str, bytes], form: str) -> None:
    ref = tmp_path / "ref"
    (ref / "zeros.bin").write_bytes(bytes(3 * B))  # constant blocks: dropped by MD5 value
    command = {"md5deep": ["md5deep", "-p", str(B), "-r", str(ref)],
               "hashdeep": ["hashdeep", "-c", "md5,sha1", "-p", str(B), "-r", str(ref)],
               "dfxml": ["md5deep", "-d", "-p", str(B), "-r", str(ref)],
               "hashdeep-dfxml": ["hashdeep", "-d", "-c", "md5,sha1", "-p", str(B), "-r", str(ref)],
               }[form]
    pw = tmp_path / "pieces.txt"
    pw.write_bytes(subprocess.run(command, capture_output=True, check=True).stdout)
    proc = triage("blockset", "build", "--from-piecewise", str(pw), "--out", str(tmp_path / "p.tbs"),
                  "--category", "C")
    assert proc.returncode == 0, proc.stderr
    with BlockSet.open(tmp_path / "p.tbs") as bs:
        assert (bs.digest, bs.block_size) == ("md5", B)
        info = bs.info()
        assert info["dropped"]["constant"] == 3 and info["dropped"]["partial"] == 3
        assert bs.n_blocks == sum(len(d) // B for d in refs.values())
        for name, data in refs.items():
            entries = query(bs, md5_blocks(data))
            assert (entries >= 0).all()
            for i, entry in enumerate(entries.tolist()):
                (r,) = bs.refs(entry)
                assert r.offset == i * B and r.file.size == len(data)
                assert r.file.name == str(tmp_path / name) and r.file.category == "C"
                dfxml = form.endswith("dfxml")
                assert r.file.md5 == (hashlib.md5(data).hexdigest() if dfxml else "")
                want_sha1 = hashlib.sha1(data).hexdigest() if form == "hashdeep-dfxml" else ""
                assert r.file.sha1 == want_sha1


def test_piecewise_wrong_block_size_and_garbage(tmp_path: Path, refs: dict[str, bytes]) -> None:
    pw = tmp_path / "p.txt"
    pw.write_bytes(subprocess.run(["md5deep", "-p", "8192", "-r", str(tmp_path / "ref")],
                                  capture_output=True, check=True).stdout)
    proc = triage("blockset", "import", str(pw), "--out", str(tmp_path / "p.tbs"),
                  "--block-size", "4096")
    assert proc.returncode == 2 and "8192" in one_line_error(proc)
    assert triage("blockset", "import", str(pw), "--out", str(tmp_path / "q.tbs")).returncode == 0
    with BlockSet.open(tmp_path / "q.tbs") as bs:
        assert bs.block_size == 8192
    (tmp_path / "bad.txt").write_text("not a hash line\n")
    proc = triage("blockset", "import", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "b.tbs"))
    assert proc.returncode == 2 and "bad.txt:1" in one_line_error(proc)
    (tmp_path / "bad.xml").write_text("<dfxml><fileobject><filename>x</filename>")
    proc = triage("blockset", "import", str(tmp_path / "bad.xml"), "--out", str(tmp_path / "c.tbs"))
    assert proc.returncode == 2 and "DFXML" in one_line_error(proc)


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture
def good_set(tmp_path: Path) -> Path:
    (tmp_path / "r.bin").write_bytes(random.Random(3).randbytes(6 * B))
    out = tmp_path / "good.tbs"
    build_blockset([tmp_path / "r.bin"], out, category="A")
    return out


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (``triage.cli.main``, as the entry point runs it): the many
    bad-header cases need no interpreter start each; tests above use a real subprocess."""
    from contextlib import redirect_stdout

    from triage import cli as triage_cli

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        triage_cli.main(list(args), triage_cli.Environment(stdout=out, stderr=err,
                                                           interactive=False))
    return subprocess.CompletedProcess(list(args), exit_.value.code, out.getvalue(), err.getvalue())


def _refused(path: Path, in_process: bool = True) -> str:
    proc = (cli if in_process else triage)("blockset", "info", str(path))
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    return one_line_error(proc)


def test_truncated_garbage_and_foreign_files(tmp_path: Path, good_set: Path) -> None:
    data = good_set.read_bytes()
    for cut in (0, 10, 64, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.tbs"
        bad.write_bytes(data[:cut])
        assert "block set" in _refused(bad)
        with pytest.raises(BlockSetError):
            BlockSet.open(bad)
    garbage = tmp_path / "garbage.tbs"
    garbage.write_bytes(os.urandom(5000))
    assert "not a triage block set" in _refused(garbage, in_process=False)
    tdb_like = tmp_path / "x.tbs"
    tdb_like.write_bytes(b"TRIAGEDB" + data[8:])
    assert "bad magic" in _refused(tdb_like)
    assert "is a folder" in _refused(tmp_path)
    assert "cannot read" in _refused(tmp_path / "missing.tbs")


def test_altered_data_is_found_by_info(tmp_path: Path, good_set: Path) -> None:
    data = bytearray(good_set.read_bytes())
    data[100] ^= 1  # inside the key section
    bad = tmp_path / "flip.tbs"
    bad.write_bytes(bytes(data))
    assert "does not match the SHA-256" in _refused(bad, in_process=False)


def _rewrite_header(src: Path, dst: Path, header: bytes) -> None:
    """A file whose header was replaced, with a consistent preamble (a crafted file)."""
    data = src.read_bytes()
    _, version, minor, offset, _, _ = struct.unpack("<8sIIQQ32s", data[:64])
    pre = struct.pack("<8sIIQQ32s", b"TRIAGEBS", version, minor, offset, len(header),
                      hashlib.sha256(header).digest())
    dst.write_bytes(pre + data[64:offset] + header)


@pytest.mark.parametrize("mutate", [
    lambda h: h.update(block_size=1000),
    lambda h: h.update(block_size=[4096]),
    lambda h: h.update(rows=h["rows"] + 1),
    lambda h: h.update(entries=h["rows"] + 5),
    lambda h: h["sections"]["keys"].update(offset=7),
    lambda h: h["sections"]["names"].update(length=10**12),
    lambda h: h["sections"].pop("refs"),
    lambda h: h.update(digest="sha1"),
    lambda h: h.update(format="triage-hashset-index"),
    lambda h: h.update(bucket_bits=40),
    lambda h: h.update(files=h["files"] + 1),
    lambda h: h.update(category_blocks={"A": 1}),
    lambda h: h.update(categories=[]),
    lambda h: h.update(sections_sha256="zz"),
    lambda h: h.update(format_minor=3),
    lambda h: h.clear(),
])
def test_header_fuzz_is_one_line_exit_2(tmp_path: Path, good_set: Path, mutate) -> None:
    data = good_set.read_bytes()
    offset = struct.unpack("<Q", data[16:24])[0]
    header = json.loads(data[offset:])
    mutate(header)
    bad = tmp_path / "fuzz.tbs"
    _rewrite_header(good_set, bad, json.dumps(header).encode())
    assert "damaged header" in _refused(bad)


@pytest.mark.parametrize("text", [b"", b"[]", b"{", b"null", b"[" * 100000, b'{"format": NaN}'])
def test_header_not_json(tmp_path: Path, good_set: Path, text: bytes) -> None:
    bad = tmp_path / "nj.tbs"
    _rewrite_header(good_set, bad, text)
    assert "damaged header" in _refused(bad)


def test_header_with_wrong_preamble_digest(tmp_path: Path, good_set: Path) -> None:
    data = bytearray(good_set.read_bytes())
    data[len(data) - 3] ^= 0x20  # inside the JSON header
    bad = tmp_path / "h.tbs"
    bad.write_bytes(bytes(data))
    assert "damaged header" in _refused(bad)


def test_cli_usage_errors(tmp_path: Path, good_set: Path) -> None:
    ref = good_set.parent / "r.bin"
    cases = [
        (["build", str(ref), "--out", str(tmp_path / "x.tdb")], "must end in .tbs"),
        (["build", str(ref), "--out", str(good_set)], "exists"),
        (["build", str(ref), "--out", str(tmp_path / "y.tbs"), "--block-size", "1000"], "multiple of 512"),
        (["build", str(tmp_path / "nothing"), "--out", str(tmp_path / "y.tbs")], "no such file"),
        (["build", str(ref), "--out", str(tmp_path / "y.tbs"), "--digest", "sha1"], "unknown block digest"),
        (["build", str(ref), "--out", str(tmp_path / "y.tbs"), "--category", "A",
          "--categories-from", str(ref)], "exclude each other"),
    ]
    for args, message in cases:
        proc = triage("blockset", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in one_line_error(proc), (args, proc.stderr)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "o.bin").write_bytes(random.Random(4).randbytes(4 * 1024))
    build_blockset([tmp_path / "other"], tmp_path / "k1.tbs", block_size=1024)
    proc = triage("blockset", "subtract", str(good_set), str(tmp_path / "k1.tbs"), "--out",
                  str(tmp_path / "z.tbs"))
    assert proc.returncode == 2 and "block size and digest" in one_line_error(proc)


# -- info ------------------------------------------------------------------------------------


def test_info_text_and_json(tmp_path: Path, refs: dict[str, bytes]) -> None:
    out = tmp_path / "i.tbs"
    (tmp_path / "ref" / "zero.bin").write_bytes(bytes(2 * B) + b"\x1b[31mred")
    assert triage("blockset", "build", str(tmp_path / "ref"), "--out", str(out), "--category",
                  "A\x1b[2J", "--name", "lab set").returncode == 0
    proc = triage("blockset", "info", str(out), "--json", "--files")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    blocks = sum(len(x) // B for x in refs.values())
    assert d["name"] == "lab set" and d["blocks"] == blocks and d["block_size"] == B
    assert d["digest"] == "xxh3-128" and d["files"] == 5 and d["verified"] is True
    assert d["dropped"]["constant"] == 2 and d["dropped"]["partial"] == 4
    assert d["categories"] == {"A\x1b[2J": blocks}
    names = {f["name"]: f for f in d["file_list"]}
    assert names["ref/random2.bin"]["md5"] == hashlib.md5(refs["ref/random2.bin"]).hexdigest()
    assert names["ref/random2.bin"]["blocks"] == 7
    proc = triage("blockset", "info", str(out), "--files")
    assert proc.returncode == 0
    assert "\x1b" not in proc.stdout  # a category code from reference data is escaped
    assert f"{blocks:,} ({blocks:,} distinct) of {B} B" in proc.stdout
    assert "constant 2" in proc.stdout and "verified    yes" in proc.stdout


def test_external_sort_gives_the_same_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny sort buffer the rows spill to run files (the path a billion-block build
    takes); the set must be identical to the in-memory build, shared groups across spills
    included."""
    rnd = random.Random(21)
    shared = [rnd.randbytes(B) for _ in range(50)]
    ref = tmp_path / "ref"
    ref.mkdir()
    for i in range(12):
        body = b"".join(rnd.randbytes(B) + shared[(i * 7 + j) % 50] for j in range(40))
        (ref / f"f{i:02d}.bin").write_bytes(body)
    (tmp_path / "ex.bin").write_bytes(b"".join(shared[:5]))
    big = build_blockset([ref], tmp_path / "big.tbs", max_files=9, exclude=[tmp_path / "ex.bin"])
    monkeypatch.setattr("triage.blocks.build._EMIT_ROWS", 7)  # groups split across slices too
    small = build_blockset([ref], tmp_path / "small.tbs", budget=100, max_files=9,
                           exclude=[tmp_path / "ex.bin"])
    for key in ("rows", "entries", "dropped", "category_blocks", "sections_sha256"):
        assert small[key] == big[key], key
    assert small["dropped"]["excluded"] > 0 and small["dropped"]["shared"] > 0
    with BlockSet.open(tmp_path / "small.tbs") as bs:
        assert bs.info()["verified"]
        keys = np.array(bs.keys)
        assert (keys[1:] >= keys[:-1]).all()


def test_output_inside_the_reference_folder_and_odd_names(tmp_path: Path) -> None:
    """Rebuilding into the reference folder never reads the set itself; a file name that is
    not UTF-8 and holds a terminal escape is kept byte-exact and shown escaped."""
    ref = tmp_path / "ref"
    ref.mkdir()
    data = random.Random(12).randbytes(3 * B)
    odd = os.fsdecode(b"caf\xe9\x1b[31m.bin")
    (ref / odd).write_bytes(data)
    link = tmp_path / "link"
    link.symlink_to(ref)
    for _ in range(2):
        proc = triage("blockset", "build", str(link), "--out", str(ref / "s.tbs"), "--force")
        assert proc.returncode == 0, proc.stderr
    with BlockSet.open(ref / "s.tbs") as bs:
        assert bs.n_files == 1 and bs.n_blocks == 3
        assert bs.file(0).name == "ref/" + odd
    proc = triage("blockset", "info", str(ref / "s.tbs"), "--files")
    assert proc.returncode == 0 and "\x1b" not in proc.stdout and "caf" in proc.stdout


def test_subtract_refuses_altered_input_and_self_overwrite(tmp_path: Path, good_set: Path) -> None:
    data = bytearray(good_set.read_bytes())
    data[100] ^= 1
    altered = tmp_path / "alt.tbs"
    altered.write_bytes(bytes(data))
    with pytest.raises(BlockSetError, match="does not match the SHA-256"):
        subtract_blocksets(altered, good_set, tmp_path / "c.tbs")
    with pytest.raises(BlockSetError, match="does not match the SHA-256"):
        subtract_blocksets(good_set, altered, tmp_path / "c.tbs")
    assert not (tmp_path / "c.tbs").exists()
    with pytest.raises(BlockSetError, match="overwrite an input"):
        subtract_blocksets(good_set, good_set, good_set)
    header = subtract_blocksets(good_set, good_set, tmp_path / "empty.tbs")
    assert header["rows"] == 0 and header["dropped"]["subtracted"] == 6
    with BlockSet.open(tmp_path / "empty.tbs") as bs:
        assert bs.info()["verified"] and (bs.lookup(np.zeros((3, 16), np.uint8)) == -1).all()


def test_file_larger_than_the_read_buffer(tmp_path: Path) -> None:
    """A file read in several 8 MiB pieces: whole-file MD5/SHA-1 in order, block numbers
    continuous across pieces, the weak blocks of the second piece counted."""
    rnd = random.Random(13)
    data = rnd.randbytes(8 << 20) + bytes(2 * B) + rnd.randbytes(9 << 20) + b"end"
    (tmp_path / "big.bin").write_bytes(data)
    build_blockset([tmp_path / "big.bin"], tmp_path / "big.tbs")
    with BlockSet.open(tmp_path / "big.tbs") as bs:
        f = bs.file(0)
        assert f.md5 == hashlib.md5(data).hexdigest() and f.sha1 == hashlib.sha1(data).hexdigest()
        digests = xxh_blocks(data)
        zero = {xxhash.xxh3_128_digest(bytes(B))}
        entries = query(bs, digests)
        for i, (d, e) in enumerate(zip(digests, entries.tolist())):
            if d in zero:
                assert e == -1
            else:
                assert bs.refs(e)[0].offset == i * B
        assert bs.info(verify=False)["dropped"]["constant"] == 2
        assert bs.n_blocks == len(data) // B - 2


def test_dfxml_without_whole_file_digest_and_categories(tmp_path: Path) -> None:
    """A piece's MD5 is never taken for the whole file's; categories by the DFXML whole-file
    MD5 from a compiled .tdb."""
    rnd = random.Random(14)
    one, two = rnd.randbytes(2 * B), rnd.randbytes(3 * B)
    runs = "".join(
        f"<byte_run file_offset='{i * B}' len='{B}'><hashdigest type='MD5'>"
        f"{hashlib.md5(data[i * B:(i + 1) * B]).hexdigest()}</hashdigest></byte_run>"
        for data in (one,) for i in range(2))
    runs2 = "".join(
        f"<byte_run file_offset='{i * B}' len='{B}'><hashdigest type='MD5'>"
        f"{hashlib.md5(two[i * B:(i + 1) * B]).hexdigest()}</hashdigest></byte_run>"
        for i in range(3))
    xml = (f"<?xml version='1.0'?><dfxml xmlns='http://www.forensicswiki.org/wiki/Category:"
           f"Digital_Forensics_XML'><fileobject><filename>one</filename>{runs}</fileobject>"
           f"<fileobject><filename>two</filename><filesize>{len(two)}</filesize>{runs2}"
           f"<hashdigest type='MD5'>{hashlib.md5(two).hexdigest()}</hashdigest></fileobject></dfxml>")
    (tmp_path / "p.xml").write_text(xml)
    (tmp_path / "set.csv").write_text(f"md5,category\n{hashlib.md5(two).hexdigest()},B\n")
    proc = triage("hashset", "import", str(tmp_path / "set.csv"), "--out", str(tmp_path / "s.tdb"))
    assert proc.returncode == 0, proc.stderr
    proc = triage("blockset", "import", str(tmp_path / "p.xml"), "--out", str(tmp_path / "p.tbs"),
                  "--categories-from", str(tmp_path / "s.tdb"))
    assert proc.returncode == 0, proc.stderr
    with BlockSet.open(tmp_path / "p.tbs") as bs:
        first = bs.refs(int(query(bs, md5_blocks(one)[:1])[0]))[0].file
        second = bs.refs(int(query(bs, md5_blocks(two)[:1])[0]))[0].file
        assert (first.name, first.md5, first.category, first.size) == ("one", "", None, 2 * B)
        assert (second.md5, second.category) == (hashlib.md5(two).hexdigest(), "B")
        assert bs.categories == {"null": 2, "B": 3}


def test_verification_thread(tmp_path: Path, good_set: Path) -> None:
    with BlockSet.open(good_set) as bs:
        check = bs.verification()
        assert check.wait() is True and check.status == "verified"
        assert check.computed == bs.header.sections_sha256
    data = bytearray(good_set.read_bytes())
    data[100] ^= 1
    (tmp_path / "alt.tbs").write_bytes(bytes(data))
    with BlockSet.open(tmp_path / "alt.tbs") as bs:  # opening does not read the data
        check = bs.verification()
        assert check.wait() is False and check.status == "failed"
        assert "does not match" in (check.problem or "")
