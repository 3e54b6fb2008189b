"""--vpdq: videos made here with PyAV from generated frames (gradients, moving shapes, text;
never footage of people), scanned as a folder; the truth comes from the test's own decode of
each video (PyAV) and ``pdqhash`` over those frames, and the match shares from counting.

Variants of one original (re-encoded smaller at a low bitrate, middle third trimmed, remuxed
mp4 -> mkv) must match its vPDQ set with the set's category; unrelated videos must not.
Hostile videos (truncated, random bytes after an mp4 header, no frame, a header claiming 10 h)
give a per-file ``vpdq_error`` within the time limit, never a crash.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import av
import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageDraw

from triage.perceptual.video import compute_vpdq, ranges
from triage.perceptual.vsets import load_vpdq_set, parse_spec
from triage.reports import render_all
from triage.run.scan import ScanConfig, run_scan

FPS = 10
W, H = 160, 120
SECONDS = 12


def scene(i: int, seed: int) -> np.ndarray:
    """Frame ``i``: a gradient, a moving disc and a number, all changing every second."""
    s = i // FPS
    r = np.random.default_rng(seed * 1000 + s)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a, b = r.uniform(-3, 3, 2)
    img = np.zeros((H, W, 3), np.float32)
    img[..., 0] = (xx * a + yy * b) % 255
    img[..., 1] = (xx * b - yy * a + 60 * s) % 255
    cx, cy, rad = r.uniform(0, W), r.uniform(0, H), r.uniform(12, 40)
    img[..., 2] = 255 * (((xx - cx - 2 * (i % FPS)) ** 2 + (yy - cy) ** 2) < rad ** 2)
    pic = Image.fromarray(img.astype(np.uint8))
    ImageDraw.Draw(pic).text((8 + 5 * (s % 7), 8), f"S{seed}-{s:03d}", fill=(255, 255, 255))
    return np.asarray(pic)


def write_video(path: Path, images, fmt: str = "mp4", size: tuple[int, int] = (W, H),
                bitrate: int | None = None, **options: str) -> Path:
    with av.open(str(path), "w", format=fmt) as c:
        st = c.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = size[0], size[1], "yuv420p"
        if bitrate:
            st.bit_rate = bitrate
        for img in images:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if size != (W, H):
                frame = frame.reformat(size[0], size[1])
            for p in st.encode(frame):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return path


def decoded(path: Path) -> list[np.ndarray]:
    """Every frame of a video, decoded by the test (RGB)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def truth(path: Path) -> list[tuple[int, int, str, float]]:
    """vPDQ by the test: one frame a second (every FPS-th), PDQ by pdqhash."""
    out = []
    for n, img in enumerate(decoded(path)):
        if n % FPS == 0:
            bits, q = pdqhash.compute(img)
            out.append((n, int(q), np.packbits(bits.astype(np.uint8)).tobytes().hex(),
                        round(n / FPS, 3)))
    return out


