"""Scan-time text sets (``--pdq-set LIST|CSV``, the PDQ column of a raw ``--hashset``,
``--vpdq-set FILES[:CAT]``): parsed straight into temporary files and compiled by ``hashset
import``'s own section writer (``perceptual.sources.compile_pdq`` / ``compile_vpdq``) instead of
in-memory indexes, so a scan's memory no longer grows ~140 bytes a frame with the set.

Truth comes from the test: the hashes and frames it wrote, its own quality filter, dedupe and
brute-force Hamming distances. "Before" is the in-memory path the scan used
(``PdqIndex.build`` / ``VpdqIndex.build`` over ``load_pdq_set`` / ``load_vpdq_set``): the
workers' match lists must be the very same, in the same order (ties across sets included), and
the ``summary.json`` entries identical.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from triage.hashsets import pdqsection
from triage.hashsets.loader import load_hashset
from triage.perceptual import index as pindex
from triage.perceptual import sets as psets
from triage.perceptual.compute import PdqOptions, PdqWorker
from triage.perceptual.index import PdqIndex, PdqIndexGroup
from triage.perceptual.sets import load_pdq_set
from triage.perceptual.sources import (
    compile_pdq,
    compile_vpdq,
    in_place_files,
    load_pdq_sources,
    load_vpdq_sources,
)
from triage.perceptual.video import VpdqOptions, ranges
from triage.perceptual.vsets import VpdqIndex, load_vpdq_set

T = 31
QUERY_PCT, TARGET_PCT = 30.0, 5.0  # low shares: partial matches are listed too


def flip(h: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    out = h.copy()
    for bit in rng.choice(256, k, replace=False):
        out[bit // 8] ^= 1 << (7 - bit % 8)
    return out


def distances(q: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """(len(q), len(hashes)) Hamming distances, by unpacked bits."""
    if not len(q) or not len(hashes):
        return np.zeros((len(q), len(hashes)), np.int64)
    return np.unpackbits(q[:, None, :] ^ hashes[None, :, :], axis=2).sum(axis=2)


# -- vPDQ ---------------------------------------------------------------------------------------


def write_video(path: Path, frames: list[tuple[int, bytes, float]], junk: bool = False) -> None:
    lines = ["# written by the test"]
    lines += [f"{i},{q},{h.hex()},{t:.3f}" for i, (q, h, t) in enumerate(frames)]
    if junk:
        lines.insert(3, "not,a,vpdq,line")
    path.write_text("\n".join(lines) + "\n")


def own_usable(frames: list[tuple[int, bytes, float]]) -> list[tuple[int, bytes, float]]:
    """The reference matcher's frames, by the test: quality >= 50, a repeated hash once."""
    seen, out = set(), []
    for f in frames:
        if f[0] >= 50 and f[1] not in seen:
            seen.add(f[1])
            out.append(f)
    return out


@pytest.fixture
def vpdq_sets(tmp_path: Path):
    """Three text sets (a folder with a category, one file, a folder without): low-quality
    and repeated frames, a malformed line (lenient), a video that is in two sets (a tie)."""
    rng = np.random.default_rng(19)
    sets: dict[str, list[tuple[str, list]]] = {}  # spec -> [(video, frames)]

    def video(n: int) -> list[tuple[int, bytes, float]]:
        hs = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        out = [(int(rng.choice([40, 70, 90, 100])), hs[i].tobytes(), i * 1.0) for i in range(n)]
        out += [out[1], out[2]]  # repeats: kept once
        return out

    a = tmp_path / "setA"
    a.mkdir()
    shared = video(12)
    sets[f"{a}:A"] = [(f"a{i}", video(10 + i)) for i in range(5)] + [("a5", shared)]
    for name, frames in sets[f"{a}:A"]:
        write_video(a / f"{name}.txt", frames, junk=name == "a2")
    b = tmp_path / "b0.txt"
    sets[f"{b}:B"] = [("b0", shared)]
    write_video(b, shared)
    c = tmp_path / "setC"
    c.mkdir()
    sets[str(c)] = [(f"c{i}", video(8)) for i in range(3)]
    for name, frames in sets[str(c)]:
        write_video(c / f"{name}.txt", frames)
    # queries: near copies of set videos (some frames flipped far, some frames extra)
    queries = []
    for spec, k in [(f"{a}:A", 0), (f"{a}:A", 3), (f"{a}:A", 5), (str(c), 1)]:
        frames = own_usable([(q, h, t) for q, h, t in sets[spec][k][1]])
        qf = []
        for i, (q, h, t) in enumerate(frames):
            bits = [2, 20, 31, 32, 60][i % 5]
            qf.append((i, max(q, 60), flip(np.frombuffer(h, np.uint8), bits, rng).tobytes().hex(),
                       float(i)))
        qf.append((len(qf), 90, rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex(), 99.0))
        qf.append((len(qf), 20, frames[0][1].hex(), 100.0))  # low quality: not a query frame
        queries.append(qf)
    return sets, queries


