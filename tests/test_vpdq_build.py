"""The bounded-memory build of the PDQ multi-index (``perceptual.index.sort_pieces``: a counting
sort by bucket key, piece by piece) and of the ``.tdb`` vPDQ section (frames streamed to
temporary files as ``hashset import`` reads them).

Truth comes from the test: the frames are the ones it wrote into the vPDQ text files (its own
quality filter and dedupe), pieces are cut from ``np.unpackbits`` bits, the reference layout is
the in-memory build the import used before (every piece's (key, row) pairs sorted at once), and
search results are brute force over those frames. Small ``SORT_BUDGET`` and chunk sizes force
several key ranges a piece, buckets larger than the budget, and many chunks a pass.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from triage.hashsets import pdqsection, tdb
from triage.hashsets.loader import import_hashsets
from triage.hashsets.pdqsection import open_pdq
from triage.hashsets.store import EntryStore
from triage.hashsets.vpdqsection import VpdqRows, open_vpdq
from triage.perceptual import index as pindex
from triage.perceptual.index import CHUNKS, WIDTHS, PdqIndex
from triage.perceptual.vsets import VpdqSet, VpdqVideo

STARTS = np.cumsum((0,) + WIDTHS[:-1])


def reference_layout(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(ids, offsets, bucket bits) as the in-memory build laid them out: per piece the rows
    sorted by (bucket key, row), bucket starts + one end, offset by the piece's base."""
    n = len(hashes)
    bits = np.unpackbits(hashes, axis=1).astype(np.int64) if n else np.zeros((0, 256), np.int64)
    b = max(4, int(np.ceil(np.log2(max(n, 2)))))
    bucket_bits = tuple(min(w, b) for w in WIDTHS)
    ids, offsets = [], []
    for c, (s, w) in enumerate(zip(STARTS, WIDTHS)):
        value = bits[:, s:s + w] @ (1 << np.arange(w - 1, -1, -1, dtype=np.int64))
        key = value >> (w - bucket_bits[c])
        ids.append(np.lexsort((np.arange(n), key)).astype(np.uint32))
        counts = np.bincount(key, minlength=1 << bucket_bits[c])
        offsets.append(np.concatenate(([0], np.cumsum(counts))) + c * n)
    return np.concatenate(ids), np.concatenate(offsets).astype(np.uint32), bucket_bits


def brute(hashes: np.ndarray, query: np.ndarray, t: int = 31) -> set[int]:
    d = np.unpackbits(hashes ^ query, axis=1).sum(axis=1)
    return set(np.flatnonzero(d <= t).tolist())


