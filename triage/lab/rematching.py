"""Re-match without the evidence: a finished run's files.jsonl against new hash sets.

Every record already holds its digests, so learning which past exhibits hold newly listed
material needs no evidence: ``rematch_run`` reads files.jsonl in chunks (one msgspec call per
65,536 lines, only the fields matching needs), turns each algorithm's hex digests into one
numpy array (one ``unhexlify`` per chunk), looks the whole array up in each set's sorted table
(``DigestTable.find_many``, the engine of ``HashSet.lookup_many``) and builds the matches of
the few records that hit with triage's own matching rules (``triage.matching.exact``). A line whose
verdict does not change (no match before, none now) is copied byte for byte; others are
re-encoded with the scan's own line encoder.

The new run is written beside the old one (``RUN-rematch-<UTC time>``), with files.jsonl,
summary.json (the scan's summary with the new sets, categories, counts and exit code; its
``command`` is the rematch's) and the reports, plus ``rematch.json`` saying what it was derived
from. PDQ near matches are not re-computed (they need the pictures' PDQ hashes against PDQ
sets, a scan's work): the new run has exact matches only, and says so in rematch.json. On a lab
case every exhibit is re-matched (one task each through the queue, or here with ``local``) into
``CASE_DIR/rematch-<UTC time>/``, itself a case folder ``triage case`` reads.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from triage.matching.categories import UNKNOWN, is_known_bad
from triage.content.census import census_key, census_summary
from triage.config import ScanConfig
from triage.errors import ExitCode, UsageError
from triage.matching.exact import HashIndex, _match
from triage.run.outdir import claim, finish, sync_files
from triage.records import utc_now
from triage.run.report import write_json_atomic
from triage.reports import parse_formats
from triage.reports._run import load_summary
from triage.reports.words import EXAMINED
from triage.run.results import encode_line

WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}
DEFAULT_FORMATS = "csv,html"


class _Rec(msgspec.Struct):
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    xxh128: str | None = None
    size: int | None = None
    deleted: bool = False
    kind: str | None = None
    category: str | None = None
    matches: list[msgspec.Raw] = []
    error: str | None = None


_decode = msgspec.json.Decoder(list[_Rec]).decode
_decode_line = msgspec.json.Decoder().decode
BLOCK = 32 << 20  # bytes of files.jsonl handled at once: bounded memory


def _blocks(files: Path, start: int = 0, stop: int | None = None):
    """Bytes ``start:stop`` of files.jsonl (both at line starts) in blocks of whole lines."""
    with open(files, "rb") as fh:
        fh.seek(start)
        left = (os.fstat(fh.fileno()).st_size if stop is None else stop) - start
        while left > 0:
            data = fh.read(min(BLOCK, left))
            if not data:
                return
            cut = data.rfind(b"\n") + 1 if len(data) < left else len(data)
            if cut == 0:  # one line longer than a block: read on to its end
                cut = len(data)
            elif cut < len(data):
                fh.seek(cut - len(data), 1)
                data = data[:cut]
            left -= len(data)
            yield data if data.endswith(b"\n") else data + b"\n"


def _ranges(files: Path, parts: int) -> list[tuple[int, int]]:
    """``parts`` byte ranges of about equal size, each starting at a line start."""
    size = files.stat().st_size
    cuts = [0]
    with open(files, "rb") as fh:
        for i in range(1, parts):
            fh.seek(max(size * i // parts, cuts[-1]))
            fh.readline()
            cuts.append(min(fh.tell(), size))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def _lines(block: bytes) -> tuple[list[_Rec], np.ndarray, np.ndarray]:
    """The records of a block (one msgspec call: the newlines become the commas of a JSON array,
    in one copy) and each line's start and end offsets. Blank lines (never written by a scan)
    are tolerated."""
    if b"\n\n" in block or block.startswith(b"\n"):
        block = b"".join(line + b"\n" for line in block.split(b"\n") if line.strip())
    buf = bytearray(len(block) + 1)
    buf[0] = 0x5B  # [
    buf[1:] = block
    a = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(a == 10)
    a[newlines] = 0x2C  # ,
    buf[-1] = 0x5D  # the last newline closes the array: ]
    ends = newlines - 1  # offsets in block
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    recs = _decode(buf)
    del a
    return recs, starts, ends


def _digest_array(hexes: list[str | None], width: int) -> tuple[np.ndarray, np.ndarray]:
    """(S{width} array, mask of rows that have a well-formed digest)."""
    n = len(hexes)
    if None not in hexes:
        joined = "".join(hexes)  # type: ignore[arg-type]
        if len(joined) == n * 2 * width:
            try:
                return (np.frombuffer(binascii.unhexlify(joined), dtype=f"S{width}"),
                        np.ones(n, dtype=bool))
            except (binascii.Error, ValueError):
                pass
    ok = np.zeros(n, dtype=bool)
    fixed = []
    for i, h in enumerate(hexes):
        try:
            if h is not None and len(h) == 2 * width:
                fixed.append(binascii.unhexlify(h))
                ok[i] = True
                continue
        except (binascii.Error, ValueError):
            pass
        fixed.append(bytes(width))
    return np.frombuffer(b"".join(fixed), dtype=f"S{width}"), ok


def _hits(index: HashIndex, recs: list[_Rec]) -> dict[int, list[dict[str, Any]]]:
    """Row -> matches, for the rows of this chunk that match any set (HashIndex.match order);
    an empty file matches nothing (as in a scan)."""
    algs = {alg for s in index.sets for alg in s.algorithms if alg in WIDTH}
    arrays = {alg: _digest_array([getattr(r, alg) for r in recs], WIDTH[alg]) for alg in algs}
    sized = np.fromiter((bool(r.size) for r in recs), dtype=bool, count=len(recs))
    return _lookup(index, arrays, len(recs), sized)


def _load_sets(hashsets: list[str], known_good: list[str]) -> list[Any]:
    from triage.run.scan import load_sets

    for p in [*hashsets, *known_good]:
        if not os.path.isfile(p):
            raise UsageError(f"hash set {p}: no such file")
    if not hashsets and not known_good:
        raise UsageError("give the new hash sets: --hashset (and/or --known-good)")
    return load_sets(ScanConfig(evidence=[], hashsets=list(hashsets),
                                known_good=list(known_good)), verify=True)


def _default_out(run: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return run.parent / f"{run.name}-rematch-{stamp}"


def _exit_code(old: dict[str, Any], hits: int, errors_allocated: int) -> ExitCode:
    """The scan's rule (hits 1; unopenable 3; anything not examined 4; else 0) from what the
    run recorded; 2, 5 and 130 of the scan stay (the records are what they were)."""
    if hits:
        return ExitCode.HITS
    code = int(old.get("exit_code", 0))
    if code not in (0, 1, 3, 4):
        return ExitCode(code)
    evidence = old.get("evidence") or []
    if any(e.get("error") for e in evidence):
        return ExitCode.EVIDENCE
    volumes = [v for e in evidence for v in e.get("volumes") or []]
    unverified = any((e.get("verification") or {}).get("status") == "mismatch" for e in evidence)
    if (errors_allocated or (old.get("totals") or {}).get("internal_errors") or unverified
            or any(v.get("status") not in EXAMINED for v in volumes) or code == 4):
        return ExitCode.INCOMPLETE
    return ExitCode.OK


_STATE: dict[str, Any] = {}


def _init(sets: list[Any]) -> None:
    _STATE["index"] = HashIndex(sets)


# The scan writes compact JSON with a fixed key order, and a quote inside a string value is
# always escaped, so ``"md5":`` can only be that key: the digests of a block are found by one
# regular-expression pass per algorithm instead of decoding every record. Every line must give
# exactly one value per pattern (else the block is decoded the general way).
_DIGEST = {alg: re.compile(rb'"%s":(?:"([0-9a-fA-F]{%d})"|null)' % (alg.encode(), 2 * w))
           for alg, w in WIDTH.items()}
_MATCHES = re.compile(rb'"matches":\[(\{)?')


def _hashed(data: Any) -> bool:
    get = data.get if isinstance(data, dict) else (lambda k: getattr(data, k, None))
    return any(get(a) is not None for a in ("md5", "sha1", "sha256", "xxh128"))


def _fast_rows(block: bytes, n: int, algs: set[str]) -> tuple[dict[str, Any], np.ndarray] | None:
    """Per algorithm the digests of every line, and the offsets of lines whose old matches are
    not empty; None when the block is not the scan's compact form."""
    arrays = {}
    for alg in algs:
        vals = _DIGEST[alg].findall(block)
        if len(vals) != n:
            return None
        width = WIDTH[alg]
        if b"" not in vals:
            try:
                arrays[alg] = (np.frombuffer(binascii.unhexlify(b"".join(vals)), dtype=f"S{width}"),
                               np.ones(n, dtype=bool))
                continue
            except (binascii.Error, ValueError):
                return None
        arrays[alg] = _digest_array([v.decode("ascii") if v else None for v in vals], width)
    opened = [m for m in _MATCHES.finditer(block)]
    if len(opened) != n:
        return None
    return arrays, np.array([m.start() for m in opened if m.group(1)], dtype=np.int64)


