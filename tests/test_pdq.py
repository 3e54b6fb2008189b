"""PDQ: hashing pictures, PDQ sets, near-duplicate search.

Pictures are drawn here with Pillow (gradients, shapes, text). The truth is the reference
computation - ``pdqhash.compute`` on the fully decoded picture, hex as python-threatexchange
writes it - and brute-force Hamming distances, never the code under test.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import itertools
import json
import os
import random
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pdqhash
import pillow_heif
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from triage.perceptual import compute as pdq
from triage.errors import HashSetError
from triage.content.hashing import hash_reads
from triage.run.inspect import inspectors
from triage.perceptual.index import PdqIndex, to_words, to_hex
from triage.perceptual.sets import load_pdq_set
from triage.records import FileRecord

THRESHOLD = 31


def hamming(a: str, b: str) -> int:
    """Bits that differ between two 64-hex PDQ hashes: computed here, not by triage."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def build_index(paths: list[str], directory: Path) -> tuple[Path, list]:
    """Compile PDQ sets into an index folder the way ``run_scan`` does (load, build, save)."""
    sets = [load_pdq_set(p) for p in paths]
    return PdqIndex.build(sets).save(directory), sets


@pytest.fixture(autouse=True)
def pdq_off():
    """PDQ state is a value each worker holds (``PdqWorker``): nothing global can leak into
    another test. Kept as a fixture for the tests that import it."""
    yield


# ---------------------------------------------------------------------------------------------
# Pictures and the reference computation


