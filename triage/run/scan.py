"""The scan pipeline: evidence -> volumes -> walk -> hashing -> matching -> reports.

``run_scan`` is the library API; the CLI is a thin layer over it. The main process opens the
evidence and its volumes, then schedules work on isolated worker processes: each directory
slice is listed, hashed, matched and encoded inside a worker, so the main process only writes
finished lines, journals what finished, and counts. Nothing is kept per file, so memory does
not grow with the number of files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytsk3

from triage.version import __version__
from triage.matching.categories import KNOWN_BAD, KNOWN_GOOD
from triage.config import ORDERS, ScanConfig, problem, recorded, restore
from triage.run.progress import ProgressSink
from triage.errors import ExitCode, HashSetError, TriageError, UsageError
from triage.evidence.containers import check_kind, display_name
from triage.hashsets.tdb import failed_checks
from triage.evidence.identity import difference
from triage.run.journal import JOURNAL, Journal, dir_key, replay, truncate
from triage.content.census import census_summary
from triage.matching.exact import HashIndex
from triage.perceptual.compute import PdqOptions
from triage.perceptual.sources import (check_pdq_only, compile_pdq, compile_vpdq,
                                       in_place_files, load_pdq_sources, load_vpdq_sources)
from triage.perceptual.video import VpdqOptions, trim_side_file
from triage.run.pool import WorkerPool
from triage.records import ALGORITHMS, SCHEMA_VERSION, record_path, utc_now
from triage.run.outdir import RENDERING, FolderLock, claim, finish, remove_leftovers
from triage.run.report import OutputError, write_json_atomic
from triage.run.results import Tally
from triage.reports import FORMAT_FILES, parse_formats, render_all
from triage.reports.words import NO_KNOWN_BAD
from triage.run.scheduler import Scan, StopEarly, Writer, schedule
from triage.run.tasks import TASKS, WorkerInit, WorkerState
from triage.filesystems.walk import WalkOptions

__all__ = ["ORDERS", "ProgressSink", "ScanConfig", "ScanOutcome", "resume_config", "run_scan"]


@dataclass
class ScanOutcome:
    out: Path
    summary: dict[str, Any]
    exit_code: ExitCode


def parse_algorithms(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    algs = [a.strip().lower().replace("-", "") for a in items if a.strip()]
    unknown = [a for a in algs if a not in ALGORITHMS]
    if unknown or not algs:
        raise UsageError(f"--algorithms: unknown algorithm {', '.join(unknown) or '(none)'}; "
                         f"choose from {','.join(ALGORITHMS)}")
    return tuple(a for a in ALGORITHMS if a in algs)


def default_out_dir(evidence: list[str]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path(f"triage-{display_name(evidence[0]) if evidence else 'scan'}-{stamp}")


def tool_versions() -> dict[str, str]:
    import pyewf

    from triage.evidence import ewf_native

    return {
        "name": "triage", "version": __version__,
        "pytsk3": pytsk3.get_version(), "tsk": pytsk3.TSK_VERSION_STR,
        "libewf": ewf_native.version() if ewf_native.available() else pyewf.get_version(),
        "python": platform.python_version(),
    }


def load_sets(config: ScanConfig, verify: Any = False):
    """``verify``: check each .tdb's data on a thread (``tdb.Verification``). With ``--pdq``
    a raw known-bad set's PDQ column is read in the same parse as its digests."""
    from triage.hashsets import load_hashset

    sets = [load_hashset(p, kind=KNOWN_BAD, lenient=config.lenient, verify=verify,
                         pdq=config.pdq or bool(config.pdq_sets))
            for p in config.hashsets]
    sets += [load_hashset(p, kind=KNOWN_GOOD, lenient=config.lenient, verify=verify)
             for p in config.known_good]
    unique_names(sets)
    return sets


def unique_names(sets: list[Any]) -> None:
    """Sets named alike (``bad.md5`` and ``bad.hashdeep`` are both "bad" by stem) could not be
    told apart in any match or report: such sets are named by file name, then numbered."""
    from collections import Counter

    counts = Counter(s.name for s in sets)
    for s in sets:
        if counts[s.name] > 1:
            s.name = Path(s.path).name
    counts = Counter(s.name for s in sets)
    seen: Counter[str] = Counter()
    for s in sets:
        if counts[s.name] > 1:
            seen[s.name] += 1
            s.name = f"{s.name} ({seen[s.name]})"