def flip(h: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    out = h.copy()
    for bit in rng.choice(256, k, replace=False):
        out[bit // 8] ^= 1 << (7 - bit % 8)
    return out


def hostile_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random hashes, a third of them one same hash (one bucket far over a small budget in
    every piece) and a tenth sharing their first bytes (large buckets in the first pieces)."""
    h = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    h[: n // 3] = h[0]
    h[n // 3: n // 3 + n // 10, :8] = 7
    return h[rng.permutation(n)]


@pytest.mark.parametrize("budget,chunk", [(256 << 20, 1 << 21), (4096, 1000), (64, 37)])
def test_sort_pieces_is_the_plain_sort(monkeypatch, budget: int, chunk: int) -> None:
    rng = np.random.default_rng(budget)
    hashes = hostile_hashes(rng, 3000)
    monkeypatch.setattr(pindex, "SORT_BUDGET", budget)
    monkeypatch.setattr(pindex, "_CHUNK", chunk)
    built = PdqIndex.build([pindex.PdqSet("s", "", "pdq-list", "", hashes,
                                          np.zeros(len(hashes), np.uint16))])
    ids, offsets, bits = reference_layout(hashes)
    assert built.bucket_bits == bits
    assert np.array_equal(built.ids, ids) and np.array_equal(built.offsets, offsets)
    for q in (hashes[0], flip(hashes[5], 20, rng), rng.integers(0, 256, 32, dtype=np.uint8)):
        assert set(built.search(q.tobytes())[0].tolist()) == brute(hashes, q)


def test_empty_and_tiny_indexes() -> None:
    for n in (0, 1, 2):
        hashes = np.random.default_rng(n).integers(0, 256, (n, 32), dtype=np.uint8)
        built = PdqIndex.build([pindex.PdqSet("s", "", "pdq-list", "", hashes,
                                              np.zeros(n, np.uint16))])
        ids, offsets, _ = reference_layout(hashes)
        assert np.array_equal(built.ids, ids) and np.array_equal(built.offsets, offsets)


def write_set(folder: Path, rng: np.random.Generator, videos: int, pool: np.ndarray
              ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """vPDQ text files (one per video); returns per video what the reference matcher keeps:
    (name, hashes of quality >= 50 in file order, first of each hash only, their times)."""
    folder.mkdir()
    kept = []
    for v in range(videos):
        lines, seen, hashes, times = [], set(), [], []
        for i in range(int(rng.integers(0, 120))):
            h = pool[rng.integers(len(pool))] if rng.random() < 0.4 else \
                rng.integers(0, 256, 32, dtype=np.uint8)
            quality, t = int(rng.integers(20, 101)), round(i * 0.5, 3)
            lines.append(f"{i},{quality},{h.tobytes().hex()},{t:.3f}")
            if quality >= 50 and h.tobytes() not in seen:
                seen.add(h.tobytes())
                hashes.append(h)
                times.append(t)
        (folder / f"clip{v:03d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        kept.append((f"clip{v:03d}", np.array(hashes, np.uint8).reshape(-1, 32),
                     np.array(times, np.float32)))
    return kept


def test_import_streams_frames_and_lays_out_the_reference_section(monkeypatch, tmp_path):
    """A two-set vPDQ import with a tiny sort budget and read chunk: the section is the
    reference layout of the test's own frames, verification passes, search = brute force,
    and no temporary file is left beside the index."""
    rng = np.random.default_rng(19)
    pool = rng.integers(0, 256, (40, 32), dtype=np.uint8)  # frames shared between videos
    a = write_set(tmp_path / "a", rng, 25, pool)
    b = write_set(tmp_path / "b", rng, 6, pool)
    monkeypatch.setattr(pindex, "SORT_BUDGET", 2048)
    monkeypatch.setattr(pdqsection, "_ROWS", 97)
    out = tmp_path / "out"
    out.mkdir()
    header = import_hashsets([f"{tmp_path / 'a'}:Alpha", f"{tmp_path / 'b'}:Beta"],
                             out / "v.tdb")
    assert sorted(p.name for p in out.iterdir()) == ["v.tdb"]
    check = tdb.Verification(out / "v.tdb")
    assert check.wait() and check.summary()["status"] == "verified"
    videos = a + b
    hashes = np.concatenate([h for _, h, _ in videos])
    spec = header["vpdq"]
    assert spec["rows"] == len(hashes) > 1000 and spec["videos"] == 31
    assert spec["counts"] == {"Alpha": 25, "Beta": 6}
    index = open_vpdq(out / "v.tdb")
    ids, offsets, bits = reference_layout(hashes)
    assert index.pdq.bucket_bits == bits
    words = np.ascontiguousarray(index.pdq.words).astype(">u8").view(np.uint8).reshape(-1, 32)
    assert np.array_equal(words, hashes)
    assert np.array_equal(index.pdq.ids, ids) and np.array_equal(index.pdq.offsets, offsets)
    owner = np.concatenate([np.full(len(h), i) for i, (_, h, _) in enumerate(videos)])
    assert np.array_equal(index.video, owner)
    assert np.array_equal(index.times, np.concatenate([t for *_, t in videos]))
    for i, (name, h, _) in enumerate(videos):
        row = index.videos[i]
        assert (row["name"], row["frames"]) == (name, len(h))
        assert row["category"] == ("Alpha" if i < 25 else "Beta")
    for q in [pool[3], flip(pool[7], 25, rng), flip(hashes[100], 31, rng),
              rng.integers(0, 256, 32, dtype=np.uint8)]:
        rows, _ = index.pdq.search(q.tobytes(), 31)
        assert set(rows.tolist()) == brute(hashes, q) and len(rows) == len(set(rows.tolist()))


def test_pdq_section_with_a_tiny_budget_is_the_reference(monkeypatch, tmp_path):
    rng = np.random.default_rng(7)
    hashes = np.unique(hostile_hashes(rng, 2500), axis=0)  # the section keeps distinct rows
    listing = tmp_path / "p.txt"
    listing.write_text("".join(h.tobytes().hex() + "\n" for h in hashes), encoding="utf-8")
    monkeypatch.setattr(pindex, "SORT_BUDGET", 512)
    monkeypatch.setattr(pdqsection, "_ROWS", 50)
    import_hashsets([listing], tmp_path / "p.tdb", format="pdq")
    assert tdb.verify(tmp_path / "p.tdb")
    index = open_pdq(tmp_path / "p.tdb")
    ids, offsets, _ = reference_layout(hashes)  # rows sorted by hash, as np.unique gives
    assert np.array_equal(index.ids, ids) and np.array_equal(index.offsets, offsets)
    q = flip(hashes[11], 30, rng)
    assert set(index.search(q.tobytes())[0].tolist()) == brute(hashes, q)


def test_vpdq_section_build_memory_is_bounded(monkeypatch, tmp_path):
    """500k frames streamed through ``VpdqRows`` (videos made one at a time): the build's
    peak traced allocation stays under 48 bytes a frame (the in-memory build took > 200: the
    frames, their words, every piece's ids and a sort buffer at once). What remains is the
    bucket tables (2**19 here, 16 bytes a bucket: never more than 2**24 whatever the frames),
    the sort budget and one chunk of work arrays."""
    n_videos, frames = 500, 1000
    monkeypatch.setattr(pindex, "SORT_BUDGET", 1 << 20)
    monkeypatch.setattr(pdqsection, "_ROWS", 1 << 16)

    def videos():
        for v in range(n_videos):
            r = np.random.default_rng(v)
            yield VpdqVideo(f"v{v}", r.integers(0, 256, (frames, 32), dtype=np.uint8),
                            np.arange(frames, dtype=np.float32), frames)

    store = EntryStore(tmpdir=tmp_path)
    rows = VpdqRows(store, tmp_path)
    tracemalloc.start()
    try:
        rows.add_set(VpdqSet("bench", "bench", "A", "0" * 64), videos())
        with open(tmp_path / "section", "wb") as stream:
            rows.write(tdb._Out(stream), store.categories)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        rows.close()
        store.close()
    n = n_videos * frames
    assert peak < 48 * n, f"{peak / n:.0f} bytes a frame"
    written = (tmp_path / "section").stat().st_size
    assert written > (32 + 4 * CHUNKS + 8) * n  # words, ids, video and times were all written


def test_pdq_rows_dedupe_spilled_is_the_in_memory_unique(tmp_path):
    """PDQ rows of three sources with exact repeats, one hash under two categories and under
    none, through a dedupe store whose tiny budget makes it spill and re-partition: the
    section equals the old in-memory result (``np.unique`` over hash + category id) and its
    reference multi-index; header counts and distinct hashes by the test's own count."""
    from triage.hashsets.loader import index_meta
    from triage.hashsets.pdqsection import PdqRows
    from triage.matching.categories import KNOWN_BAD

    rng = np.random.default_rng(3)
    pool = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    pool[:40, :3] = 9  # a skewed first byte: one partition over the budget
    store = EntryStore(tmpdir=tmp_path)
    rows = PdqRows(store, tmp_path)
    rows.rows.budget = 2048
    all_hashes, all_ids = [], []
    for labels in ([None, "A"], ["B"], [None, "A", "B"]):
        picked = pool[rng.integers(len(pool), size=900)]
        codes = rng.integers(len(labels), size=900).astype(np.uint16)
        rows.add_set(pindex.PdqSet("s", "", "pdq-csv", "", picked, codes, labels))
        ids = np.array([store.category_id(label) for label in labels], np.uint16)
        all_hashes.append(picked)
        all_ids.append(ids[codes])
    hashes, ids = np.concatenate(all_hashes), np.concatenate(all_ids)
    key = np.concatenate([hashes, ids.astype(">u2").view(np.uint8).reshape(-1, 2)], axis=1)
    _, first = np.unique(key.view("V34").ravel(), return_index=True)
    want_hashes, want_ids = hashes[first], ids[first]
    assert rows.rows.spilled  # the tiny budget sent the rows to run files
    path = tmp_path / "p.tdb"
    meta = index_meta("p", KNOWN_BAD, None, [])
    header = tdb.write_index(path, store.finish(), meta, rows, None)
    rows.close()
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tdb"]
    assert tdb.verify(path)
    index = open_pdq(path)
    got = np.ascontiguousarray(index.words).astype(">u8").view(np.uint8).reshape(-1, 32)
    assert np.array_equal(got, want_hashes) and np.array_equal(index.meta, want_ids)
    ref_ids, ref_offsets, _ = reference_layout(want_hashes)
    assert np.array_equal(index.ids, ref_ids) and np.array_equal(index.offsets, ref_offsets)
    spec = header["pdq"]
    assert spec["unique"] == len({h.tobytes() for h in hashes}) < spec["rows"] == len(first)
    names = store.categories
    assert spec["counts"] == {("null" if names[i] is None else names[i]): int(k)
                              for i, k in enumerate(np.bincount(want_ids)) if k}