def _lookup(index: HashIndex, arrays: dict[str, Any], n: int,
            rows_wanted: np.ndarray | None = None) -> dict[int, list[dict[str, Any]]]:
    """Row -> exact matches (HashIndex.match order) among the ``n`` rows of ``arrays``
    (algorithm -> (digests, well-formed)); ``rows_wanted`` masks rows (None: sizes not yet
    checked, every row)."""
    wanted = np.ones(n, dtype=bool) if rows_wanted is None else rows_wanted
    found: dict[int, list[dict[str, Any]]] = {}
    for s in index.sets:
        for alg in s.algorithms:
            if alg not in arrays:
                continue
            digests, ok = arrays[alg]
            _, count = s.tables[alg].find_many(digests)
            rows = np.flatnonzero((count > 0) & ok & wanted).tolist()
            if not rows:
                continue
            cats = s.lookup_many(alg, [digests[i].tobytes().ljust(WIDTH[alg], b"\0")
                                       for i in rows])
            for row, categories in zip(rows, cats):
                if categories:
                    found.setdefault(row, []).append(_match(s, alg, list(categories), index.order))
    return found


def _rewrite(dst: Any, block: bytes, starts: np.ndarray, ends: np.ndarray,
             changes: dict[int, tuple[dict[str, Any], str | None, list[dict[str, Any]]]]) -> None:
    """The block with the changed lines re-encoded; every other byte as read."""
    view, at = memoryview(block), 0
    for row in sorted(changes):
        data, verdict, matches = changes[row]
        start, end = int(starts[row]), int(ends[row])
        dst.write(view[at:start])
        data["category"], data["matches"] = verdict, matches
        if "pdq_distance" in data:
            data["pdq_distance"] = None
        dst.write(encode_line(data))
        at = end + 1
    dst.write(view[at:])