def _records(s: Any) -> int | None:
    """Records (lines, rows, JSON items) read from the set's sources; None when unknown."""
    counts = [src.get("records") for src in s.sources or [] if isinstance(src, dict)]
    return sum(counts) if counts and all(isinstance(n, int) for n in counts) else None


def set_summary(s: Any) -> dict[str, Any]:
    """A hash set as summary.json ``hashsets`` lists it (also a re-match's summary)."""
    return {"name": s.name, "path": s.path, "kind": s.kind, "format": s.format,
            "sha256": s.sha256, "entries": s.entries, "records": _records(s),
            "algorithms": s.algorithms,
            "skipped_lines": s.skipped, "dropped_empty": s.dropped_empty,
            "conflicts": s.conflicts, "sources": s.sources,
            "profile": s.profile.to_json() if s.profile is not None else None,
            "verification": s.verification.summary() if s.verification is not None else None}


def resume_config(out: Path, **overrides: Any) -> ScanConfig:
    """The configuration of an interrupted run, read from its summary.json (``config.restore``,
    the inverse of what ``run_scan`` records), so that ``triage scan --resume DIR`` needs
    nothing retyped."""
    try:
        previous = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        config = restore(
            previous, out=out, resume=True,
            evidence=[record_path(e) for e in previous["evidence_given"]],
            hashsets=[record_path(h) for h in previous["hashsets"] if h["kind"] == KNOWN_BAD],
            known_good=[record_path(h) for h in previous["hashsets"]
                        if h["kind"] == KNOWN_GOOD],
            pdq_sets=[record_path(h) for h in previous.get("pdq_sets", [])],
            vpdq_sets=[h["spec"] for h in previous.get("vpdq_sets", [])])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"--resume {out}: no readable summary.json of a triage run") from None
    return msgspec.structs.replace(config, **overrides)


def _resume_state(out: Path, done, scan: Scan) -> str:
    """What a resumed run starts from, in words: how much is kept, how much is left."""
    kept = Tally()
    for t in done.tallies.values():
        kept.add(t)
    files = len(scan.files) + (scan.spool.count if scan.spool is not None else 0)
    return (f"resuming {out}: {kept.files:,} records kept ({kept.bytes_hashed:,} bytes hashed); "
            f"left to do: {len(scan.dirs):,} directories to list and {files:,} files to hash "
            "(queued), plus what those directories hold")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _warn(config: ScanConfig, pdq_sets, progress: ProgressSink) -> None:
    """Said once the run has started (a usage error stays one line)."""
    cpus = _cpus()
    if config.workers > cpus:
        progress.warn(f"--workers {config.workers} is more than the {cpus} CPU(s) available: "
                      "the workers compete for cores and the scan gets no faster")
    if not config.hashsets and not pdq_sets and not config.vpdq_sets:
        progress.warn(NO_KNOWN_BAD)


def _check_size_filter(sets) -> None:
    bad = [s for s in sets if s.kind == KNOWN_BAD]
    if not bad:
        raise UsageError("--size-filter needs at least one --hashset (known-bad)")
    without = [s.name for s in bad if s.sizes is None]
    if without:
        raise UsageError(f"--size-filter: hash set {without[0]} does not declare a size for "
                         "every entry, so no file can be skipped safely")


def _render(out: Path, formats: list[str], failing: bool) -> None:
    """Reports, for partial runs too (marked as such). When the scan is already failing (disk
    full, say) a report error must not hide that first error."""
    try:
        render_all(out, formats)
    except (TriageError, OSError) as e:
        if not failing:
            raise OutputError(f"reports not written: {e}") from None