def remux(src: Path, dst: Path, fmt: str) -> Path:
    """Same packets, another container (no re-encode)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format=fmt) as o:
        s = i.streams.video[0]
        t = o.add_stream_from_template(s)
        for p in i.demux(s):
            if p.dts is None:
                continue
            p.stream = t
            o.mux(p)
    return dst


def dist(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def usable(frames):
    seen, out = set(), []
    for f in frames:
        if f[1] >= 50 and f[2] not in seen:
            seen.add(f[2])
            out.append(f)
    return out


def shares(query, target) -> tuple[float, float]:
    """The reference matcher's shares, by brute force."""
    q, t = usable(query), usable(target)
    qm = sum(any(dist(a[2], b[2]) <= 31 for b in t) for a in q)
    tm = sum(any(dist(a[2], b[2]) <= 31 for a in q) for b in t)
    return round(100 * qm / len(q), 1), round(100 * tm / len(t), 1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vpdq")
    ev = d / "ev"
    (ev / "sub").mkdir(parents=True)
    frames = [scene(i, 1) for i in range(FPS * SECONDS)]
    v = {"orig": write_video(d / "orig.mp4", frames)}
    # 80% of the side, a lower bitrate (96 x 72 leaves only 64% of the frames within 31)
    v["reenc"] = write_video(ev / "reenc.mp4", decoded(v["orig"]), size=(128, 96),
                             bitrate=80_000)
    third = len(frames) // 3
    v["trim"] = write_video(ev / "trim.mp4", decoded(v["orig"])[third:2 * third])
    v["remux"] = remux(v["orig"], ev / "sub" / "remux.mkv", "matroska")
    v["copy"] = ev / "copy.mp4"
    shutil.copy(v["orig"], v["copy"])
    v["other"] = write_video(ev / "other.mp4", [scene(i, 2) for i in range(FPS * 8)])
    v["other2"] = write_video(ev / "other2.mkv", [scene(i, 3) for i in range(FPS * 6)],
                              fmt="matroska")
    data = v["orig"].read_bytes()
    (ev / "truncated.mp4").write_bytes(data[: len(data) // 2])
    rng = np.random.default_rng(7)
    (ev / "random.mp4").write_bytes(rng.bytes(50_000))
    (ev / "ftyp-random.mp4").write_bytes(data[:32] + rng.bytes(50_000))
    with av.open(str(ev / "empty.mp4"), "w", format="mp4") as c:  # a stream, no frame
        st = c.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        c.start_encoding()
    (ev / "ten-hours.mp4").write_bytes(claim_hours(data, 10))
    v["ev"] = ev
    # the set: the original's vPDQ as ThreatExchange writes it, from the test's own decode
    sets = d / "set"
    sets.mkdir()
    (sets / "original-video.txt").write_text(
        "".join(f"{n},{q},{h},{t:.3f}\n" for n, q, h, t in truth(v["orig"])))
    v["set"] = sets
    return v


def claim_hours(mp4: bytes, hours: int) -> bytes:
    """The same video with its movie header (mvhd) claiming ``hours`` hours."""
    at = mp4.index(b"mvhd")
    out = bytearray(mp4)
    assert out[at + 4] == 0  # version 0: 32-bit times
    timescale = int.from_bytes(out[at + 16:at + 20], "big")
    out[at + 20:at + 24] = (timescale * 3600 * hours).to_bytes(4, "big")
    return bytes(out)


@pytest.fixture(scope="module")
def scanned(videos, tmp_path_factory) -> tuple[Path, dict[str, dict], dict[str, list]]:
    out = tmp_path_factory.mktemp("run") / "out"
    start = time.monotonic()
    outcome = run_scan(ScanConfig(evidence=[str(videos["ev"])], out=out, workers=1,
                                  vpdq_sets=[f"{videos['set']}:A"]))
    elapsed = time.monotonic() - start
    assert elapsed < 60
    assert outcome.summary["complete"] is True
    assert not (out / ".vpdq-index").exists()  # the text set's compiled index, removed
    records = {r["path"].rsplit("/", 1)[-1]: r for r in
               map(json.loads, (out / "files.jsonl").read_text().splitlines())}
    side = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line)["frames"]
            for line in (out / "vpdq.jsonl").read_text().splitlines()}
    return out, records, side


def test_frames_are_the_reference_frames(videos, scanned):
    """vpdq.jsonl holds, per video, frame number, quality, PDQ and timestamp of one frame a
    second, as the test computes them over its own decode."""
    _, records, side = scanned
    for name, key in (("copy.mp4", "copy"), ("reenc.mp4", "reenc"), ("trim.mp4", "trim"),
                      ("remux.mkv", "remux"), ("other.mp4", "other")):
        expected = truth(videos[key])
        assert [tuple(f) for f in side[name]] == expected, name
        assert records[name]["vpdq_frames"] == len(expected)
        assert records[name]["vpdq_error"] is None
        assert records[name]["kind"] == "video"
    assert records["copy.mp4"]["vpdq_duration"] == SECONDS
    assert records["trim.mp4"]["vpdq_duration"] == SECONDS // 3


@pytest.mark.parametrize("name,key", [("copy.mp4", "copy"), ("reenc.mp4", "reenc"),
                                      ("trim.mp4", "trim"), ("remux.mkv", "remux")])
def test_variants_match_with_the_category(videos, scanned, name, key):
    _, records, side = scanned
    set_frames = truth(videos["orig"])
    query = truth(videos[key])
    q, t = shares(query, set_frames)
    assert q >= 80  # the variant is a match by the reference rule (else the test is wrong)
    r = records[name]
    found = [m for m in r["vpdq_matches"] if m["algorithm"] == "vpdq"]
    assert len(found) == 1
    m = found[0]
    assert (m["hashset"], m["video"], m["category"]) == ("set", "original-video", "A")
    assert (m["query_pct"], m["target_pct"]) == (q, t)
    # the times that matched: the query frames within 31 of a set frame, merged
    good = usable(set_frames)
    times = [f[3] for f in usable(query) if any(dist(f[2], g[2]) <= 31 for g in good)]
    assert m["ranges"] == ranges(times, 1.0)
    assert m["distance"] == min(dist(f[2], g[2]) for f in usable(query) for g in good)
    assert r["category"] == "unknown" and r["matches"] == []  # never a category
    if key == "trim":
        assert 25 <= t <= 40  # a third of the original's frames


def test_unrelated_videos_do_not_match(videos, scanned):
    _, records, _ = scanned
    for name, key in (("other.mp4", "other"), ("other2.mkv", "other2")):
        q, _ = shares(truth(videos[key]), truth(videos["orig"]))
        assert q < 80
        assert not records[name]["vpdq_matches"]
        assert records[name]["vpdq_frames"] > 0


def test_hostile_videos_are_per_file_errors(scanned):
    _, records, side = scanned
    assert records["truncated.mp4"]["vpdq_error"].startswith("not decoded")
    assert records["ftyp-random.mp4"]["kind"] == "video"
    assert records["ftyp-random.mp4"]["vpdq_error"]
    assert records["empty.mp4"]["vpdq_error"]
    assert records["empty.mp4"]["vpdq_frames"] in (0, None)
    # random bytes are no video whatever the name: never decoded
    assert records["random.mp4"]["kind"] != "video"
    assert records["random.mp4"]["vpdq_frames"] is None
    # the header's 10 hours are not believed: what was decoded is recorded
    ten = records["ten-hours.mp4"]
    assert ten["vpdq_error"] is None and ten["vpdq_duration"] == SECONDS
    for name in ("truncated.mp4", "ftyp-random.mp4", "empty.mp4", "random.mp4"):
        assert records[name]["error"] is None and records[name]["sha256"]
        assert name not in side


def test_limits_stop_with_a_reason(videos):
    data = videos["orig"].read_bytes()
    frames, _, why = compute_vpdq(data, max_frames=3)
    assert len(frames) == 3 and why.startswith("limit: 3 frames")
    frames, _, why = compute_vpdq(data, time_limit=0.0)
    assert why.startswith("limit: time limit")
    frames, duration, why = compute_vpdq(data, interval=0.5)
    assert why is None and len(frames) == 2 * SECONDS and duration == SECONDS
    start = time.monotonic()
    frames, _, why = compute_vpdq(claim_hours(data, 10), time_limit=5.0)
    assert time.monotonic() - start < 10 and why is None and len(frames) == SECONDS


def test_reports_show_video_near_matches_for_review(scanned):
    out, records, _ = scanned
    import csv

    with open(out / "hits.csv", encoding="utf-8-sig", newline="") as fh:
        rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(fh)}
    # ten-hours.mp4 is the original with a lying header: it matches too
    assert set(rows) == {"copy.mp4", "reenc.mp4", "trim.mp4", "remux.mkv", "ten-hours.mp4"}
    for name, r in rows.items():
        assert r["category"] == "unknown" and r["hashsets"] == ""
        assert r["label"].startswith("Near-duplicate video (vPDQ), needs review")
        assert r["video_near_duplicate"].startswith("needs review: vPDQ ")
        assert "original-video in set (A)" in r["video_near_duplicate"]
        assert float(r["vpdq_share"]) == records[name]["vpdq_matches"][0]["query_pct"]
    html = (out / "report.html").read_text(encoding="utf-8")
    section = html[html.index("Near-duplicate videos (vPDQ)"):]
    section = section[:section.index("</section>")]
    for name in rows:
        assert name in section
    assert "other.mp4" not in section
    # DFXML: valid against the DFXML schema, the video near matches as triage:video_match
    import xml.etree.ElementTree as ET

    import xmlschema

    xsd = Path(__file__).parent / "data" / "dfxml_schema" / "dfxml.xsd"
    assert not list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out / "files.dfxml")))
    ns = {"d": "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML"}
    found = {}
    for fo in ET.parse(out / "files.dfxml").getroot().iter():
        if fo.tag.endswith("fileobject"):
            name = next(c.text for c in fo if c.tag.endswith("filename")).rsplit("/", 1)[-1]
            found[name] = [c.attrib for c in fo if c.tag.endswith("video_match")]
    assert {n for n, v in found.items() if v} == set(rows)
    assert found["trim.mp4"][0]["query_pct"] == str(records["trim.mp4"]["vpdq_matches"][0]
                                                    ["query_pct"])
    del ns
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["near_duplicates"] == 5
    assert summary["vpdq_sets"][0]["videos"] == 1


