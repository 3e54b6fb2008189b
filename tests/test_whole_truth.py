"""What the examiner is told must be the whole truth (issue 15): the terminal and summary.json
say what was not done — an option --resume would ignore, an early stop, a scan that could
match nothing, more workers than cores — and name things in words, not bare codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TESTIMAGES

from triage.errors import ExitCode

SETS = TESTIMAGES / "hashsets"


def triage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def interrupted_run(tmp_path: Path) -> Path:
    """A run stopped by SIGINT while a worker hangs on one file: complete=false."""
    out = tmp_path / "run"
    env = dict(os.environ, TRIAGE_FAULT_INJECT="hang:/docs/notes.txt")
    proc = subprocess.Popen([sys.executable, "-m", "triage", "scan", str(TESTIMAGES / "ext4.img"),
                             "--hashset", str(SETS / "caid.csv"), "--out", str(out), "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if (out / "files.jsonl").exists() and (out / "files.jsonl").stat().st_size:
            break
    time.sleep(0.5)
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert f"triage scan --resume {out}" in err
    return out


def test_resume_refuses_other_options_and_records_what_ran(tmp_path: Path) -> None:
    out = interrupted_run(tmp_path)
    before = (out / "summary.json").read_text()
    proc = triage("scan", "--resume", str(out), "--hashset", str(SETS / "projectvic.json"),
                  "--order", "smallest", str(TESTIMAGES / "ext4.img"))
    assert proc.returncode == ExitCode.USAGE
    line = proc.stderr.strip()
    assert line.startswith("triage: error:") and "\n" not in line
    assert "--hashset" in line and "--order" in line and "EVIDENCE" in line
    assert (out / "summary.json").read_text() == before  # refused before touching anything

    proc = triage("scan", "--resume", str(out), "--workers", "1", "--json")
    assert proc.returncode == ExitCode.HITS, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True
    # what started the run, then exactly what continued it; the options that ran are recorded
    assert summary["command"][1:5] == ["scan", str(TESTIMAGES / "ext4.img"), "--hashset",
                                       str(SETS / "caid.csv")]
    assert [c[1:] for c in summary["resume_commands"]] == [
        ["scan", "--resume", str(out), "--workers", "1", "--json"]]
    assert summary["options"]["workers"] == 1
    assert [h["path"] for h in summary["hashsets"]] == [str(SETS / "caid.csv")]
    assert "records kept" in proc.stderr


def test_stop_on_first_hit_says_so_and_never_calls_a_partial_volume_scanned(tmp_path: Path) -> None:
    out = tmp_path / "o"
    proc = triage("scan", str(TESTIMAGES / "mbr.E01"), "--hashset", str(SETS / "caid.csv"),
                  "--out", str(out), "--stop-on-first-hit", "--workers", "1")
    assert proc.returncode == ExitCode.HITS, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] is True and summary["complete"] is False
    vols = [v for ev in summary["evidence"] for v in ev["volumes"]]
    stopped = [v for v in vols if v["status"] == "stopped"]
    assert stopped, vols
    # truth from the full run: a volume the stopped run calls "scanned" has all its files
    full = tmp_path / "full"
    assert triage("scan", str(TESTIMAGES / "mbr.E01"), "--hashset", str(SETS / "caid.csv"),
                  "--out", str(full), "-q").returncode == ExitCode.HITS
    whole = {v["offset"]: v["files"] for ev in json.loads((full / "summary.json").read_text())
             ["evidence"] for v in ev["volumes"]}
    for v in vols:
        if v["status"] == "scanned":
            assert v["files"] == whole[v["offset"]], v
    for v in stopped:
        assert any("--stop-on-first-hit" in n for n in v["notes"])
    text = " ".join(proc.stdout.split())
    assert "stopped early at the first known-bad file" in text
    for v in stopped:
        assert f"@ {v['offset']:,}" in text
    html = (out / "report.html").read_text()
    assert "stopped early at the first known-bad file" in html


def test_no_known_bad_set_warns_on_terminal_and_in_report(tmp_path: Path) -> None:
    out = tmp_path / "o"
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--known-good",
                  str(SETS / "known-good.md5"), "--out", str(out), "-q")
    assert proc.returncode == ExitCode.OK
    assert "warning: no known-bad hash set" in proc.stderr and "no file could match" in proc.stderr
    html = (out / "report.html").read_text()
    top = html[html.index('id="not-examined"'):html.index("</header>")]
    assert "No known-bad hash set</b> was used" in top and "no file could match" in top
    assert 'class="banner warn" id="verdict"' in html  # never green: nothing could match
    # with a known-bad set (that matches nothing here): no such warning, and a green banner
    clean = tmp_path / "clean.md5"
    clean.write_text("0123456789abcdef0123456789abcdef  nothing-here\n")
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--hashset", str(clean),
                  "--out", str(tmp_path / "p"), "-q")
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "no known-bad hash set" not in proc.stderr
    html = (tmp_path / "p" / "report.html").read_text()
    assert "No known-bad hash set" not in html and 'class="banner ok" id="verdict"' in html


def test_workers_above_cpu_count_warns(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--hashset", str(SETS / "caid.csv"),
                  "--out", str(tmp_path / "o"), "-q", "--workers", str(cpus + 1))
    assert proc.returncode == ExitCode.HITS
    assert f"--workers {cpus + 1} is more than the {cpus} CPU(s)" in proc.stderr
    proc = triage("scan", str(TESTIMAGES / "iso.iso"), "--hashset", str(SETS / "caid.csv"),
                  "--out", str(tmp_path / "p"), "-q", "--workers", str(cpus))
    assert "CPU" not in proc.stderr


def test_terminal_summary_labels_reasons_and_census_names(tmp_path: Path) -> None:
    proc = triage("scan", str(TESTIMAGES / "mbr.E01"), "--hashset", str(SETS / "caid.csv"),
                  "--hashset", str(SETS / "projectvic.json"), "--out", str(tmp_path / "o"),
                  env=dict(os.environ, COLUMNS="250"))  # one table row per line
    assert proc.returncode == ExitCode.HITS
    text = " ".join(proc.stdout.split())
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    from triage.reports.labels import Labels

    label = Labels(summary)
    for cat in summary["categories"]:
        assert f"{cat}: {' '.join(label(cat).split())}" in text  # label, not a bare code
    # the reason in words first, TSK's message after it
    words = text.index("no file system that triage can read was found")
    assert words < text.index("FS_Info_Con")
    # "none" is not both a row (kind) and a column (category) of the census table
    table = proc.stdout[proc.stdout.index("files by kind and category"):]
    assert "(no bytes: empty or not read)" in table and "│ none" not in table


def test_census_of_zero_files_is_not_squeezed(tmp_path: Path) -> None:
    image = tmp_path / "zero.img"
    image.write_bytes(b"\0" * (1 << 20))
    proc = triage("scan", str(image), "--hashset", str(SETS / "caid.csv"), "--out",
                  str(tmp_path / "o"))
    assert "files by kind and category: no files" in proc.stdout
    assert "files by\n" not in proc.stdout


def test_random_bytes_are_reported_as_encryption_or_wiping_exit_4(tmp_path: Path) -> None:
    """Decision (issue 15): random bytes may be a VeraCrypt container or a wiped disk; either
    way a volume was not examined, so exit 4 (as for any encrypted volume), never 3; the
    README's exit-code table says the same."""
    import random

    image = tmp_path / "random.img"
    image.write_bytes(random.Random(15).randbytes(8 << 20))
    out = tmp_path / "o"
    proc = triage("scan", str(image), "--hashset", str(SETS / "caid.csv"), "--out", str(out),
                  env=dict(os.environ, COLUMNS="250"))
    assert proc.returncode == ExitCode.INCOMPLETE, proc.stderr
    volume = json.loads((out / "summary.json").read_text())["evidence"][0]["volumes"][0]
    assert volume["status"] == "encrypted"
    assert "indistinguishable from encryption or wiping" in volume["error"]
    assert "indistinguishable from encryption or wiping" in proc.stdout
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row4 = next(line for line in readme.splitlines() if line.startswith("| 4 |"))
    row3 = next(line for line in readme.splitlines() if line.startswith("| 3 |"))
    assert "random bytes" in row4 and "random" not in row3