def _check_resume(out: Path, config: ScanConfig, sets, algorithms: tuple[str, ...],
                  pdq_sets=(), vpdq_sets=()) -> dict:
    try:
        previous = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"--resume {out}: no readable summary.json, not a triage run") from None
    if previous.get("complete"):
        raise UsageError(f"--resume {out}: that run is already complete")
    if previous.get("invalid"):  # its records were matched against an altered index
        raise UsageError(f"--resume {out}: that run is invalid ({previous['invalid'][0]}); "
                         "start a new scan")
    before = [record_path(e) for e in previous.get("evidence_given", [])]
    if before != list(config.evidence):
        raise UsageError(f"--resume {out}: evidence differs from the interrupted run ({before})")
    if [h["sha256"] for h in previous.get("hashsets", [])] != [s.sha256 for s in sets]:
        raise UsageError(f"--resume {out}: hash sets differ from the interrupted run")
    if [h["sha256"] for h in previous.get("pdq_sets", [])] != [s.sha256 for s in pdq_sets]:
        raise UsageError(f"--resume {out}: PDQ sets differ from the interrupted run")
    if ([(h["sha256"], h.get("category")) for h in previous.get("vpdq_sets", [])]
            != [(s.sha256, s.summary()["category"]) for s in vpdq_sets]):  # a category too
        raise UsageError(f"--resume {out}: vPDQ sets differ from the interrupted run")
    if previous.get("options", {}).get("algorithms") != list(algorithms):
        raise UsageError(f"--resume {out}: algorithms differ from the interrupted run")
    return previous


def _check_identity(out: Path, previous: dict, given: list[dict]) -> None:
    """Same path is not same evidence: compare what the interrupted run recorded of each item
    (size, sampled sectors, stored acquisition hash) with what is there now."""
    for before, now in zip(previous.get("evidence_given", []), given):
        if before.get("identity") is None:
            if replay(out).journal_end:  # records exist, but nothing to check them against
                raise UsageError(f"--resume {out}: the interrupted run recorded no identity of "
                                 f"{before['path']} (older triage?): scan again into a new folder")
            continue
        why = difference(before["identity"], now.get("identity") or {})
        if why:
            raise UsageError(f"--resume {out}: evidence {before['path']} is not the one the "
                             f"interrupted run scanned: {why}")


def run_scan(config: ScanConfig, progress: ProgressSink | None = None) -> ScanOutcome:
    """Scan every piece of evidence in ``config``; write files.jsonl and summary.json."""
    _check_config(config)
    # the workers spawn and import now, while this process loads sets and opens the evidence
    pool = WorkerPool(config.workers, TASKS)
    locks: list[FolderLock] = []  # the output folder's lock, held until the run returns
    try:
        return _run_scan(config, progress or ProgressSink(), pool, locks)
    except BaseException:
        pool.kill()
        raise
    finally:
        for lock in locks:
            lock.release()


def _check_config(config: ScanConfig) -> None:
    """What needs no file opened: a usage error here costs no worker start."""
    if not config.evidence:
        raise UsageError("no evidence given")
    if config.workers < 1:
        raise UsageError("--workers must be at least 1")
    if config.order not in ORDERS:
        raise UsageError(f"--order must be one of {', '.join(ORDERS)}")
    parse_formats(config.formats)
    missing = [p for p in config.evidence if not os.path.lexists(p)]
    if missing:
        raise UsageError(f"evidence {missing[0]}: no such file or device")
    for path in config.evidence:  # a FIFO would block for ever, /dev/zero is no image: exit 3
        check_kind(path)
    parse_algorithms(config.algorithms)
    if config.file_timeout < 0:
        raise UsageError("--file-timeout must be 0 (derived from each file's size) or more")
    if not 0 <= config.pdq_threshold <= 64:
        raise UsageError("--pdq-threshold must be 0..64 (PDQ's reference is 31)")
    if not 0.01 <= config.vpdq_interval <= 3600:
        raise UsageError("--vpdq-interval must be 0.01..3600 seconds (vPDQ's default is 1)")
    for name in ("vpdq_query_pct", "vpdq_target_pct"):
        if not 0 <= getattr(config, name) <= 100:
            raise UsageError(f"--{name.replace('_', '-')} must be 0..100")
    bad = problem(config)  # every other bound the run's description declares
    if bad:
        raise UsageError(bad)
    if config.resume and config.out is None:
        raise UsageError("--resume needs the folder of the interrupted run")
    if config.blockset:  # a bad .tbs is exit 2 before any output exists
        from triage.blocks.tbs import BlockSet

        BlockSet.open(config.blockset).close()