def test_frames_against_picture_sets(videos, tmp_path):
    """A video that shows a known picture as a frame: the frame's time and distance."""
    orig = truth(videos["orig"])
    picture = decoded(videos["orig"])[35]  # a frame between two sampled ones (3.5 s)
    bits, _ = pdqhash.compute(picture)
    value = np.packbits(bits.astype(np.uint8)).tobytes().hex()
    pdq_set = tmp_path / "pictures.csv"
    pdq_set.write_text(f"pdq,category\n{value},B\n")
    ev = tmp_path / "ev"
    ev.mkdir()
    shutil.copy(videos["orig"], ev / "clip.mp4")
    out = tmp_path / "out"
    run_scan(ScanConfig(evidence=[str(ev)], out=out, workers=1, vpdq=True,
                        pdq_sets=[str(pdq_set)]))
    r = json.loads((out / "files.jsonl").read_text().splitlines()[0])
    [m] = r["vpdq_matches"]
    near = [f for f in usable(orig) if dist(f[2], value) <= 31]
    best = min(near, key=lambda f: (dist(f[2], value), f[3]))
    assert m == {"hashset": "pictures.csv", "algorithm": "pdq-frame", "category": "B",
                 "distance": dist(best[2], value), "at": best[3], "frames": len(near)}
    assert r["category"] == "unknown"