def brute_video(query: list, sets: dict, category: dict[str, str]) -> list[dict]:
    """Set videos the query matches, by the test's own distances (unordered)."""
    qs = [f for f in query if f[1] >= 50]
    seen, uq = set(), []
    for f in qs:
        if f[2] not in seen:
            seen.add(f[2])
            uq.append(f)
    qh = np.array([np.frombuffer(bytes.fromhex(f[2]), np.uint8) for f in uq])
    out = []
    for spec, videos in sets.items():
        set_name = Path(spec.split(":")[0]).name
        for name, frames in videos:
            good = own_usable(frames)
            th = np.array([np.frombuffer(h, np.uint8) for _, h, _ in good])
            d = distances(qh, th)
            hit = d <= T
            matched_q = np.flatnonzero(hit.any(axis=1))
            if not len(matched_q):
                continue
            q = 100.0 * len(matched_q) / len(uq)
            t = 100.0 * int(hit.any(axis=0).sum()) / len(good)
            if q >= QUERY_PCT and t >= TARGET_PCT:
                out.append({"hashset": set_name, "algorithm": "vpdq",
                            "category": category[spec], "video": name,
                            "query_pct": round(q, 1), "target_pct": round(t, 1),
                            "distance": int(d[hit].min()),
                            "ranges": ranges([uq[i][3] for i in matched_q], 1.0)})
    return out


def _video_key(m: dict) -> tuple[str, str]:
    return m["hashset"], m["video"]


def test_text_vpdq_sets_match_as_the_in_memory_index(vpdq_sets, tmp_path, monkeypatch):
    """Compiled text sets: every video match (set, category, shares, distance, ranges) is the
    brute force's, the list is the in-memory index's in the same order (the video in two sets
    is a tie, listed in set order), the summary entries are the same, and the temporary
    files are gone once compiled."""
    sets, queries = vpdq_sets
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TRIAGE_TMPDIR", str(scratch))
    specs = list(sets)
    sources, _ = load_vpdq_sources(specs, [], lenient=True)
    old_sets = [load_vpdq_set(s, lenient=True) for s in specs]
    assert [s.summary() for s in sources] == [s.summary() for s in old_sets]
    assert sources[0].summary()["skipped_lines"] == 1
    assert [s.summary()["frames"] for s in sources] == [
        sum(len(own_usable(f)) for _, f in v) for v in sets.values()]
    folder = tmp_path / "out" / ".vpdq-index"
    folder.parent.mkdir()
    sets_file = compile_vpdq(sources, folder)
    assert sets_file and Path(sets_file).parent == folder
    assert os.listdir(scratch) == [] and os.listdir(folder) == ["sets.tdb"]
    assert all(s.sink is None for s in sources)

    video = VpdqOptions(query_pct=QUERY_PCT, target_pct=TARGET_PCT, sets_file=sets_file)
    new = PdqWorker.start(PdqOptions(T, vpdq=video))
    old = PdqWorker(PdqOptions(T, vpdq=video), None, [VpdqIndex.build(old_sets)])
    category = {spec: (spec.rsplit(":", 1)[1] if spec.count(":") else "notable")
                for spec in specs}
    listed = 0
    for query in queries:
        record = SimpleNamespace(vpdq_hashes=query)
        got = new.video_matches(record)
        assert got == old.video_matches(record)
        want = brute_video(query, sets, category)
        assert sorted(got, key=_video_key) == sorted(want, key=_video_key)
        listed += len(got)
    tie = new.video_matches(SimpleNamespace(vpdq_hashes=queries[2]))
    assert [(m["hashset"], m["video"]) for m in tie[:2]] == [("setA", "a5"), ("b0.txt", "b0")]
    assert listed >= 5


# -- PDQ ----------------------------------------------------------------------------------------