def _match_part(files: str, start: int, stop: int, part: str, delta: bool = False
                ) -> tuple[Counter, Counter, int, int | None]:
    """One byte range of files.jsonl re-matched into ``part``: (categories, census by
    ``census_key``, records, allocated files with an error). With ``delta`` (the run's summary
    counts are complete) the counters are the changes against the old run, and lines are
    decoded only where they change; the error count is then None (not needed unless asked)."""
    index: HashIndex = _STATE["index"]
    categories: Counter[str] = Counter()
    census: Counter[str] = Counter()
    records = 0
    errors_allocated: int | None = None if delta else 0
    algs = {a for s in index.sets for a in s.algorithms if a in WIDTH}
    with open(part, "wb") as dst:
        for block in _blocks(Path(files), start, stop):
            fast = None
            if delta:
                ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
                fast = _fast_rows(block, len(ends), algs)
            if fast is not None:
                starts = np.empty_like(ends)
                starts[:1] = 0
                starts[1:] = ends[:-1] + 1
                arrays, old_matched = fast
                found = _lookup(index, arrays, len(ends))
                rows = set(found) | set(np.searchsorted(ends, old_matched).tolist())
                records += len(ends)
                changes = {}
                for row in rows:
                    data = _decode_line(block[int(starts[row]):int(ends[row])])
                    matches = found.get(row, []) if data.get("size") else []
                    hashed = _hashed(data)
                    verdict = index._verdict(matches) if hashed else None
                    old = data.get("category")
                    if verdict == old and not matches and not data.get("matches"):
                        continue
                    changes[row] = (data, verdict, matches)
                    for cat, step in ((old, -1), (verdict, 1)):
                        if hashed and cat is not None:
                            categories[cat] += step
                        census[census_key(data.get("kind"), cat)] += step
                _rewrite(dst, block, starts, ends, changes)
                continue
            recs, starts, ends = _lines(block)
            records += len(recs)
            found = _hits(index, recs)
            hashed = [_hashed(r) for r in recs]
            verdicts: list[str | None] = [UNKNOWN if h else None for h in hashed]
            for row, matches in found.items():
                verdicts[row] = index._verdict(matches)
            changed = sorted(set(found) | {
                i for i, (r, c) in enumerate(zip(recs, verdicts))
                if r.matches or r.category != c})
            if delta:
                for row in changed:
                    r, new = recs[row], verdicts[row]
                    for cat, step in ((r.category, -1), (new, 1)):
                        if hashed[row] and cat is not None:
                            categories[cat] += step
                        census[census_key(r.kind, cat)] += step
            else:
                categories.update(c for c in verdicts if c is not None)
                census.update(census_key(r.kind, c) for r, c in zip(recs, verdicts))
                errors_allocated += sum(  # type: ignore[operator]
                    1 for r, h in zip(recs, hashed) if not h and r.error and not r.deleted
                    and not r.error.startswith(("no metadata", "skipped:")))
            _rewrite(dst, block, starts, ends, {
                row: (_decode_line(block[int(starts[row]):int(ends[row])]), verdicts[row],
                      found.get(row, [])) for row in changed})
    return categories, census, records, errors_allocated


