"""Every scan option survives ``--resume`` (issue 16, item 2's test).

The option list is not written here: it is every field of ``ScanConfig``, so an option added to
the configuration and forgotten in summary.json's ``options``/``resume_config`` fails this test
instead of silently disappearing on resume. Each field gets a value different from its default;
the run is recorded; ``resume_config`` must give back every one of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

from conftest import TESTIMAGES

from triage.cli import Environment, main
from triage.run.config import ScanConfig
from triage.run.scan import resume_config, run_scan

# Fields that describe this invocation, not the run: where it writes, whether it may replace a
# folder, that it is a resume, and the command line it was typed as.
NOT_OPTIONS = {"out", "force", "resume", "argv"}


def _blockset(tmp: Path) -> Path:
    ref = tmp / "ref"
    ref.mkdir()
    (ref / "r.bin").write_bytes(random.Random(5).randbytes(16384))
    out = tmp / "b.tbs"
    try:
        main(["blockset", "build", str(ref), "--out", str(out), "--category", "1"],
             Environment(interactive=False))
    except SystemExit as e:
        assert not e.code, e.code
    return out


def test_every_scan_option_survives_resume(tmp_path: Path) -> None:
    image = TESTIMAGES / "fat.img"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"md5,size\n{hashlib.md5(b'x').hexdigest()},1\n")
    good = tmp_path / "good.md5"
    good.write_text(f"{hashlib.md5(b'y').hexdigest()}  y\n")
    pdq = tmp_path / "p.txt"
    pdq.write_text(f"{random.Random(1).getrandbits(256) | 1 << 255:064x}\n")
    vpdq = tmp_path / "video.txt"  # a one-frame vPDQ hash file
    vpdq.write_text(f"0,100,{random.Random(2).getrandbits(256) | 1 << 255:064x},0.000\n")
    values = dict(
        evidence=[str(image)], hashsets=[str(bad)], known_good=[str(good)],
        algorithms=("md5", "sha256"), workers=1, lenient=True, include_orphans=False,
        max_orphans=7, verify_image=True, order="smallest", formats="csv",
        stop_on_first_hit=True, pdq=True, pdq_threshold=20, pdq_sets=[str(pdq)],
        size_filter=True, blockset=str(_blockset(tmp_path)), fs_timeout=99.0,
        read_timeout=77.0, file_timeout=55.0, case="C-1", examiner="E. X.", exhibit="X9",
        vpdq=True, vpdq_interval=2.0, vpdq_sets=[f"{vpdq}:X"], vpdq_query_pct=70.0,
        vpdq_target_pct=10.0,
    )
    defaults = ScanConfig(evidence=[])
    options = {f.name for f in dataclasses.fields(ScanConfig)} - NOT_OPTIONS
    assert set(values) == options, f"give the new option a value here: {options ^ set(values)}"
    for name, value in values.items():
        assert value != getattr(defaults, name), f"{name}: pick a value other than the default"
    out = tmp_path / "run"
    run_scan(ScanConfig(out=out, **values))
    back = resume_config(out)
    for name, value in values.items():
        got = getattr(back, name)
        if name in ("evidence", "hashsets", "known_good", "pdq_sets", "blockset"):
            got = [str(Path(p).resolve()) for p in got] if isinstance(got, list) else (
                str(Path(got).resolve()) if got else got)
            value = [str(Path(p).resolve()) for p in value] if isinstance(value, list) else (
                str(Path(value).resolve()))
        assert got == value, f"{name} lost on --resume: {value!r} -> {got!r}"