@pytest.fixture
def pdq_files(tmp_path: Path):
    """A plain list (repeats, a comment, an all-zero hash, a malformed line), a CSV with
    categories and qualities (low ones dropped, an empty cell), a raw exact CSV with a pdq
    column (a ``--hashset``). Returns (paths, the test's own (hash, category) per set)."""
    rng = np.random.default_rng(7)
    pool = rng.integers(0, 256, (60, 32), dtype=np.uint8)
    truth: dict[str, list[tuple[bytes, str]]] = {}
    listed = [pool[i % 25] for i in range(40)]
    lines = ["# a comment"] + [h.tobytes().hex() + " 100" for h in listed]
    lines.insert(5, "0" * 64)
    lines.insert(9, "xyz not a hash")
    (tmp_path / "l.txt").write_text("\n".join(lines) + "\n")
    truth["l.txt"] = [(h.tobytes(), "notable") for h in listed]
    rows, truth["c.csv"] = ["pdq,category,quality"], []
    for i in range(30):
        h, cat, q = pool[20 + i], ["X", "Y", ""][i % 3], [90, 30, 70][i % 4 % 3]
        rows.append(f"{h.tobytes().hex()},{cat},{q}")
        if q >= 50:
            truth["c.csv"].append((h.tobytes(), cat or "notable"))
    rows.append(",X,90")
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    rows, truth["h"] = ["md5,pdq,category"], []
    for i in range(10):
        h = pool[45 + i]
        rows.append(f"{i:032x},{h.tobytes().hex()},{i % 2 + 1}")
        truth["h"].append((h.tobytes(), str(i % 2 + 1)))
    (tmp_path / "h.csv").write_text("\n".join(rows) + "\n")
    queries = [flip(pool[i], k, rng) for i in range(60) for k in (0, 9, 30, 33)]
    queries.append(rng.integers(0, 256, 32, dtype=np.uint8))
    return tmp_path, truth, queries


def brute_pdq(q: np.ndarray, truth: dict) -> set[tuple[str, str, int]]:
    out = {}
    for name, entries in truth.items():
        d = distances(q[None], np.array([np.frombuffer(h, np.uint8) for h, _ in entries]))[0]
        for (_, cat), dd in zip(entries, d.tolist()):
            if dd <= T and dd < out.get((name, cat), 999):
                out[(name, cat)] = dd
    return {(n, c, d) for (n, c), d in out.items()}


def test_text_pdq_sets_match_as_the_in_memory_index(pdq_files, tmp_path, monkeypatch):
    """Text PDQ sets, streamed and compiled one ``.tdb`` a set: the near matches of every
    query are the brute force's (closest per set and category) and the in-memory index's, in
    the same order; the summary entries (entries with repeats, dropped, skipped, sha256) are
    the same; frames of a video are matched against them as before; nothing temporary is
    left."""
    folder, truth, queries = pdq_files
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TRIAGE_TMPDIR", str(scratch))
    monkeypatch.setenv("TRIAGE_HASHSET_MEMORY", "1")
    hs = load_hashset(folder / "h.csv", pdq=True)
    assert hs.pdq_set.sink is not None and not len(hs.pdq_set.hashes)  # streamed as parsed
    paths = [str(folder / "l.txt"), str(folder / "c.csv")]
    sources = load_pdq_sources(paths, [hs], lenient=True)
    old_sets = [load_pdq_set(p, lenient=True) for p in paths]
    # the exact parser's PDQ column is the PDQ-set reader's (tests/test_pdq_rules.py)
    old_sets.append(load_pdq_set(folder / "h.csv", lenient=True, name="h"))
    assert [s.summary() for s in sources] == [s.summary() for s in old_sets]
    assert [s.summary()["entries"] for s in sources] == [40, len(truth["c.csv"]), 10]
    assert sources[0].summary()["dropped"] == 1 and sources[0].summary()["skipped_lines"] == 1
    out = tmp_path / "out"
    out.mkdir()
    files = compile_pdq(sources, out / ".pdq-index")
    assert len(files) == 3 and os.listdir(scratch) == []
    assert sorted(os.listdir(out / ".pdq-index")) == ["set0.tdb", "set1.tdb", "set2.tdb"]
    assert in_place_files(sources) == ()

    new = PdqWorker.start(PdqOptions(T, None, files))
    old = PdqIndexGroup([PdqIndex.build(old_sets)])
    found = 0
    for q in queries:
        got = new.near_matches(q.tobytes().hex(), 100)
        assert got == old.matches(q.tobytes().hex(), T)
        assert {(m["hashset"], m["category"], m["distance"]) for m in got} == brute_pdq(q, truth)
        found += len(got)
    assert found > 100
    # the frames of a video against the picture sets (pdq-frame), as before
    frames = [(i, 90, q.tobytes().hex(), float(i)) for i, q in enumerate(queries[::7])]
    both = PdqWorker(PdqOptions(T, vpdq=VpdqOptions()), old, [])
    video = PdqWorker.start(PdqOptions(T, None, files, VpdqOptions()))
    record = SimpleNamespace(vpdq_hashes=frames)
    assert video.video_matches(record) == both.video_matches(record) != []