INTERNAL_ERRORS_LOG = "TRIAGE_INTERNAL_ERRORS_LOG"


def _log_internal_errors(out: Path, count: int, first: str | None) -> None:
    """Test seam: with ``TRIAGE_INTERNAL_ERRORS_LOG=FILE`` every run that met an internal
    error appends one JSON line to FILE (the test suite sets it for the whole session and fails
    any test whose scans, in process or through the CLI, report one it did not expect)."""
    log = os.environ.get(INTERNAL_ERRORS_LOG)
    if not log or not count:
        return
    line = json.dumps({"out": str(Path(out).resolve()), "internal_errors": count,
                       "first": first, "pid": os.getpid()})
    try:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError:
        pass  # a test seam must not change a run's outcome


def _start_block_scan(config: ScanConfig) -> Any:
    """``--blockset``: the whole-media block pass on a thread beside the walk (blocks/)."""
    if not config.blockset:
        return None
    from triage.blocks.blockscan import BlockScan

    block_pass = BlockScan([p for p in config.evidence], config.blockset)
    block_pass.start()
    return block_pass


def _finish_block_scan(block_pass: Any, out: Path, wanted: bool) -> dict[str, Any] | None:
    if block_pass is None:
        return None
    if not wanted:
        block_pass.stop = True
    block_pass.join()
    try:
        if block_pass.error is not None:
            raise block_pass.error
        return block_pass.result(out) if wanted else None
    finally:
        block_pass.close()