def test_same_stem_sets_get_unique_names_and_records_beside_digests(tmp_path: Path) -> None:
    """bad.md5 and bad.hashdeep would both be "bad": named by file name instead; "Entries"
    (digests) is shown beside the records read."""
    manifest = json.loads((TESTIMAGES / "manifest.json").read_text())
    files = [f for f in next(i for i in manifest["images"] if i["image"] == "ext4.img")
             ["volumes"][0]["files"] if f["content_expected"] and f["size"]]
    a, b = files[0], files[1]
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "bad.md5").write_text(f"{a['md5']}  a\n")
    (sets / "bad.hashdeep").write_text(  # the manifest's digests: hashlib over bytes written
        "%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n"
        f"{b['size']},{b['md5']},{b['sha256']},b\n")
    out = tmp_path / "o"
    proc = triage("scan", str(TESTIMAGES / "ext4.img"), "--hashset", str(sets / "bad.md5"),
                  "--hashset", str(sets / "bad.hashdeep"), "--out", str(out), "-q")
    assert proc.returncode == ExitCode.HITS, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [h["name"] for h in summary["hashsets"]] == ["bad.md5", "bad.hashdeep"]
    assert [(h["records"], h["entries"]) for h in summary["hashsets"]] == [(1, 1), (1, 2)]
    recs = {r["path"]: r for r in map(json.loads, (out / "files.jsonl").read_text().splitlines())}
    assert {m["hashset"] for m in recs[a["path"]]["matches"]} == {"bad.md5"}
    assert {m["hashset"] for m in recs[b["path"]]["matches"]} == {"bad.hashdeep"}
    html = (out / "report.html").read_text()
    assert "<th class=n>Records</th><th class=n>Digests</th>" in html


