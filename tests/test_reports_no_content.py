"""No content leaves: an image whose files carry unique markers is scanned and every report
rendered; no output file may contain a marker in any common encoding. Also with ``--pdq``,
where pictures are decoded and near-duplicates get their own report section."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image

from triage.reports import FORMATS, render_all
from triage.run.scan import ScanConfig, run_scan


def encodings(marker: str) -> list[bytes]:
    raw = marker.encode()
    return [raw, marker.encode("utf-16-le"), marker.encode("utf-16-be"), raw.hex().encode(),
            raw.hex().upper().encode(), base64.b64encode(raw)[:16]]


@pytest.fixture()
def marked_image(tmp_path: Path) -> tuple[Path, list[str], Path]:
    if shutil.which("mke2fs") is None:
        pytest.skip("mke2fs (e2fsprogs) not installed")
    src = tmp_path / "src"
    (src / "deep" / "er").mkdir(parents=True)
    markers: list[str] = []
    contents: dict[str, bytes] = {}
    for i, (name, pad) in enumerate([("tiny.txt", 0), ("page.html", 3000),
                                     ("deep/photo.jpg", 70_000), ("deep/er/doc.bin", 300_000),
                                     ("note.txt", 10)]):
        marker = f"TRIAGE-MARKER-{uuid.uuid4()}"
        markers.append(marker)
        body = b"\xff\xd8" + b"x" * pad + marker.encode() + b"\n" + marker.encode("utf-16-le")
        (src / name).write_bytes(body)
        contents[name] = body
    for name in ("real.png", "deep/real.jpg"):  # pictures PDQ decodes, a marker in metadata
        marker = f"TRIAGE-MARKER-{uuid.uuid4()}"
        markers.append(marker)
        body = _picture(name, marker)
        (src / name).write_bytes(body)
        contents[name] = body
    hashset = tmp_path / "bad.md5"
    hashset.write_text("".join(f"{hashlib.md5(contents[n]).hexdigest()}  {n}\n"
                               for n in ("tiny.txt", "deep/photo.jpg", "deep/er/doc.bin")))
    image = tmp_path / "marked.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "8M"],
                   check=True, capture_output=True)
    return image, markers, hashset


def _picture(name: str, marker: str) -> bytes:
    """A drawn picture (benign gradient and shapes) carrying ``marker`` in its metadata."""
    from PIL import Image, ImageDraw, PngImagePlugin

    img = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.rectangle((40, 30, 150, 120), fill=(200, 40, 40))
    draw.ellipse((170, 90, 300, 220), fill=(30, 160, 90))
    out = io.BytesIO()
    if name.endswith(".png"):
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", marker)
        img.save(out, "PNG", pnginfo=info)
    else:
        img.save(out, "JPEG", quality=90, comment=marker.encode())
    return out.getvalue()


def _pdq_set(image_dir: Path, tmp_path: Path) -> Path:
    """A PDQ set holding the reference hash of real.png, so a near-duplicate is reported."""
    with Image.open(image_dir / "real.png") as img:
        bits, _ = pdqhash.compute(np.asarray(img.convert("RGB")))
    path = tmp_path / "pdq.csv"
    value = int("".join(str(int(b)) for b in bits), 2)
    path.write_text(f"pdq,category\n{value:064x},1\n")
    return path


@pytest.mark.parametrize("with_pdq", [False, True], ids=["plain", "pdq"])
def test_no_marker_in_any_output(marked_image, tmp_path: Path, with_pdq: bool) -> None:
    image, markers, hashset = marked_image
    evidence = image.read_bytes()
    assert all(m.encode() in evidence for m in markers)  # the content is there to leak
    out = tmp_path / "run"
    pdq_sets = [str(_pdq_set(tmp_path / "src", tmp_path))] if with_pdq else []
    outcome = run_scan(ScanConfig(evidence=[str(image)], hashsets=[str(hashset)], out=out,
                                  workers=2, case="marker case", pdq=with_pdq,
                                  pdq_sets=pdq_sets))
    assert outcome.summary["totals"]["known_bad_files"] == 3  # the scan really read them
    if with_pdq:  # the pictures were decoded and one near-matched
        assert outcome.summary["totals"]["near_duplicates"] == 2  # same drawing, PNG + JPEG
        page = (out / "report.html").read_text(encoding="utf-8")
        assert "Near-duplicates (PDQ) &mdash; needs review" in page
        assert "<img" not in page.lower() and "data:" not in page
    written = render_all(out)
    assert {p.name for p in written} == {"hits.csv", "report.html", "files.dfxml"}
    assert len(written) == len(FORMATS)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"files.jsonl", "summary.json"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        for marker in markers:
            for needle in encodings(marker):
                assert needle not in data, f"{marker} found in {path.name}"
    assert "tiny.txt" in (out / "report.html").read_text(encoding="utf-8")  # names are shown