def _run_scan(config: ScanConfig, progress: ProgressSink, pool: WorkerPool,
              locks: list[FolderLock]) -> ScanOutcome:
    formats = parse_formats(config.formats)
    algorithms = parse_algorithms(config.algorithms)
    vpdq_on = config.vpdq or bool(config.vpdq_sets)
    pdq_on = config.pdq or bool(config.pdq_sets) or vpdq_on
    bad_index: list[str] = []  # filled from the index checks' threads: the scan stops
    sets = load_sets(config, verify=lambda check: bad_index.append(check.message()))
    check_pdq_only(sets, pdq_on, vpdq_on)
    pdq_sets = load_pdq_sources(config.pdq_sets, sets if pdq_on else [], config.lenient,
                                verify=lambda check: bad_index.append(check.message()))
    vpdq_sets, vpdq_specs = load_vpdq_sources(
        config.vpdq_sets, sets if vpdq_on else [], config.lenient,
        verify=lambda check: bad_index.append(check.message()))
    index = HashIndex(sets)
    if config.size_filter:
        _check_size_filter(sets)
    # never miss a match because a set uses an algorithm that was not asked for
    algorithms = tuple(a for a in ALGORITHMS if a in set(algorithms) | index.algorithms)
    if config.resume:
        out = config.out
        assert out is not None  # checked by _check_config
        if not out.is_dir():
            raise UsageError(f"--resume {out}: no such run folder")
        locks.append(FolderLock(out))
        previous = _check_resume(out, config, sets, algorithms, pdq_sets, vpdq_sets)
        remove_leftovers(out)
    else:
        out = config.out or default_out_dir(config.evidence)
        locks.append(claim(out, config.force, config.evidence))
        previous = None

    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "complete": False,
        "incomplete_reason": "running, or killed while running: --resume finishes it",
        "tool": tool_versions(),
        # options and case: from the run's description, as --resume reads them back
        **recorded(config, algorithms=algorithms, pdq=pdq_on, vpdq=vpdq_on),
        "host": socket.gethostname(),
        # the command that defined the run; each --resume adds the command that continued it
        "command": previous["command"] if previous else config.argv,
        "resume_commands": (previous.get("resume_commands", []) + [config.argv])
        if previous else [],
        "started": previous["started"] if previous else utc_now(), "finished": None,
        "resumed": (previous.get("resumed", []) + [utc_now()]) if previous else [],
        "evidence_given": [{"path": p} for p in config.evidence],
        "hashsets": [set_summary(s) for s in sets],
        "pdq_sets": [s.summary() for s in pdq_sets],
        "vpdq_sets": [{**s.summary(), "spec": spec} for s, spec in zip(vpdq_sets, vpdq_specs)],
    }
    if previous is None:
        write_json_atomic(out / "summary.json", summary)
    elif previous.get("stopped_early") or previous.get("resumed_after_early_stop"):
        # --stop-on-first-hit answered yes/no; a resume is asked for the whole answer
        summary["resumed_after_early_stop"] = True
    if previous is not None and config.stop_on_first_hit:
        config = msgspec.structs.replace(config, stop_on_first_hit=False)
    _warn(config, pdq_sets, progress)

    scan = Scan(config, index, algorithms, out, progress)
    for path in config.evidence:
        progress.status(f"opening {display_name(path)}")
        scan.open_evidence(path)
    for given, entry in zip(summary["evidence_given"], scan.evidence):
        given["identity"] = entry.get("identity")
    if previous is not None:  # the interrupted run's summary stays until the evidence agrees
        _check_identity(out, previous, summary["evidence_given"])
    write_json_atomic(out / "summary.json", summary)
    if not config.resume:
        (out / "files.jsonl").write_bytes(b"")
        for v, d, start in scan.roots():
            scan.queue_dir(v, d, start)
    else:
        done = replay(out)
        truncate(out / "files.jsonl", done.end)
        trim_side_file(out / "vpdq.jsonl", out / "files.jsonl")  # --vpdq frames: no twin
        if (out / JOURNAL).exists():  # a torn last entry (disk full) must not swallow the next
            truncate(out / JOURNAL, done.journal_end)
        for v, tally in done.tallies.items():
            scan.volumes[v].tally.add(tally)
            progress.add_total(tally.listed_bytes)
            progress.advance(tally.bytes_hashed, tally.files)
        for v, notes in done.notes.items():
            scan.notes(v, notes)
        for v, d, start in scan.roots() + done.pending_dirs():
            if dir_key(v, d, start) not in done.done_dirs:
                scan.queue_dir(v, d, start)
        for v, record in done.pending_files():
            scan.defer(v, [record])
        progress.note(_resume_state(out, done, scan))

    writer = Writer(out / "files.jsonl")
    if vpdq_on:  # the videos' frame hashes (perceptual.video): beside files.jsonl
        if not config.resume:
            (out / "vpdq.jsonl").write_bytes(b"")
        writer.side = Writer(out / "vpdq.jsonl")
    journal = Journal(out, append=config.resume)
    # text sets, parsed into temporary files: compiled once into .tdb files (hashset import's
    # writer), mapped read-only by every worker, removed at the end; text sets search first
    pdq_index, vpdq_index = out / ".pdq-index", out / ".vpdq-index"
    in_place = compile_pdq(pdq_sets, pdq_index) + in_place_files(pdq_sets)
    video = VpdqOptions(config.vpdq_interval, query_pct=config.vpdq_query_pct,
                        target_pct=config.vpdq_target_pct,
                        sets_file=compile_vpdq(vpdq_sets, vpdq_index),
                        index_files=in_place_files(vpdq_sets)) if vpdq_on else None
    init = WorkerInit(algorithms, sets, WalkOptions(config.include_orphans, config.max_orphans),
                      config.size_filter,
                      pdq=PdqOptions(config.pdq_threshold, None, in_place, video)
                      if pdq_on else None,
                      file_timeout=config.file_timeout, read_timeout=config.read_timeout)
    pool.initialize(WorkerState, init)
    scan.abort = bad_index
    block_pass = _start_block_scan(config)  # scan --blockset: beside the walk
    interrupted = stopped_early = False
    failure: BaseException | None = None  # why the run stopped short of its end, if it did
    progress.status("scanning")
    try:
        schedule(scan, pool, writer, journal)
        pool.close()
        writer.sync()  # every record durable before anything may say complete
        journal.sync()
    except KeyboardInterrupt:
        interrupted = True
        pool.kill()
    except StopEarly:
        stopped_early = True
        pool.kill()
    except BaseException as e:  # disk full (OutputError), or a defect: never "complete"
        failure = e
        pool.kill()
    writer.close()
    journal.close()
    block_section = _finish_block_scan(block_pass, out, failure is None and not interrupted)
    shutil.rmtree(pdq_index, ignore_errors=True)
    shutil.rmtree(vpdq_index, ignore_errors=True)
    if scan.spool is not None:
        scan.spool.close()
    total = scan.total()
    code = scan.exit_code(total)
    # an index that is not what its header says invalidates the run (exit 2)
    bad_index = failed_checks([*sets, *pdq_sets, *vpdq_sets, *([block_pass] if block_pass else [])],
                              wait=failure is None and not interrupted)
    if block_section is not None:  # after the wait: the set's check has its answer
        block_section["verification"] = block_pass.verification.summary()
    summary["hashsets"] = [set_summary(s) for s in sets]
    summary["pdq_sets"] = [s.summary() for s in pdq_sets]
    summary["vpdq_sets"] = [{**s.summary(), "spec": spec} for s, spec in zip(vpdq_sets, vpdq_specs)]
    summary["invalid"] = bad_index
    if stopped_early:
        scan.mark_stopped()
    elif interrupted:
        scan.mark_stopped("the scan was interrupted (Ctrl-C or SIGTERM)")
    elif failure is not None:
        scan.mark_stopped("the scan stopped on an error before reaching the end")
    if interrupted:
        code, reason = ExitCode.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM): --resume finishes it"
    elif stopped_early:
        reason = ("stopped at the first known-bad match (--stop-on-first-hit): "
                  "--resume finishes it")
    elif failure is not None:
        if isinstance(failure, TriageError):
            code = failure.exit_code
        reason = (f"{failure}" if isinstance(failure, TriageError)
                  else f"stopped by an internal error: {type(failure).__name__}: {failure}")
        if isinstance(failure, OutputError):
            reason += f"; free space, then triage scan --resume {out} finishes it"
    elif bad_index:
        code, reason = ExitCode.USAGE, f"invalid: {bad_index[0]}"
    else:
        reason = RENDERING
    summary.update(
        reports=[str(out / FORMAT_FILES[f]) for f in formats],
        complete=False,
        incomplete_reason=reason,
        interrupted=interrupted,
        stopped_early=stopped_early,
        finished=utc_now(),
        elapsed_seconds=round(time.monotonic() - scan.t0, 3),
        evidence=scan.evidence_summary(),
        totals=total.totals(),
        categories=dict(sorted(total.categories.items())),
        census=census_summary(total.census, total.near_duplicates if pdq_on else None),
        first_hit_seconds=None if scan.first_hit is None else round(scan.first_hit, 3),
        first_internal_error=total.first_internal_error,
        exit_code=int(code),
    )
    if block_section is not None:
        summary["block_scan"] = block_section
        if block_section["hit_blocks"] and code in (ExitCode.OK, ExitCode.INCOMPLETE):
            summary["exit_code"] = int(code := ExitCode.HITS)
        elif (block_section["read_errors"] or block_section["hits_truncated"]) \
                and code == ExitCode.OK:  # part of the media was not block-scanned
            summary["exit_code"] = int(code := ExitCode.INCOMPLETE)
    _log_internal_errors(out, total.internal_errors, total.first_internal_error)
    try:
        # incomplete until the reports exist: a kill while rendering leaves a run that
        # --resume or triage report finishes
        write_json_atomic(out / "summary.json", summary)
        if reason == RENDERING:
            summary = finish(out, summary, formats)
        else:
            _render(out, formats, failing=failure is not None)
    except OutputError as e:
        if failure is None:
            failure = e
    if isinstance(failure, OutputError) and reason == RENDERING:
        raise OutputError(f"{failure}; the run is not complete: free space, then "
                          f"triage scan --resume {out} (or triage report {out}) finishes it")
    if isinstance(failure, OutputError):
        raise OutputError(f"{failure}; the run is not complete: free space, then "
                          f"triage scan --resume {out} finishes it")
    if failure is not None:
        raise failure
    if interrupted:
        raise KeyboardInterrupt
    if bad_index:
        raise HashSetError(f"{bad_index[0]}; the run is invalid (summary.json: \"invalid\")")
    return ScanOutcome(out, summary, code)
