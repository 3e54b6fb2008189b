"""Lab scale (issue 18): a real redis-server and real ``triage lab worker`` processes.

Redis is started here, on a free localhost port in a temporary folder, with its append-only
file on (``appendfsync always``), and stopped at the end; the workers are ``python -m triage
lab worker`` subprocesses. Nothing is mocked: what the lab produces is compared with plain
``triage scan`` runs of the same evidence, and the planted file's link with hashlib over the
bytes written. redis-server is a hard requirement (``.ci/run`` installs it): its absence fails
these tests, never skips them.

Timings are shortened through the lab's environment knobs (visibility timeout 6 s, lease 3 s,
restore sweep every second), so a killed worker's exhibit comes back within seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "testimages"
SETS = IMAGES / "hashsets"
HASHSETS = ["--hashset", str(SETS / "caid.csv"), "--hashset", str(SETS / "projectvic.json"),
            "--known-good", str(SETS / "known-good.md5")]
LAB_ENV = {"TRIAGE_LAB_VISIBILITY_TIMEOUT": "6", "TRIAGE_LAB_LEASE": "3",
           "TRIAGE_LAB_RESTORE_INTERVAL": "1"}
SHARED = b"the same benign file on two devices\n" * 300  # planted on two images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A redis-server of our own: append-only persistence, restartable on the same port."""

    def __init__(self, folder: Path) -> None:
        self.binary = shutil.which("redis-server")
        assert self.binary, "redis-server is required (apt-get install redis-server; .ci/run does)"
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--protected-mode", "no"],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis syncs its append-only file and exits
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    server = Redis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class Workers:
    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder, self.procs = url, folder, []

    def start(self, name: str, **env: str) -> subprocess.Popen:
        log = open(self.folder / f"worker-{name}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "triage", "lab", "worker", "--broker", self.url,
             "--scan-workers", "2"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **LAB_ENV, **env})
        proc.log = self.folder / f"worker-{name}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker and everything it started (the machine goes off)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)


@pytest.fixture
def workers(redis_server: Redis, tmp_path: Path):
    w = Workers(redis_server.url, tmp_path)
    yield w
    w.stop_all()


def triage(*args: str, env: dict[str, str] | None = None, timeout: float = 120
           ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triage", *args], capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), **LAB_ENV, **(env or {})})


def fat_image(path: Path, files: dict[str, bytes]) -> Path:
    """A FAT16 image built by mkfs.fat and mcopy (no triage code involved)."""
    subprocess.run(["mkfs.fat", "-C", "-F", "16", str(path), "16384"], check=True,
                   capture_output=True)
    src = path.parent / f"{path.stem}-src"
    for name, data in files.items():
        local = src / name.strip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        parts = name.strip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):  # each ancestor (an existing one is refused)
            subprocess.run(["mmd", "-D", "s", "-i", str(path), "::" + "/".join(parts[:depth])],
                           capture_output=True)
        subprocess.run(["mcopy", "-i", str(path), str(local), f"::{name.strip('/')}"],
                       check=True, capture_output=True)
    return path