def _errors_allocated(files: Path) -> int:
    """Allocated files whose content could not be read (the scan's exit-4 rule)."""
    n = 0
    for block in _blocks(files):
        recs, _, _ = _lines(block)
        n += sum(1 for r in recs if not _hashed(r) and r.error and not r.deleted
                 and not r.error.startswith(("no metadata", "skipped:")))
    return n


PARALLEL_FROM = 64 << 20  # files.jsonl size from which the ranges go to several processes


def _match_file(files: Path, dest: Path, sets: list[Any], delta: bool = False
                ) -> tuple[Counter, Counter, int, int | None]:
    """files.jsonl -> dest, in parallel processes for a large file (parts joined in order)."""
    size = files.stat().st_size
    workers = min(os.cpu_count() or 1, 8)
    totals: list[Any] = [Counter(), Counter(), 0, None if delta else 0]
    if size < PARALLEL_FROM or workers < 2:
        _init(sets)
        results = [_match_part(str(files), 0, size, str(dest), delta)]
        parts: list[Path] = []
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ranges = _ranges(files, workers * 2)
        parts = [dest.with_name(f".{dest.name}.part{i}") for i in range(len(ranges))]
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init,
                                 initargs=(sets,)) as pool:
            results = list(pool.map(_match_part, [str(files)] * len(ranges),
                                    [a for a, _ in ranges], [b for _, b in ranges],
                                    [str(p) for p in parts], [delta] * len(ranges)))
    for cats, census, n, errs in results:
        totals[0].update(cats)
        totals[1].update(census)
        totals[2] += n
        if errs is not None:
            totals[3] += errs
    try:
        if parts:
            with open(dest, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        left = os.fstat(src.fileno()).st_size
                        while left > 0:
                            n = os.copy_file_range(src.fileno(), out.fileno(), left)
                            if n <= 0:
                                raise OSError(f"{part}: copy stopped with {left} bytes left")
                            left -= n
        sync_files([dest])  # the file and its folder, as a scan's outputs (OutputError)
    except OSError as e:
        from triage.run.report import OutputError

        raise OutputError(f"{dest}: cannot write ({e})") from None
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return totals[0], totals[1], totals[2], totals[3]


def _old_counts(old: dict[str, Any]) -> tuple[Counter, Counter] | None:
    """The finished run's categories and census (key "kind/category"), when trustworthy."""
    census = (old.get("census") or {}).get("kinds")
    if not old.get("complete") or not isinstance(old.get("categories"), dict) \
            or not isinstance(census, dict):
        return None
    flat: Counter[str] = Counter()
    for kind, row in census.items():
        for category, n in (row or {}).items():
            flat[f"{kind}/{category}"] += int(n)
    return Counter({str(k): int(v) for k, v in old["categories"].items()}), flat


def _plus(base: Counter, delta: Counter) -> Counter:
    total = Counter(base)
    for key, n in delta.items():
        total[key] += n
    return Counter({k: v for k, v in total.items() if v})


def rematch_run(run_dir: str | os.PathLike[str], hashsets: list[str], known_good: list[str] = (),
                out: str | os.PathLike[str] | None = None, formats: str | None = DEFAULT_FORMATS,
                sets: list[Any] | None = None) -> dict[str, Any]:
    """Re-match one run into ``out`` (default beside it); returns counts and timing."""
    t0 = time.monotonic()
    run = Path(run_dir)
    old = load_summary(run)
    files = run / "files.jsonl"
    if not files.is_file():
        raise UsageError(f"{run}: no files.jsonl")
    names = parse_formats(formats)
    sets = sets if sets is not None else _load_sets(list(hashsets), list(known_good))
    target = Path(out) if out else _default_out(run)
    lock = claim(target, force=False)
    try:
        before = _old_counts(old)
        categories, census_counts, records, errors_allocated = _match_file(
            files, target / "files.jsonl", sets, delta=before is not None)
        if before is not None:
            if records != (old.get("totals") or {}).get("files"):  # summary and records differ
                categories, census_counts, records, errors_allocated = _match_file(
                    files, target / "files.jsonl", sets)
            else:  # the old run's counts plus what changed
                categories = _plus(before[0], categories)
                census_counts = _plus(before[1], census_counts)
        if errors_allocated is None:
            errors_allocated = (_errors_allocated(files)
                                if int(old.get("exit_code", 0)) == 1 else 0)
        hits = sum(n for c, n in categories.items() if is_known_bad(c))
        from triage.hashsets.tdb import failed_checks
        from triage.run.scan import set_summary

        bad = failed_checks(sets, wait=True)
        if bad:
            raise UsageError(f"{bad[0]}; nothing re-matched")
        code = _exit_code(old, hits, errors_allocated)
        totals = dict(old.get("totals") or {}, known_bad_files=hits, near_duplicates=0)
        summary = dict(
            old, complete=False, incomplete_reason="re-matching: reports not yet rendered",
            command=list(sys.argv), hashsets=[set_summary(s) for s in sets], pdq_sets=[],
            options=dict(old.get("options") or {}, pdq=False, formats=formats),
            totals=totals, categories=dict(sorted(categories.items())),
            census=census_summary(dict(census_counts)), first_hit_seconds=None,
            reports=[str(target / n) for n in (
                {"csv": "hits.csv", "html": "report.html", "dfxml": "files.dfxml"}[f]
                for f in names)],
            exit_code=int(code), invalid=[])
        provenance = {
            "rematch_of": str(run.absolute()),
            "source_summary_sha256": hashlib.sha256((run / "summary.json").read_bytes()).hexdigest(),
            "source_files_sha256": None, "rematched": utc_now(), "records": records,
            "previous_hashsets": [{k: h.get(k) for k in ("name", "path", "kind", "sha256")}
                                  for h in old.get("hashsets") or []],
            "pdq": "PDQ near matches are not re-computed by a re-match: exact matches only",
            "source_complete": bool(old.get("complete")),
        }
        write_json_atomic(target / "rematch.json", provenance)
        write_json_atomic(target / "summary.json", summary)
        if old.get("complete"):
            finish(target, summary, names)
        else:  # the records are those of an incomplete run: say so, render all the same
            from triage.reports import render_all

            summary["incomplete_reason"] = (f"re-match of an incomplete run ({run}): "
                                            f"{old.get('incomplete_reason')}")
            write_json_atomic(target / "summary.json", summary)
            render_all(target, names)
    finally:
        lock.release()
    return {"run": str(run), "out": str(target), "records": records, "known_bad_files": hits,
            "categories": dict(categories), "exit_code": int(code),
            "seconds": round(time.monotonic() - t0, 3)}


def rematch(target: str | os.PathLike[str], hashsets: list[str], known_good: list[str] = (),
            out: str | os.PathLike[str] | None = None, formats: str | None = DEFAULT_FORMATS,
            local: bool = False, broker: str | None = None, timeout: float | None = None
            ) -> dict[str, Any]:
    """A run folder: re-matched here. A lab case: each exhibit re-matched into
    ``CASE_DIR/rematch-<UTC time>/EXHIBIT`` (a case folder of its own), one task per exhibit
    through the queue, or here with ``local``."""
    from triage.lab import case as cases

    folder = Path(target)
    parse_formats(formats)
    if not cases.is_case(folder):
        return {"runs": [rematch_run(folder, hashsets, known_good, out=out, formats=formats)]}
    the_case = cases.load(folder)
    sets = _load_sets(list(hashsets), list(known_good))  # refuse bad sets before anything
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = Path(out) if out else folder / f"rematch-{stamp}"
    done = [ex for ex in the_case.exhibits if (folder / ex.name / "summary.json").is_file()]
    if not done:
        raise UsageError(f"{folder}: no exhibit has a finished run to re-match yet")
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"--out {dest}: folder exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    copy = cases.new_case(dest, the_case.case, the_case.examiner, the_case.queue)
    copy.rematch_of = str(the_case.path)
    copy.scan = dict(the_case.scan, hashsets=[os.path.abspath(p) for p in hashsets],
                     known_good=[os.path.abspath(p) for p in known_good], pdq=False, pdq_sets=[])
    copy.hashset_sources = [{"path": os.path.abspath(p), "kind": k, "name": s.name,
                             "sha256": s.sha256, "compiled": os.path.abspath(p)}
                            for (p, k), s in zip([(p, "known-bad") for p in hashsets]
                                                 + [(p, "known-good") for p in known_good], sets)]
    import uuid

    copy.exhibits = [cases.Exhibit(ex.name, ex.evidence, str(uuid.uuid4()), utc_now())
                     for ex in done]
    cases.save(copy)
    if local:
        runs = [rematch_run(folder / ex.name, hashsets, known_good, out=dest / ex.name,
                            formats=formats, sets=sets) for ex in done]
        return {"case": str(dest), "runs": runs}
    from celery.result import AsyncResult

    from triage.lab.app import configure, rematch_exhibit
    from triage.lab.client import ping

    app = configure(ping(broker))
    absolute = ([os.path.abspath(p) for p in hashsets], [os.path.abspath(p) for p in known_good])
    for ex, new in zip(done, copy.exhibits):
        rematch_exhibit.apply_async(
            args=[str(folder / ex.name), str(dest / ex.name), *absolute, formats],
            task_id=new.task_id, queue=the_case.queue)
    runs = []
    for new in copy.exhibits:
        result = AsyncResult(new.task_id, app=app).get(timeout=timeout, propagate=False)
        if not isinstance(result, dict) or result.get("status") != "done":
            why = result.get("reason") if isinstance(result, dict) else result
            raise UsageError(f"re-match of {new.name} failed on its worker: {why}")
        runs.append(result)
    return {"case": str(dest), "runs": runs}