def test_set_files(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("0,100," + "ab" * 32 + ",0.000\n1,10," + "cd" * 32 + ",1.000\n"
                 "2,90," + "ab" * 32 + ",2.000\n")
    s = load_vpdq_set(f"{f}:X")
    assert (s.category, len(s.videos), len(s.videos[0].hashes), s.videos[0].lines) == \
        ("X", 1, 1, 3)  # quality 10 dropped, the repeated hash kept once
    assert parse_spec(str(f)) == (str(f), None)
    f.write_text("0,100,zz,0.0\n")
    from triage.errors import HashSetError

    with pytest.raises(HashSetError, match="not a vPDQ line"):
        load_vpdq_set(str(f))
    assert load_vpdq_set(str(f), lenient=True).skipped == 1


def test_cli_errors_are_one_line(tmp_path, videos):
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    for args in (["--vpdq-set", str(tmp_path / "missing")], ["--vpdq", "--vpdq-interval", "0"]):
        p = subprocess.run(["python3", "-m", "triage", "scan", str(videos["ev"]), "--out",
                            str(tmp_path / "o"), "-q", *args], capture_output=True, text=True,
                           env=env)
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_no_content_leaves_with_vpdq(tmp_path, videos):
    """Markers in a video's metadata and drawn into its frames: in no output."""
    if shutil.which("mke2fs") is None:
        pytest.skip("mke2fs (e2fsprogs) not installed")
    marker = f"TRIAGE-MARKER-{uuid.uuid4()}"
    src = tmp_path / "src"
    src.mkdir()
    frames = []
    for i in range(FPS * 3):
        pic = Image.fromarray(scene(i, 4))
        ImageDraw.Draw(pic).text((4, 60), marker[:20], fill=(255, 255, 0))
        frames.append(np.asarray(pic))
    path = write_video(src / "clip.mp4", frames)
    with av.open(str(path)) as i, av.open(str(src / "tagged.mkv"), "w", format="matroska") as o:
        o.metadata["title"] = marker
        t = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(video=0):
            if p.dts is not None:
                p.stream = t
                o.mux(p)
    sets = tmp_path / "set"
    sets.mkdir()
    (sets / "clip.txt").write_text("".join(f"{n},{q},{h},{t:.3f}\n" for n, q, h, t in truth(path)))
    image = tmp_path / "v.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "8M"],
                   check=True, capture_output=True)
    out = tmp_path / "out"
    outcome = run_scan(ScanConfig(evidence=[str(image)], out=out, workers=1,
                                  vpdq_sets=[f"{sets}:1"]))
    render_all(out, ["csv", "html", "dfxml"])
    assert outcome.summary["totals"]["near_duplicates"] == 2  # both files, same frames
    raw = marker.encode()
    needles = [raw, marker.encode("utf-16-le"), raw.hex().encode(), base64.b64encode(raw)[:16]]
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(n in data for n in needles), f