def drawing(seed: int, size: tuple[int, int] = (640, 480), blur: float = 0) -> Image.Image:
    """A gradient with random shapes and a line of text; different seeds, unrelated pictures."""
    rng = random.Random(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 6.283)
    t = np.cos(angle) * x / w + np.sin(angle) * y / h
    t = (t - t.min()) / (t.max() - t.min())
    c0 = np.array([rng.randrange(256) for _ in range(3)], np.float32)
    c1 = np.array([rng.randrange(256) for _ in range(3)], np.float32)
    img = Image.fromarray((c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(6, 12)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = [x0, y0, x0 + rng.randint(w // 10, w // 2), y0 + rng.randint(h // 10, h // 2)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice(["rect", "ellipse", "poly", "line"])
        if shape == "rect":
            d.rectangle(box, fill=colour)
        elif shape == "ellipse":
            d.ellipse(box, fill=colour)
        elif shape == "poly":
            d.polygon([(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randint(3, 6))],
                      fill=colour)
        else:
            d.line(box, fill=colour, width=rng.randint(3, 12))
    d.text((rng.randrange(w // 2), rng.randrange(h // 2)), f"triage {seed}",
           fill=(255, 255, 255), font=ImageFont.load_default(size=max(12, h // 16)))
    return img.filter(ImageFilter.GaussianBlur(blur)) if blur else img


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def reference(data: bytes) -> tuple[str, int]:
    """python-threatexchange's computation: pdqhash on the whole decoded picture, hex of the
    bit string."""
    with Image.open(io.BytesIO(data)) as img:
        bits, quality = pdqhash.compute(np.asarray(img.convert("RGB")))
    return "%064x" % int("".join(str(int(b)) for b in bits), 2), int(quality)


def variants(img: Image.Image) -> dict[str, bytes]:
    w, h = img.size
    cw, ch = w // 100, h // 100  # 1 % off every side
    return {
        "jpeg50": encode(img, "JPEG", quality=50),
        "half": encode(img.resize((w // 2, h // 2), Image.LANCZOS), "PNG"),
        "cropped": encode(img.crop((cw, ch, w - cw, h - ch)), "JPEG", quality=90),
        "resaved-png": encode(Image.open(io.BytesIO(encode(img, "JPEG", quality=85))), "PNG"),
    }


@pytest.fixture(scope="module")
def originals() -> dict[int, Image.Image]:
    """Six pictures whose reference quality is 50 or more (lower ones are never matched)."""
    out = {}
    for seed in itertools.count(1):
        img = drawing(seed)
        if reference(encode(img, "PNG"))[1] >= 50:
            out[seed] = img
        if len(out) == 6:
            return out


def test_hex_convention():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, 256)
    assert to_hex(bits) == "%064x" % int("".join(map(str, bits)), 2)
    assert to_hex(np.r_[np.ones(8, int), np.zeros(248, int)]) == "ff" + "0" * 62


def test_pdq_of_a_picture_is_the_reference(originals):
    for img in originals.values():
        for data in (encode(img, "PNG"), encode(img, "JPEG", quality=90),
                     encode(img.convert("P"), "GIF"), encode(img, "WEBP")):
            assert pdq.compute(data)[:2] == reference(data)


def test_variants_within_threshold_unrelated_beyond(originals):
    truth = {seed: reference(encode(img, "PNG"))[0] for seed, img in originals.items()}
    for a, b in itertools.combinations(truth, 2):
        assert hamming(truth[a], truth[b]) > THRESHOLD, (a, b)
    for seed, img in originals.items():
        for name, data in variants(img).items():
            ref_hash, _ = reference(data)
            assert hamming(ref_hash, truth[seed]) <= THRESHOLD, (seed, name)  # the premise
            got, quality, reason = pdq.compute(data)
            assert reason is None and quality >= 50
            assert hamming(got, truth[seed]) <= THRESHOLD, (seed, name)
            for other, h in truth.items():
                if other != seed:
                    assert hamming(got, h) > THRESHOLD, (seed, name, other)


def test_large_picture_is_reduced_close_to_full_size():
    img = drawing(77, (2400, 1800), blur=3)
    for data in (encode(img, "JPEG", quality=90), encode(img, "PNG"),
                 encode(img.convert("P"), "GIF"), encode(img.convert("L"), "PNG")):
        full, _ = reference(data)
        got, quality, reason = pdq.compute(data)
        assert reason is None
        assert hamming(got, full) <= 8


def test_heic():
    """pillow-heif (a dependency) ships its HEVC encoder: HEIC pictures are made here."""
    pillow_heif.register_heif_opener()
    img = drawing(5)
    data = encode(img, "HEIF", quality=90)
    got, quality, reason = pdq.compute(data)
    assert reason is None
    assert hamming(got, reference(encode(img, "PNG"))[0]) <= THRESHOLD


# ---------------------------------------------------------------------------------------------
# Hostile pictures: a reason, no crash, no hang


def _png(width: int, height: int, rows: int | None = None) -> bytes:
    """A grey PNG that declares ``width`` x ``height``; its pixel data (zeros) compresses to
    almost nothing - the classic decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    z = zlib.compressobj(9)
    row = bytes(1 + width)
    body = b"".join(z.compress(row) for _ in range(height if rows is None else rows))
    body += z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + \
        chunk(b"IEND", b"")


ON = pdq.PdqWorker.start(pdq.PdqOptions())  # a worker with --pdq on and no PDQ sets


def _inspect(data: bytes, name: str = "/pictures/x.jpg",
             worker: pdq.PdqWorker | None = ON) -> FileRecord:
    """Run the worker's path: one read (in 1 MiB pieces, as a backend reads a large file)
    returning a ``Read``, then every inspector of a worker whose PDQ state is ``worker``."""
    read = hash_reads(lambda p, n: data[p:p + min(n, 1 << 20)], len(data), ("md5",),
                      keep=worker.keep if worker is not None else None)
    assert read.error is None
    record = FileRecord("e", 0, "ext4", name, "1", len(data), False)
    for inspect in inspectors(worker):
        inspect(record, read)
    return record


def test_decompression_bomb_is_refused_quickly():
    bomb = _png(10_000, 10_000)  # 100 Mpx of zeros in ~100 KB
    assert len(bomb) < 200_000
    t0 = time.monotonic()
    got, quality, reason = pdq.compute(bomb)
    assert got is None and quality is None and "decompression-bomb" in reason
    record = _inspect(bomb, "/a/bomb.png")
    assert record.kind == "picture" and record.pdq is None
    assert time.monotonic() - t0 < 5
    # declared far beyond Pillow's own limit, data missing: refused before any decoding
    assert pdq.compute(_png(60_000, 60_000, rows=1))[0] is None


def test_truncated_and_garbage_pictures_give_a_reason():
    jpeg = encode(drawing(3), "JPEG", quality=90)
    t0 = time.monotonic()
    noise = random.Random(1234)  # fixed: a random GIF header may declare gigapixels (a limit)
    for data in (jpeg[: len(jpeg) // 2], jpeg[:700], b"\xff\xd8\xff\xe0" + noise.randbytes(5000),
                 _png(300, 300)[:-40], b"GIF89a" + b"\x40\x01\xf0\x00" + noise.randbytes(296)):
        got, quality, reason = pdq.compute(data)
        assert got is None and quality is None and reason.startswith("not decoded"), reason
        record = _inspect(data)
        assert record.kind == "picture" and record.pdq is None and record.pdq_quality is None
    assert time.monotonic() - t0 < 10


def test_small_pictures_are_skipped():
    got, _, reason = pdq.compute(encode(drawing(4, (49, 200)), "PNG"))
    assert got is None and reason.startswith("skipped")
    assert pdq.compute(encode(drawing(4, (50, 50)), "PNG"))[0] is not None


def test_off_by_default_and_content_kept_only_for_pictures():
    png = encode(drawing(6), "PNG")
    record = _inspect(png, worker=None)
    assert record.kind == "picture" and record.pdq is None  # --pdq not given
    assert pdq.PdqWorker.start(None) is None
    for pieces in (None, 4096):  # one read, or a chunked one (Digest)
        def reader(data: bytes):
            return lambda p, n: data[p:p + (n if pieces is None else min(n, pieces))]
        kept = hash_reads(reader(png), len(png), ("md5",), keep=ON.keep)
        assert kept.content is not None and bytes(kept.content) == png
        assert hash_reads(reader(png), len(png), ("md5",)).content is None  # PDQ off
        zipped = b"PK\x03\x04" + bytes(100)
        assert hash_reads(reader(zipped), len(zipped), ("md5",), keep=ON.keep).content is None
    record = _inspect(png, "/hidden/picture.dll")  # whatever its name
    assert (record.pdq, record.pdq_quality) == reference(png)
    assert record.extension_mismatch is True


# ---------------------------------------------------------------------------------------------
# PDQ sets


def _hex(rng: random.Random) -> str:
    return "%064x" % rng.getrandbits(256)


def test_plain_list(tmp_path):
    rng = random.Random(1)
    hashes = [_hex(rng) for _ in range(50)]
    text = "# exported PDQ\r\n" + "\r\n".join(h.upper() if i % 2 else h
                                             for i, h in enumerate(hashes)) + "\r\n\r\n"
    path = tmp_path / "list.txt"
    path.write_text(text, newline="")
    s = load_pdq_set(path)
    assert s.format == "pdq-list" and s.entries == 50
    assert [bytes(r).hex() for r in s.hashes] == hashes
    assert s.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # fast path: a clean list, plus a hash with a trailing quality column
    clean = tmp_path / "clean.txt"
    clean.write_text("\n".join(hashes) + "\n" + hashes[0] + " 100\n")
    s = load_pdq_set(clean)
    assert s.entries == 51 and bytes(s.hashes[50]).hex() == hashes[0]


def test_plain_list_errors(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("%s\nnot-a-hash\n%s\n0000\n" % ("a" * 64, "b" * 64))
    with pytest.raises(HashSetError, match="line 2"):
        load_pdq_set(path)
    s = load_pdq_set(path, lenient=True)
    assert (s.entries, s.skipped) == (2, 2)
    zero = tmp_path / "zero.txt"
    zero.write_text("0" * 64 + "\n" + "c" * 64 + "\n")
    s = load_pdq_set(zero)
    assert (s.entries, s.dropped) == (1, 1)


def test_csv_with_category_and_quality(tmp_path):
    rng = random.Random(2)
    rows = [(_hex(rng), cat, q) for cat, q in
            [("A", 100), ("B", 80), ("", 90), ("1", 49), ("C", "")]]
    for delim in (",", "\t", ";"):
        path = tmp_path / f"set{ord(delim)}.csv"
        lines = [delim.join(["id", "PDQ", "Category", "Quality"])]
        lines += [delim.join([str(i), h, c, str(q)]) for i, (h, c, q) in enumerate(rows)]
        path.write_bytes(codecs.BOM_UTF8 + "\r\n".join(lines).encode())
        s = load_pdq_set(path)
        assert s.format == "pdq-csv" and s.entries == 4 and s.dropped == 1
        got = {bytes(h).hex(): s.labels[c] for h, c in zip(s.hashes, s.codes)}
        assert got == {rows[0][0]: "A", rows[1][0]: "B", rows[2][0]: None, rows[4][0]: "C"}
    bad = tmp_path / "bad.csv"
    bad.write_text("pdq,category\nxyz,A\n")
    with pytest.raises(HashSetError, match="line 2"):
        load_pdq_set(bad)


def _vics(media: list[dict], cases: bool = False) -> dict:
    if cases:
        return {"odata.metadata": "http://x/$metadata#Cases",
                "value": [{"CaseID": 1, "Media": media}]}
    return {"@odata.context": "http://x/$metadata#Media", "value": media}


def test_vics_alternative_hashes(tmp_path):
    rng = random.Random(3)
    h1, h2, h3 = _hex(rng), _hex(rng), _hex(rng)
    media = [
        {"MD5": "0" * 32, "Category": 1,
         "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": "zz"},
                               {"HashName": "PDQ", "HashValue": h1}]},
        {"MD5": "1" * 32, "Category": "2", "AlternativeHashes": [{"HashName": "pdq",
                                                                  "HashValue": h2.upper()}]},
        {"MD5": "2" * 32, "Category": 3},  # no alternative hashes: not a PDQ entry
        {"MD5": "3" * 32, "AlternativeHashes": [{"HashName": "PDQ", "HashValue": h3}]},
    ]
    for cases in (False, True):
        for encoding in ("utf-8", "utf-16"):
            path = tmp_path / f"vics-{cases}-{encoding}.json"
            text = json.dumps(_vics(media, cases), indent=1)
            path.write_bytes(text.encode("utf-8") if encoding == "utf-8"
                             else codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
            s = load_pdq_set(path)
            assert s.format == "vics"
            got = {bytes(h).hex(): s.labels[c] for h, c in zip(s.hashes, s.codes)}
            assert got == {h1: "1", h2: "2", h3: None}
            assert s.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_vics([{"AlternativeHashes": [{"HashName": "PDQ",
                                                             "HashValue": "12"}]}])))
    with pytest.raises(HashSetError, match=r"value\[0\]"):
        load_pdq_set(bad)
    assert load_pdq_set(bad, lenient=True).skipped == 1


# ---------------------------------------------------------------------------------------------
# Near-duplicate search: exact against brute force


def _flip(h: bytes, d: int, rng: np.random.Generator) -> bytes:
    bits = np.unpackbits(np.frombuffer(h, np.uint8))
    bits[rng.choice(256, d, replace=False)] ^= 1
    return np.packbits(bits).tobytes()


@pytest.mark.parametrize("n", [1, 7, 3000, 70_000])
def test_search_equals_brute_force(n, tmp_path):
    rng = np.random.default_rng(n)
    hashes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    s = load_pdq_set(_write_list(tmp_path / "s.txt", hashes))
    index = PdqIndex.open(PdqIndex.build([s]).save(tmp_path / "idx"))
    words = to_words(hashes)
    queries = [_flip(bytes(hashes[rng.integers(n)]), int(d), rng)
               for d in rng.integers(0, 48, 150)]
    queries += [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(20)]
    for t in (0, 5, 21, 22, 31, 32, 33, 44, 64):
        if t > 33 and n > 3000:
            continue  # radius 4-5 a piece: correct but slow to probe
        for q in queries if t <= 33 else queries[::5]:
            rows, dist = index.search(q.hex(), t)
            truth = np.bitwise_count(words ^ to_words(np.frombuffer(q, np.uint8))).sum(axis=1)
            want = np.flatnonzero(truth <= t)
            assert rows.tolist() == want.tolist(), (n, t)
            assert dist.tolist() == truth[want].tolist()


def _write_list(path: Path, hashes: np.ndarray) -> Path:
    path.write_text("".join(bytes(h).hex() + "\n" for h in hashes))
    return path


def test_matches_best_per_set_and_category(tmp_path):
    rng = random.Random(9)
    base = bytes.fromhex(_hex(rng))
    near1 = _flip(base, 3, np.random.default_rng(1)).hex()
    near2 = _flip(base, 9, np.random.default_rng(2)).hex()
    (tmp_path / "a.csv").write_text(f"pdq,category\n{near1},B\n{near2},B\n{near2},A\n")
    (tmp_path / "b.txt").write_text(near2 + "\n")
    directory, sets = build_index([str(tmp_path / "a.csv"), str(tmp_path / "b.txt")],
                                  tmp_path / "idx")
    assert [s.summary()["entries"] for s in sets] == [3, 1]
    index = PdqIndex.open(directory)
    assert index.matches(base.hex()) == [
        {"hashset": "a.csv", "algorithm": "pdq", "distance": 3, "category": "B"},
        {"hashset": "a.csv", "algorithm": "pdq", "distance": 9, "category": "A"},
        {"hashset": "b.txt", "algorithm": "pdq", "distance": 9, "category": "notable"},
    ]
    assert index.matches(base.hex(), threshold=5) == index.matches(base.hex())[:1]


def test_near_matches_in_the_worker(originals, tmp_path):
    """Set from the originals' reference hashes; each variant, through the worker's inspectors,
    finds its original's category and no other."""
    lines = ["pdq,category"] + [f"{reference(encode(img, 'PNG'))[0]},C{seed}"
                                for seed, img in originals.items()]
    (tmp_path / "set.csv").write_text("\n".join(lines) + "\n")
    directory, _ = build_index([str(tmp_path / "set.csv")], tmp_path / "idx")
    worker = pdq.PdqWorker.start(pdq.PdqOptions(threshold=THRESHOLD, index_dir=str(directory)))
    for seed, img in originals.items():
        for name, data in variants(img).items():
            record = _inspect(data, f"/x/{name}.dat", worker)
            found = worker.near_matches(record.pdq, record.pdq_quality)
            assert [m["category"] for m in found] == [f"C{seed}"], (seed, name)
            assert found[0]["distance"] <= THRESHOLD and found[0]["hashset"] == "set.csv"
    unrelated = _inspect(encode(drawing(1000), "JPEG"), worker=worker)
    assert worker.near_matches(unrelated.pdq, unrelated.pdq_quality) == []
    some = reference(encode(next(iter(originals.values())), "PNG"))[0]
    assert worker.near_matches(some, 49) == []  # quality under 50: never matched
    assert worker.near_matches(some, 50) != []


# ---------------------------------------------------------------------------------------------
# End to end: needs --pdq wired through ScanConfig (skipped until then)


@pytest.mark.skipif(shutil.which("mke2fs") is None, reason="mke2fs not installed")
def test_scan_finds_near_duplicates(originals, tmp_path):
    from triage.run.scan import ScanConfig, run_scan

    src = tmp_path / "src"
    src.mkdir()
    expected: dict[str, str | None] = {}
    for seed, img in originals.items():
        for name, data in variants(img).items():
            ext = "txt" if name == "cropped" else ("jpg" if name == "jpeg50" else "png")
            (src / f"p{seed}-{name}.{ext}").write_bytes(data)
            expected[f"/p{seed}-{name}.{ext}"] = f"C{seed}"
    for seed in (1001, 1002):
        (src / f"other{seed}.jpg").write_bytes(encode(drawing(seed), "JPEG", quality=80))
        expected[f"/other{seed}.jpg"] = None
    lines = ["pdq,category"] + [f"{reference(encode(img, 'PNG'))[0]},C{seed}"
                                for seed, img in originals.items()]
    (tmp_path / "set.csv").write_text("\n".join(lines) + "\n")
    image = tmp_path / "pictures.img"
    env = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000")
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "8M"],
                   check=True, env=env, capture_output=True)
    outcome = run_scan(ScanConfig(evidence=[str(image)], out=tmp_path / "out", workers=2,
                                  pdq=True, pdq_threshold=THRESHOLD,
                                  pdq_sets=[str(tmp_path / "set.csv")]))
    rows = {r["path"]: r for r in map(json.loads, (outcome.out / "files.jsonl")
                                      .read_text(encoding="utf-8").splitlines())}
    for path, category in expected.items():
        r = rows[path]
        assert r["kind"] == "picture" and len(r["pdq"]) == 64 and r["pdq_quality"] >= 50
        near = [m for m in r["matches"] if m["algorithm"] == "pdq"]
        if category is None:
            assert near == [], path
        else:
            assert [m["category"] for m in near] == [category], path
            assert near[0]["distance"] <= THRESHOLD
            assert r["category"] == "unknown"  # a near match never sets the category
    assert rows["/p%d-cropped.txt" % next(iter(originals))]["extension_mismatch"] is True


def test_a_limit_that_stops_pdq_is_said_and_makes_the_run_not_fully_examined(tmp_path):
    """A picture over the decompression-bomb pixel limit is hashed and matched exactly, but its
    PDQ is dropped by a limit: with --pdq the run says so (totals.perceptual_limited, the
    report's top box) and exits 4; without --pdq nothing was asked, exit 0; records agree."""
    from triage.run import ScanConfig, run_scan

    src = tmp_path / "src"
    src.mkdir()
    bomb = _png(10_000, 10_000)
    (src / "bomb.png").write_bytes(bomb)
    (src / "note.txt").write_bytes(b"plain text\n")
    image = tmp_path / "p.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "8M"],
                   check=True, capture_output=True,
                   env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"))
    bad = tmp_path / "bad.md5"  # a known-bad set that matches nothing on the image
    bad.write_text(hashlib.md5(b"not on the image").hexdigest() + "  x\n")
    runs = {}
    for pdq_on in (False, True):
        out = tmp_path / f"out-{pdq_on}"
        outcome = run_scan(ScanConfig(evidence=[str(image)], out=out, workers=1,
                                      hashsets=[str(bad)], pdq=pdq_on))
        rows = {r["path"]: r for r in map(json.loads, (out / "files.jsonl").read_text()
                                          .splitlines())}
        runs[pdq_on] = (outcome, rows)
    plain, with_pdq = runs[False], runs[True]
    assert plain[0].exit_code == 0 and plain[0].summary["totals"]["perceptual_limited"] == 0
    assert with_pdq[0].exit_code == 4
    assert with_pdq[0].summary["totals"]["perceptual_limited"] == 1
    r = with_pdq[1]["/bomb.png"]
    assert r["pdq"] is None and r["pdq_error"].startswith("limit: 10000x10000")
    assert r["md5"] == hashlib.md5(bomb).hexdigest()
    for path, row in plain[1].items():  # the same files, the same exact hashes
        assert {k: row[k] for k in ("md5", "sha1", "sha256", "category", "error")} == \
            {k: with_pdq[1][path][k] for k in ("md5", "sha1", "sha256", "category", "error")}
    html = (tmp_path / "out-True" / "report.html").read_text()
    assert '<div class="banner warn" id="verdict">' in html
    box = html[html.index('id="not-examined"'):]
    assert "1 file(s) not perceptually hashed in full" in box[: box.index("</div>")]
    assert '<div class="banner ok" id="verdict">' in (tmp_path / "out-False" / "report.html"
                                                     ).read_text()