def records(run: Path) -> list[str]:
    """files.jsonl as canonical JSON lines, sorted (order aside, identical runs are equal)."""
    lines = (run / "files.jsonl").read_text(encoding="utf-8").splitlines()
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def lab_status(case: Path, url: str) -> dict:
    done = triage("lab", "status", str(case), "--broker", url, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def finished(case: Path, url: str) -> dict | None:
    s = lab_status(case, url)
    return s if s["finished"] else None


def test_lab_end_to_end_restart_links_and_missing_evidence(redis_server: Redis, workers: Workers,
                                                           tmp_path: Path) -> None:
    """Several exhibits through a Redis restart and two workers: each exhibit's records,
    categories and exit code equal a plain triage scan's; the planted file links two exhibits;
    evidence gone from the workers' view fails that exhibit only, with the reason."""
    a = fat_image(tmp_path / "phone.img", {"DCIM/shared.jpg": SHARED, "notes.txt": b"phone\n"})
    b = fat_image(tmp_path / "laptop.img", {"Users/x/copy.jpg": SHARED, "todo.txt": b"laptop\n"})
    gone = tmp_path / "gone.img"
    shutil.copy(IMAGES / "fat.img", gone)
    evidence = [IMAGES / "fat.img", IMAGES / "ext4.img", IMAGES / "mbr.E01", IMAGES / "iso.iso",
                a, b]
    case = tmp_path / "case"
    sub = triage("lab", "submit", str(case), *map(str, evidence), str(gone), *HASHSETS,
                 "--case", "C-18", "--broker", redis_server.url, "--json")
    assert sub.returncode == 0, sub.stderr
    queued = json.loads(sub.stdout)
    names = [x["name"] for x in queued["exhibits"]]
    assert names == [p.name for p in evidence] + ["gone.img"]
    assert sorted(p.name for p in (case / "hashsets").iterdir()) == [
        "caid.tdb", "known-good.tdb", "projectvic.tdb"]  # compiled once, at submit
    gone.unlink()  # the workers will not find it
    assert {r["state"] for r in lab_status(case, redis_server.url)["exhibits"]} == {"queued"}

    redis_server.stop()  # restart Redis while everything is queued: nothing may be lost
    redis_server.start()
    assert {r["state"] for r in lab_status(case, redis_server.url)["exhibits"]} == {"queued"}

    workers.start("w1")
    workers.start("w2")
    plain = {}
    for p in evidence:  # the plain scans run while the lab works
        out = tmp_path / "plain" / p.name
        plain[p.name] = (out, subprocess.Popen(
            [sys.executable, "-m", "triage", "scan", str(p), *HASHSETS, "--out", str(out),
             "--quiet", "--workers", "1"], env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    status = wait_for(lambda: finished(case, redis_server.url), 75, "every exhibit")
    by_name = {r["name"]: r for r in status["exhibits"]}
    assert by_name["gone.img"]["state"] == "failed"
    assert "not found on" in by_name["gone.img"]["reason"]
    hosts = set()
    for p in evidence:
        out, proc = plain[p.name]
        code = proc.wait(120)
        row = by_name[p.name]
        assert row["state"] == "done", row
        mine = json.loads((case / p.name / "summary.json").read_text())
        theirs = json.loads((out / "summary.json").read_text())
        assert mine["complete"] and mine["exit_code"] == code == row["exit_code"], p.name
        assert mine["categories"] == theirs["categories"] == row["categories"], p.name
        assert records(case / p.name) == records(out), p.name
        hosts.add(json.loads((case / ".lab" / f"{p.name}.json").read_text())["attempts"][0]["pid"])
    assert len(hosts) == 2, "both workers took exhibits"

    view = triage("case", str(case))
    assert view.returncode == 0, view.stderr
    data = json.loads((case / "case.json").read_text())
    sha1 = hashlib.sha1(SHARED).hexdigest()
    link = [x for x in data["links"] if x["sha1"] == sha1]
    assert len(link) == 1
    assert {w["exhibit"] for w in link[0]["exhibits"]} == {"phone.img", "laptop.img"}
    assert {p["path"] for w in link[0]["exhibits"] for p in w["paths"]} == {
        "/DCIM/shared.jpg", "/Users/x/copy.jpg"}
    assert link[0]["category"] == "unknown"
    x = {e["name"]: e for e in data["exhibits"]}
    assert x["gone.img"]["state"] == "failed" and "not found on" in x["gone.img"]["reason"]
    assert x["mbr.E01"]["known_bad_files"] == json.loads(
        (case / "mbr.E01" / "summary.json").read_text())["totals"]["known_bad_files"] > 0
    assert data["totals"]["exhibits"] == 7 and data["totals"]["done"] == 6
    assert data["totals"]["failed"] == 1
    page = (case / "case.html").read_text()
    assert "phone.img" in page and sha1 in page and "not found on" in page

    # CAID grows: a new set lists the shared file; re-matched through the queue, no evidence
    newset = tmp_path / "caid-new.csv"
    newset.write_text(f"MD5,SHA1,Category\n{hashlib.md5(SHARED).hexdigest()},{sha1},B\n")
    again = triage("rematch", str(case), "--hashset", str(newset), "--out",
                   str(tmp_path / "re"), "--broker", redis_server.url)
    assert again.returncode == 0, again.stderr
    assert triage("case", str(tmp_path / "re")).returncode == 0
    view = json.loads((tmp_path / "re" / "case.json").read_text())
    hits = {x["name"]: x["known_bad_files"] for x in view["exhibits"]}
    assert hits == {"phone.img": 1, "laptop.img": 1, **{p.name: 0 for p in evidence[:4]}}
    assert view["rematch_of"] == str(case)
    shared = [x for x in view["links"] if x["sha1"] == sha1]
    assert shared and shared[0]["category"] == "B"


def test_sigkill_mid_exhibit_resumed_by_the_other_worker(redis_server: Redis, workers: Workers,
                                                         tmp_path: Path) -> None:
    """The worker holding an exhibit is SIGKILLed (with its hashing processes) while one file
    hangs (the tests' fault seam): the other worker takes the exhibit over after the visibility
    timeout, resumes it from the journal, and the records equal an uninterrupted scan's with
    no line lost or duplicated; the case view says it was resumed."""
    files = {f"d{i}/f{j}.bin": bytes([i, j]) * (3000 + 100 * j) for i in range(4) for j in range(6)}
    files["zz/slow.bin"] = b"slow" * 5000
    image = fat_image(tmp_path / "slow.img", files)
    case = tmp_path / "case"
    first = workers.start("doomed", TRIAGE_FAULT_INJECT="hang:/zz/slow.bin")
    sub = triage("lab", "submit", str(case), str(image), *HASHSETS, "--broker", redis_server.url)
    assert sub.returncode == 0, sub.stderr
    lines = case / "slow.img" / "files.jsonl"
    wait_for(lambda: lines.is_file() and lines.read_bytes().count(b"\n") >= 6, 30,
             "the first records")
    row = lab_status(case, redis_server.url)["exhibits"][0]
    assert row["state"] == "running" and row["pid"] == first.pid
    other = workers.start("survivor")
    workers.kill(first)
    killed = time.monotonic()
    status = wait_for(lambda: finished(case, redis_server.url), 45, "the resumed exhibit")
    took = time.monotonic() - killed
    row = status["exhibits"][0]
    assert row["state"] == "done" and row["resumed"], row
    summary = json.loads((case / "slow.img" / "summary.json").read_text())
    assert summary["complete"] and len(summary["resumed"]) == 1
    attempts = json.loads((case / ".lab" / "slow.img.json").read_text())["attempts"]
    assert [a["pid"] for a in attempts] == [first.pid, other.pid]
    assert attempts[1]["resume"] is True

    plain = tmp_path / "plain"
    done = triage("scan", str(image), *HASHSETS, "--out", str(plain), "--quiet")
    assert done.returncode == summary["exit_code"]
    mine = (lines.read_text().splitlines())
    assert len(mine) == len(set(mine)), "a record was written twice"
    assert records(case / "slow.img") == records(plain)
    assert triage("case", str(case)).returncode == 0
    view = json.loads((case / "case.json").read_text())
    assert view["exhibits"][0]["resumed"] and view["totals"]["resumed"] == 1
    print(f"SIGKILL to completion: {took:.1f} s")


def test_bad_input(redis_server: Redis, workers: Workers, tmp_path: Path) -> None:
    """One clear line and exit 2; the worker says it retries an unreachable broker."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    case = tmp_path / "case"
    for args in (["lab", "submit", str(case), str(IMAGES / "fat.img"), *HASHSETS, "--broker",
                  closed], ["lab", "status", str(case), "--broker", closed]):
        if args[1] == "status":  # a real case folder, so only the broker is wrong
            ok = triage("lab", "submit", str(case), str(IMAGES / "fat.img"), *HASHSETS,
                        "--case", "C-1", "--broker", redis_server.url)
            assert ok.returncode == 0, ok.stderr
        done = triage(*args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "unreachable" in done.stderr and f"127.0.0.1:{closed.split(':')[2]}" in done.stderr
    refusals = {
        "holds another case": ["lab", "submit", str(case), str(IMAGES / "ext4.img"), *HASHSETS,
                               "--case", "C-2", "--broker", redis_server.url],
        "already has an exhibit named 'fat.img'": [
            "lab", "submit", str(case), str(IMAGES / "fat.img"), *HASHSETS, "--broker",
            redis_server.url],
        "given twice": ["lab", "submit", str(tmp_path / "c2"), str(IMAGES / "fat.img"),
                        str(tmp_path / "x" / "fat.img"), "--broker", redis_server.url],
        "no such file or device": ["lab", "submit", str(tmp_path / "c3"),
                                   str(tmp_path / "nothing.img"), "--broker", redis_server.url],
        "hash set": ["lab", "submit", str(tmp_path / "c4"), str(IMAGES / "fat.img"),
                     "--hashset", str(tmp_path / "none.csv"), "--broker", redis_server.url],
        "not a triage lab case": ["lab", "status", str(tmp_path), "--broker", redis_server.url],
    }
    (tmp_path / "x").mkdir()
    shutil.copy(IMAGES / "fat.img", tmp_path / "x" / "fat.img")
    for words, args in refusals.items():
        done = triage(*args)
        assert done.returncode == 2, (words, done.stderr)
        assert words in done.stderr and done.stderr.count("\n") == 1, (words, done.stderr)
    bad = tmp_path / "bad.md5"
    bad.write_text("not a hash at all\n")
    done = triage("lab", "submit", str(tmp_path / "c5"), str(IMAGES / "fat.img"), "--hashset",
                  str(bad), "--broker", redis_server.url)
    assert done.returncode == 2 and "bad.md5" in done.stderr and done.stderr.count("\n") == 1
    assert [p.name for p in (tmp_path / "c5").iterdir()] in ([], [".case.lock"])
    run = tmp_path / "run"
    assert triage("scan", str(IMAGES / "iso.iso"), "--out", str(run), "--quiet").returncode == 0
    done = triage("lab", "submit", str(run), str(IMAGES / "fat.img"), "--broker", redis_server.url)
    assert done.returncode == 2 and "a triage scan's output" in done.stderr
    assert not (tmp_path / "c2").exists() and not (tmp_path / "c3").exists()

    lonely = Workers(closed, tmp_path)
    proc = lonely.start("lonely")
    workers.procs.append(proc)  # stopped with the others
    wait_for(lambda: b"Trying again" in proc.log.read_bytes(), 30, "Celery's retry line")
    text = proc.log.read_text()
    assert "unreachable" in text and "retrying until it answers" in text
    assert proc.poll() is None, "the worker keeps trying"


def test_rematch_run_equals_a_scan_with_the_new_sets(tmp_path: Path) -> None:
    """A run scanned with no set, re-matched against sets, equals a scan with those sets:
    records, categories, census, exit code, hits.csv; outputs valid against the schemas."""
    import jsonschema

    from triage.reports.schema import file_schema, summary_schema

    bare, plain, again = tmp_path / "bare", tmp_path / "plain", tmp_path / "again"
    assert triage("scan", str(IMAGES / "mbr.E01"), "--out", str(bare), "--quiet").returncode == 4
    code = triage("scan", str(IMAGES / "mbr.E01"), *HASHSETS, "--out", str(plain),
                  "--quiet").returncode
    assert code == 1
    done = triage("rematch", str(bare), *HASHSETS, "--out", str(again), "--formats", "csv,html")
    assert done.returncode == 0, done.stderr
    assert records(again) == records(plain)
    new, old = (json.loads((d / "summary.json").read_text()) for d in (again, plain))
    for key in ("categories", "census", "exit_code", "complete"):
        assert new[key] == old[key], key
    assert new["totals"]["known_bad_files"] == old["totals"]["known_bad_files"] > 0
    assert sorted((again / "hits.csv").read_text().splitlines()) == sorted(
        (plain / "hits.csv").read_text().splitlines())
    jsonschema.validate(new, summary_schema())
    schema = file_schema(new["options"]["algorithms"])
    for line in (again / "files.jsonl").read_text().splitlines():
        jsonschema.validate(json.loads(line), schema)
    # the same through the general decoder (not the compact form) and from an incomplete run
    # (counts recomputed from every record instead of the old summary's plus the changes)
    for variant in ("spaced", "incomplete"):
        src = tmp_path / variant
        shutil.copytree(bare, src)
        if variant == "spaced":
            lines = (src / "files.jsonl").read_text().splitlines()
            (src / "files.jsonl").write_text("".join(json.dumps(json.loads(x)) + "\n"
                                                     for x in lines))
        else:
            s = json.loads((src / "summary.json").read_text())
            (src / "summary.json").write_text(json.dumps(dict(s, complete=False)))
        dest = tmp_path / f"{variant}-out"
        assert triage("rematch", str(src), *HASHSETS, "--out", str(dest)).returncode == 0
        assert records(dest) == records(plain), variant
        got = json.loads((dest / "summary.json").read_text())
        assert got["categories"] == old["categories"] and got["census"] == old["census"]
    provenance = json.loads((again / "rematch.json").read_text())
    assert provenance["rematch_of"] == str(bare) and provenance["records"] == len(records(bare))
    # the other way round: sets that match nothing any more give back the bare verdicts
    empty = tmp_path / "none.md5"
    empty.write_text("0" * 31 + "1  nothing\n")
    back = tmp_path / "back"
    assert triage("rematch", str(plain), "--hashset", str(empty), "--out", str(back)).returncode == 0
    assert json.loads((back / "summary.json").read_text())["exit_code"] == 4
    strip = [json.loads(x) for x in records(back)]
    assert all(r["matches"] == [] for r in strip)
    refused = triage("rematch", str(tmp_path), "--hashset", str(empty))
    assert refused.returncode == 2 and "not a triage run folder" in refused.stderr


def test_case_view_escapes_names_from_evidence_and_sets(tmp_path: Path) -> None:
    """case.html and case.json from output files only: hostile names (markup, a newline, a
    bidi override, bytes that are not UTF-8) and hostile category codes are shown escaped."""
    from triage.lab import case as cases
    from triage.lab.caseview import write_case

    folder = tmp_path / "case"
    folder.mkdir()
    the_case = cases.new_case(folder, "<b>C</b>", None, "triage")
    hostile = "/<script>alert(1)</script>\n\u202egpj.exe"
    code = "<img src=x>\u202e"
    sha1 = "ab" * 20
    for name in ("one", "two"):
        the_case.exhibits.append(cases.Exhibit(name, f"/ev/{name}.img", name, "now"))
        run = folder / name
        run.mkdir()
        record = {"evidence": f"/ev/{name}.img", "volume_offset": 0, "path": hostile,
                  "path_bytes": None, "size": 10, "md5": "cd" * 16, "sha1": sha1,
                  "category": code, "matches": [{"hashset": "s", "algorithm": "sha1",
                                                 "category": code}], "error": None}
        (run / "files.jsonl").write_text(json.dumps(record) + "\n")
        (run / "summary.json").write_text(json.dumps({
            "complete": True, "exit_code": 1, "host": "h", "resumed": [],
            "totals": {"files": 1, "bytes_hashed": 10, "known_bad_files": 1, "errors": 0},
            "categories": {code: 1}, "evidence": [{"path": f"/ev/{name}.img", "volumes": [
                {"offset": 0, "status": "encrypted", "description": "<i>x</i>"}]}]}))
    cases.save(the_case)
    written, view = write_case(folder)
    page = (folder / "case.html").read_text()
    assert "<script>" not in page and "<img src=x>" not in page and "\u202e" not in page
    assert "&lt;script&gt;" in page and "\\u202e" in page and "\\n" in page
    assert "<i>x</i>" not in page and "&lt;i&gt;x&lt;/i&gt;" in page
    data = json.loads((folder / "case.json").read_text())
    assert data["links"][0]["sha1"] == sha1 and data["links"][0]["category"] == code
    assert data["links"][0]["exhibits"][0]["paths"][0]["path"] == hostile  # exact in JSON
    assert data["totals"]["known_bad_files"] == 2 and data["totals"]["linked_known_bad"] == 1
    assert any("encrypted" in w for w in data["exhibits"][0]["not_examined"])