REFERENCE = Path(__file__).parent / "data" / "vpdq"


@pytest.mark.parametrize("video,interval,expected", [
    ("shapes.mp4", 1.0, "shapes.mp4.vpdq.txt"),
    ("shapes.mp4", 0.5, "shapes.mp4.half-second.vpdq.txt"),
    ("shapes-25fps.mkv", 1.0, "shapes-25fps.mkv.vpdq.txt")])
def test_agrees_with_the_reference_vpdq(video, interval, expected):
    """Frame numbers, qualities, hashes and timestamps as ThreatExchange's vpdq wrote them for
    the same file (tests/data/vpdq/SOURCE.md): bit for bit."""
    frames, _, why = compute_vpdq((REFERENCE / video).read_bytes(), interval=interval)
    assert why is None
    lines = [f"{n},{q},{h},{t:.3f}" for n, q, h, t in frames]
    assert lines == (REFERENCE / expected).read_text().splitlines()


def test_hashset_info_and_import_of_vpdq_files(tmp_path):
    """``hashset info`` describes a vPDQ file or folder; ``import`` says where they go."""
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(REFERENCE / "shapes.mp4.vpdq.txt", folder / "one.txt")
    shutil.copy(REFERENCE / "shapes-25fps.mkv.vpdq.txt", folder / "two.txt")
    lines = sum(len((folder / n).read_text().splitlines()) for n in ("one.txt", "two.txt"))
    p = subprocess.run(["python3", "-m", "triage", "hashset", "info", str(folder), "--json"],
                       capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert (d["format"], d["videos"], d["frame_lines"]) == ("vpdq", 2, lines)
    expected = sum(len(usable([tuple(x if i != 1 else int(x) for i, x in enumerate(
        line.split(","))) for line in (folder / n).read_text().splitlines()]))
        for n in ("one.txt", "two.txt"))
    assert d["usable_frames"] == expected
    # compiled into a .tdb: the vPDQ section holds the same usable frames, counted by the test
    p = subprocess.run(["python3", "-m", "triage", "hashset", "import", f"{folder}:B",
                        "--out", str(tmp_path / "x.tdb")], capture_output=True, text=True,
                       env=env, check=False)
    assert p.returncode == 0, p.stderr
    assert f"vPDQ 2 videos ({expected} frames)" in p.stdout
    p = subprocess.run(["python3", "-m", "triage", "hashset", "info", str(tmp_path / "x.tdb"),
                        "--json"], capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["vpdq"] == {"videos": 2, "frames": expected, "categories": {"B": 2}}
    assert d["format_minor"] == 3 and d["sources"][0]["vpdq_lines"] == lines


def test_resume_keeps_one_side_line_per_recorded_video(scanned, tmp_path):
    """What --resume does to vpdq.jsonl: a line twice (hashed again) or without its record
    (killed between the two writes) is dropped; every recorded video keeps its frames."""
    from triage.perceptual.video import trim_side_file

    out, records, side = scanned
    run = tmp_path / "run"
    shutil.copytree(out, run)
    lines = (run / "vpdq.jsonl").read_bytes().splitlines(keepends=True)
    orphan = json.loads(lines[0])
    orphan["path"] = "/not-recorded.mp4"
    (run / "vpdq.jsonl").write_bytes(b"".join(lines) + lines[1] + json.dumps(orphan).encode()
                                     + b"\n" + b'{"torn')
    trim_side_file(run / "vpdq.jsonl", run / "files.jsonl")
    after = (run / "vpdq.jsonl").read_bytes().splitlines(keepends=True)
    assert after == lines
    hashed = [n for n, r in records.items() if r.get("vpdq_frames")]
    assert sorted(json.loads(x)["path"].rsplit("/", 1)[-1] for x in after) == sorted(hashed)


def test_the_best_video_stream_is_hashed_not_a_first_cover(videos, tmp_path):
    """A Matroska file whose first video stream is a one-frame picture (a cover) and whose
    second is the video: the video's frames are hashed, as the reference's
    av_find_best_stream does."""
    path = tmp_path / "two.mkv"
    with av.open(str(videos["orig"])) as src, av.open(str(path), "w", format="matroska") as o:
        cover = o.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        t = o.add_stream_from_template(src.streams.video[0])
        flat = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")
        for p in [*cover.encode(flat), *cover.encode()]:
            o.mux(p)
        for p in src.demux(video=0):
            if p.dts is not None:
                p.stream = t
                o.mux(p)
    frames, duration, why = compute_vpdq(path.read_bytes())
    assert why is None and duration == SECONDS
    assert frames == truth(videos["orig"])


def test_compiled_vpdq_set_matches_like_the_text_files(videos, scanned, tmp_path):
    """``hashset import DIR:A`` then ``--vpdq-set x.tdb`` / ``--hashset x.tdb --vpdq``: the
    frames are mapped from the index (no parse, no build) and the matches are those counted by
    the test over its own decode; a second set video (another category) is not confused."""
    from triage.hashsets import import_hashsets
    from triage.hashsets.vpdqsection import open_vpdq

    other = tmp_path / "other-set"
    other.mkdir()
    (other / "other-video.txt").write_text(
        "".join(f"{n},{q},{h},{t:.3f}\n" for n, q, h, t in truth(videos["other2"])))
    index = tmp_path / "v.tdb"
    header = import_hashsets([f"{videos['set']}:A", other], index, category="C")
    set_frames, other_frames = truth(videos["orig"]), truth(videos["other2"])
    assert header["vpdq"]["videos"] == 2
    assert header["vpdq"]["rows"] == len(usable(set_frames)) + len(usable(other_frames))
    mapped = open_vpdq(index)
    assert [mapped.videos[i] for i in range(2)] == [
        {"name": "original-video", "set": "v", "category": "A",
         "frames": len(usable(set_frames))},
        {"name": "other-video", "set": "v", "category": "C", "frames": len(usable(other_frames))}]
    ev = tmp_path / "ev"
    ev.mkdir()
    for key in ("trim", "reenc", "other"):
        shutil.copy(videos[key], ev / videos[key].name)
    for extra in ([], ["hashset"]):
        out = tmp_path / f"run{len(extra)}"
        config = (ScanConfig(evidence=[str(ev)], out=out, workers=1, hashsets=[str(index)],
                             vpdq=True) if extra else
                  ScanConfig(evidence=[str(ev)], out=out, workers=1, vpdq_sets=[str(index)]))
        outcome = run_scan(config)
        assert outcome.summary["complete"] is True
        assert [(s["format"], s["videos"]) for s in outcome.summary["vpdq_sets"]] == [("tdb", 2)]
        assert outcome.summary["vpdq_sets"][0]["verification"]["status"] == "verified"
        records = {r["path"].rsplit("/", 1)[-1]: r for r in
                   map(json.loads, (out / "files.jsonl").read_text().splitlines())}
        for name, key in (("trim.mp4", "trim"), ("reenc.mp4", "reenc")):
            q, t = shares(truth(videos[key]), set_frames)
            found = [m for m in records[name]["vpdq_matches"] if m["algorithm"] == "vpdq"]
            assert [(m["hashset"], m["video"], m["category"], m["query_pct"], m["target_pct"])
                    for m in found] == [("v", "original-video", "A", q, t)]
            text = [m for m in scanned[1][name]["vpdq_matches"] if m["algorithm"] == "vpdq"]
            assert [m["ranges"] for m in found] == [m["ranges"] for m in text]
        assert shares(truth(videos["other"]), other_frames)[0] < 80
        assert not records["other.mp4"]["vpdq_matches"]
    # the text set and the compiled one together: one match from each, the same shares
    out = tmp_path / "both"
    run_scan(ScanConfig(evidence=[str(ev)], out=out, workers=1,
                        vpdq_sets=[f"{videos['set']}:A", str(index)]))
    records = {r["path"].rsplit("/", 1)[-1]: r for r in
               map(json.loads, (out / "files.jsonl").read_text().splitlines())}
    q, t = shares(truth(videos["trim"]), set_frames)
    assert sorted((m["hashset"], m["query_pct"], m["target_pct"])
                  for m in records["trim.mp4"]["vpdq_matches"] if m["algorithm"] == "vpdq") == [
        ("set", q, t), ("v", q, t)]


def test_import_of_vpdq_edge_cases(tmp_path):
    """A video whose frames are all under quality 50 compiles to zero usable frames (and the
    data check passes); a malformed line is file:line, exit 2, one line; --lenient counts it."""
    from triage.hashsets import import_hashsets, tdb

    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    low = tmp_path / "low"
    low.mkdir()
    (low / "dark.txt").write_text(f"0,10,{'a' * 64},0.000\n1,49,{'b' * 64},1.000\n")
    header = import_hashsets([low], tmp_path / "low.tdb")
    assert (header["vpdq"]["videos"], header["vpdq"]["rows"]) == (1, 0)
    check = tdb.Verification(tmp_path / "low.tdb")
    assert check.wait(), check.problem
    bad = tmp_path / "bad.txt"
    bad.write_text(f"0,100,{'c' * 64},0.000\nnot a line\n")
    p = subprocess.run(["python3", "-m", "triage", "hashset", "import", f"{bad}:X", "--out",
                        str(tmp_path / "bad.tdb")], capture_output=True, text=True, env=env,
                       check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and f"{bad}:2:" in p.stderr
    header = import_hashsets([f"{bad}:X"], tmp_path / "bad.tdb", lenient=True)
    assert header["sources"][0]["skipped"] == 1 and header["vpdq"]["counts"] == {"X": 1}


def test_resume_with_a_compiled_vpdq_set(tmp_path):
    """--resume maps the same compiled set again (its spec in summary.json) and refuses a set
    that changed since (sha256 of its data sections)."""
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    ev = tmp_path / "ev"
    ev.mkdir()
    shutil.copy(REFERENCE / "shapes.mp4", ev / "shapes.mp4")
    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(REFERENCE / "shapes.mp4.vpdq.txt", folder / "shapes.txt")
    index = tmp_path / "v.tdb"

    def triage(*args):
        return subprocess.run(["python3", "-m", "triage", *map(str, args)], capture_output=True,
                              text=True, env=env, check=False)

    assert triage("hashset", "import", f"{folder}:A", "--out", index).returncode == 0
    out = tmp_path / "run"
    p = triage("scan", ev, "--vpdq-set", index, "--out", out, "--workers", 1, "--quiet")
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "summary.json").read_text())
    summary["complete"] = False
    (out / "summary.json").write_text(json.dumps(summary))
    p = triage("scan", "--resume", out, "--quiet")
    assert p.returncode == 0, p.stderr
    again = json.loads((out / "summary.json").read_text())
    assert [(s["format"], s["spec"], s["sha256"]) for s in again["vpdq_sets"]] == [
        ("tdb", str(index), summary["vpdq_sets"][0]["sha256"])]
    match = [m for r in map(json.loads, (out / "files.jsonl").read_text().splitlines())
             for m in r.get("vpdq_matches") or []]
    assert [(m["video"], m["category"], m["query_pct"]) for m in match] == [("shapes", "A", 100.0)]
    again["complete"] = False
    (out / "summary.json").write_text(json.dumps(again))
    # the same frames under another category (same data sections), then other frames
    assert triage("hashset", "import", f"{folder}:B", "--out", index, "--force").returncode == 0
    p = triage("scan", "--resume", out, "--quiet")
    assert p.returncode == 2 and "vPDQ sets differ" in p.stderr and "Traceback" not in p.stderr
    shutil.copy(REFERENCE / "shapes-25fps.mkv.vpdq.txt", folder / "shapes.txt")
    assert triage("hashset", "import", f"{folder}:A", "--out", index, "--force").returncode == 0
    p = triage("scan", "--resume", out, "--quiet")
    assert p.returncode == 2 and "vPDQ sets differ" in p.stderr and "Traceback" not in p.stderr