def test_hits_csv_sorted_by_severity_then_path(tmp_path: Path, monkeypatch) -> None:
    """Also across spilled sort runs (RUN_ROWS made tiny)."""
    import csv

    from triage.matching.categories import severity_key
    from triage.reports import hits_csv

    out = tmp_path / "o"
    proc = triage("scan", str(TESTIMAGES / "mbr.E01"), "--hashset", str(SETS / "caid.csv"),
                  "--hashset", str(SETS / "projectvic.json"), "--out", str(out), "-q")
    assert proc.returncode == ExitCode.HITS
    summary = json.loads((out / "summary.json").read_text())
    for run_rows in (100_000, 2):
        monkeypatch.setattr(hits_csv, "RUN_ROWS", run_rows)
        hits_csv.write(out, summary)
        with open(out / "hits.csv", encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == summary["totals"]["known_bad_files"] == 12
        keys = [(severity_key(r["category"]), r["path"]) for r in rows]
        assert keys == sorted(keys)
        assert [r["category"] for r in rows][:3] == ["A", "A", "A"]


def test_hashset_lookup_pdq(tmp_path: Path) -> None:
    """PDQ values looked up in a plain PDQ list and in a .tdb compiled from it: exact (0),
    near (3 bits), far (not found, exit 1); malformed (exit 2)."""
    import random

    rng = random.Random(15)
    values = [rng.randbytes(32).hex() for _ in range(50)]
    listing = tmp_path / "pdq.txt"
    listing.write_text("".join(v + "\n" for v in values))
    flipped = f"{int(values[7], 16) ^ 0b10101:064x}"  # 3 bits away
    far = f"{int(values[7], 16) ^ ((1 << 256) - 1):064x}"  # all 256 bits away
    tdb = tmp_path / "pdq.tdb"
    assert triage("hashset", "import", str(listing), "--format", "pdq", "--out",
                  str(tdb)).returncode == 0
    for source in (listing, tdb):
        proc = triage("hashset", "lookup", str(source), "--pdq", "--json", values[3], flipped,
                      far)
        assert proc.returncode == 0, proc.stderr
        got = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [g["found"] for g in got] == [True, True, False]
        assert got[0]["matches"][0]["distance"] == 0
        assert got[1]["matches"][0]["distance"] == 3
        proc = triage("hashset", "lookup", str(source), "--pdq", far)
        assert proc.returncode == 1 and "no PDQ hash within 31 bits" in proc.stdout
        proc = triage("hashset", "lookup", str(source), "--pdq", "--pdq-threshold", "2",
                      flipped)
        assert proc.returncode == 1
        proc = triage("hashset", "lookup", str(source), "--pdq", flipped)
        assert proc.returncode == 0 and "near (needs review)" in proc.stdout
        assert "at distance 3" in proc.stdout
    proc = triage("hashset", "lookup", str(tdb), "--pdq", "abc")
    assert proc.returncode == 2 and "not a PDQ hash" in proc.stderr


def test_help_shows_no_python_types() -> None:
    """--help of every command: words (PATH, N, SECONDS, DIR), never <list[str]>, <int>."""
    import re

    commands = [[], ["scan"], ["info"], ["report"], ["schema"], ["hashset"],
                ["hashset", "import"], ["hashset", "info"], ["hashset", "lookup"],
                ["hashset", "formats"]]
    for cmd in commands:
        proc = triage(*cmd, "--help")
        assert proc.returncode == 0, (cmd, proc.stderr)
        found = re.findall(r"<(?:list\[\w+\]|int|float|str|path|bool|text)>", proc.stdout)
        assert not found, (cmd, found)
    scan_help = triage("scan", "--help").stdout
    assert "--workers N" in scan_help and "--out DIR" in scan_help
    assert "--fs-timeout SECONDS" in scan_help and "--hashset PATH" in scan_help