def test_a_failed_parse_leaves_nothing(tmp_path, monkeypatch):
    """A malformed text set (strict) is one error before the scan starts; the sets parsed
    before it let their temporary files go."""
    from triage.errors import HashSetError

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TRIAGE_TMPDIR", str(scratch))
    monkeypatch.setenv("TRIAGE_HASHSET_MEMORY", "1")
    rng = np.random.default_rng(1)
    good = tmp_path / "good.txt"
    good.write_text("".join(rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() + "\n"
                            for _ in range(40_000)))
    bad = tmp_path / "bad.txt"
    bad.write_text("a" * 64 + "\nnot a hash\n")
    closed = []
    real_close = pdqsection.PdqRows.close

    def close(rows: pdqsection.PdqRows) -> None:
        closed.append((rows.rows.spilled, os.listdir(scratch) != []))
        real_close(rows)

    monkeypatch.setattr(pdqsection.PdqRows, "close", close)
    with pytest.raises(HashSetError, match="line 2"):
        load_pdq_sources([str(good), str(bad)], [])
    assert (True, True) in closed  # the good set had spilled its rows into TRIAGE_TMPDIR
    assert os.listdir(scratch) == []
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "x.txt").write_text(f"0,90,{'b' * 64},0.0\n1,90,bad,1.0\n")
    with pytest.raises(HashSetError, match="not a vPDQ line"):
        load_vpdq_sources([str(tmp_path / "v")], [])
    assert os.listdir(scratch) == []


# -- memory -------------------------------------------------------------------------------------


def _peak(work, n: int) -> int:
    """Peak traced bytes while ``work(n)`` runs (what it keeps is dropped after)."""
    tracemalloc.start()
    try:
        work(n)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _write_sets(folder: Path, n: int, rng: np.random.Generator) -> tuple[Path, Path]:
    """``n`` frames of vPDQ text (1,000 a file) and an ``n``-line PDQ list."""
    videos = folder / f"v{n}"
    videos.mkdir()
    for v in range(n // 1000):
        hexes = rng.integers(0, 256, (1000, 32), dtype=np.uint8).tobytes().hex()
        (videos / f"{v}.txt").write_text("".join(
            f"{i},90,{hexes[64 * i:64 * i + 64]},{i}.0\n" for i in range(1000)))
    listed = folder / f"l{n}.txt"
    hexes = rng.integers(0, 256, (n, 32), dtype=np.uint8).tobytes().hex()
    listed.write_text("".join(hexes[i:i + 64] + "\n" for i in range(0, len(hexes), 64)))
    return videos, listed


def test_text_sets_load_and_compile_in_bounded_memory(tmp_path, monkeypatch):
    """Text sets of 20k and 200k frames (vPDQ: 1,000 a file; PDQ: a plain list), parsed and
    compiled as a scan does: the traced peak grows by under 24 bytes an added frame (what
    grows is the bucket tables, ~16 bytes a bucket up to 2**24 buckets whatever the set); the
    in-memory path it replaces grows by over 100 (every frame, its words and every piece's ids
    at once), so the check can fail. Small budgets (sort, chunks, list blocks, run buffers)
    make the constant part small here (~10 MB; ~0.4 GB with the defaults)."""
    monkeypatch.setattr(pindex, "SORT_BUDGET", 1 << 20)
    monkeypatch.setattr(pdqsection, "_ROWS", 1 << 15)
    monkeypatch.setattr(psets, "_BLOCK", 1 << 20)
    monkeypatch.setenv("TRIAGE_HASHSET_MEMORY", "1")
    monkeypatch.setenv("TRIAGE_TMPDIR", str(tmp_path))
    rng = np.random.default_rng(5)
    small, large = 20_000, 200_000
    files = {n: _write_sets(tmp_path, n, rng) for n in (small, large)}
    out = tmp_path / "out"

    def new_vpdq(n: int) -> None:
        sources, _ = load_vpdq_sources([f"{files[n][0]}:C"], [])
        assert compile_vpdq(sources, out / f".vpdq-{n}")
        assert sources[0].summary()["frames"] == n

    def new_pdq(n: int) -> None:
        sources = load_pdq_sources([str(files[n][1])], [])
        assert len(compile_pdq(sources, out / f".pdq-{n}")) == 1
        assert sources[0].entries == n

    def old_vpdq(n: int) -> list:
        return [VpdqIndex.build([load_vpdq_set(f"{files[n][0]}:C")])]

    def old_pdq(n: int) -> list:
        return [PdqIndex.build([load_pdq_set(files[n][1])])]

    out.mkdir()
    for kind, new, old in (("vpdq", new_vpdq, old_vpdq), ("pdq", new_pdq, old_pdq)):
        peaks = {n: _peak(new, n) for n in (small, large)}
        growth = (peaks[large] - peaks[small]) / (large - small)
        assert growth < 24, f"{kind}: {growth:.0f} bytes an added frame"
        before = (_peak(old, large) - _peak(old, small)) / (large - small)
        assert before > 100, f"{kind}: the in-memory path grew {before:.0f} bytes a frame"
