"""report.html: the page a supervisor reads and a court may see.

One self-contained file: inline stylesheet, no script, no image, no external reference, and a
Content-Security-Policy that forbids loading anything, so even an escaping bug could not make
it fetch or run something. Every value is ``escape``d (hostile names become visible escapes)
and then HTML-escaped. It shows names, sizes, times and hashes; never content or thumbnails.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from triage.matching.categories import KNOWN_GOOD, is_known_bad
from triage.reports._escape import escape
from triage.reports._html_collect import Collected, collect
from triage.reports._html_parts import CSP, e, kv, nb, num, table
from triage.reports._html_style import CSS
from triage.reports._near import closest, describe_video, exact_matches, near_matches, video_matches
from triage.reports._run import algorithms, atomic_text
from triage.reports.html_blocks import block_matches
from triage.reports.labels import Labels, severity, sort_key
from triage.reports.words import (EXAMINED, NO_KNOWN_BAD, census_category, census_kind,
                                  known_bad_sets, stopped_early, volume_reason)

NAME = "report.html"
UNREAD_TOP = 10  # unread files named in the top box (all are listed further down)
EXIT_MEANING = {
    0: "finished, no known-bad match", 1: "finished with known-bad matches",
    2: "usage error or bad input", 3: "evidence could not be opened",
    4: "finished, but some files or volumes could not be read",
    5: "the output folder could not be written: reports may be partial",
    130: "interrupted: results are partial",
}


def size(value: Any) -> str:
    if not isinstance(value, int):
        return e(value)
    n, unit = float(value), "bytes"
    for u in ("KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            break
        n, unit = n / 1024, u
    return f"{value:,} bytes" if unit == "bytes" else f"{n:.1f} {unit} ({value:,} bytes)"


def more(shown: int, total: int, where: str) -> str:
    if total <= shown:
        return ""
    return f'<p class="more">{total - shown:,} more, see {html.escape(where)}.</p>'


# -- sections ----------------------------------------------------------------------------------


def warnings(s: dict[str, Any], c: Collected | None = None) -> list[str]:
    """What the reader must not miss: what was not (fully) examined, and why."""
    out = [f"<b>Run invalid</b>: {e(why)}" for why in s.get("invalid") or []]
    if not s.get("complete"):
        if s.get("interrupted"):
            out.append("The scan was <b>interrupted</b>: the results below are partial "
                       "(<code>triage scan --resume</code> continues it).")
        elif not s.get("stopped_early"):
            why = f" ({e(s['incomplete_reason'])})" if s.get("incomplete_reason") else ""
            out.append(f"The scan did not finish{why}: the results below are partial.")
    early = stopped_early(s)
    if early:
        out.append(e(early[0].upper() + early[1:]) + ".")
    if not known_bad_sets(s):
        out.append("<b>No known-bad hash set</b> was used: " + e(NO_KNOWN_BAD.split(": ", 1)[1])
                   + ".")
    for ev in s.get("evidence") or []:
        if ev.get("error"):
            out.append(f"Evidence {e(ev.get('path'))} <b>not examined</b>: {e(ev['error'])}")
        ver = ev.get("verification") or {}
        if ver.get("status") in ("mismatch", "error", "pending"):
            out.append(f"Evidence {e(ev.get('path'))}: image verification "
                       f"<b>{e(ver['status'])}</b>{': ' + e(ver['error']) if ver.get('error') else ''}")
        vols = ev.get("volumes") or []
        if vols and not ev.get("error") and all(v.get("status") == "empty" for v in vols):
            out.append(f"Evidence {e(ev.get('path'))} holds <b>only zero bytes</b> (never "
                       "written, or wiped): there is no file system and no file to examine.")
        for v in vols:
            if ev.get("error") and ev.get("volume_system") == "none":
                break  # the whole image is the one volume: the evidence line says it all
            if v.get("status") not in EXAMINED:
                words, detail = volume_reason(v)
                raw = f" <span class=muted>[{e(detail)}]</span>" if detail else ""
                out.append(f"Volume at offset {nb(v.get('offset'))} of {e(ev.get('path'))} "
                           f"({e(v.get('description'))}) <b>{e(v.get('status'))}</b>: "
                           f"{e(words)}{raw}")
    limited = (s.get("totals") or {}).get("perceptual_limited") or 0
    if limited:
        out.append(f"<b>{num(limited)} file(s) not perceptually hashed in full</b>: PDQ/vPDQ "
                   "was stopped by one of triage's limits (size, time, frames or pixels; "
                   "<code>pdq_error</code>/<code>vpdq_error</code> in files.jsonl say which), "
                   "so near-duplicate matching did not cover all of them. Exact hashes were "
                   "computed and matched.")
    internal = (s.get("totals") or {}).get("internal_errors") or 0
    if internal:
        out.append(f"<b>{num(internal)} internal error(s)</b>: defects of triage, not "
                   f"properties of the evidence (please report them); first: "
                   f"{e(s.get('first_internal_error'))}")
    if c is not None and c.errors_total:
        reasons = "; ".join(f"{e(k)} ({num(n)})" for k, n in c.reasons.most_common(5))
        shown = "".join(f"<li class=wrap>{e(r.get('path'))} <span class=muted>"
                        f"{e(r.get('error'))}</span></li>" for r in c.errors[:UNREAD_TOP])
        rest = c.errors_total - min(len(c.errors), UNREAD_TOP)
        out.append(f"<b>{num(c.errors_total)} file(s) whose content was not read</b> "
                   f"(so not matched): {reasons}<ul>{shown}</ul>"
                   + (f"{num(rest)} more under <i>Files whose content was not read</i>."
                      if rest > 0 else ""))
    return out


def banner_class(s: dict[str, Any], hits: int, warn: list[str]) -> str:
    """Red: known-bad files found. Amber: not fully examined (interrupted, stopped early, a
    volume or file not read, evidence not opened, nothing to examine, nothing to match).
    Green only for a complete, fully examined run without hits."""
    if hits:
        return "bad"
    if warn or not s.get("complete") or s.get("exit_code") != 0:
        return "warn"
    return "ok"


def header(s: dict[str, Any], c: Collected) -> Iterator[str]:
    case = s.get("case") or {}
    yield "<header><h1>Triage report</h1>"
    yield kv([("Case", e(case.get("case"))), ("Examiner", e(case.get("examiner"))),
              ("Exhibit", e(case.get("exhibit"))),
              ("Evidence", "<br>".join(e(ev.get("path")) for ev in s.get("evidence") or [])),
              ("Started / finished (UTC)", f"{e(s.get('started'))} / {e(s.get('finished'))}")])
    hits = (s.get("totals") or {}).get("known_bad_files", sum(c.hits_total.values()))
    code = s.get("exit_code")
    warn = warnings(s, c)
    cls = banner_class(s, hits, warn)
    verdict = {"bad": "", "ok": " Every volume was examined and every file read.",
               "warn": " <b>Not fully examined</b> (see below): for what was not examined, no "
                       "hit is no answer."}[cls]
    yield (f'<div class="banner {cls}" id="verdict"><b>{num(hits)} known-bad file(s)</b> in '
           f"{num((s.get('totals') or {}).get('files', c.files))} files. Exit code "
           f"{e(code)}: {e(EXIT_MEANING.get(code, 'unknown'))}.{verdict}</div>")
    if warn:
        items = "".join(f"<li>{w}</li>" for w in warn)
        yield (f'<div class="banner warn" id="not-examined"><b class="warn">Not (fully) '
               f"examined</b><ul>{items}</ul></div>")
    yield "</header>"


def evidence(s: dict[str, Any]) -> Iterator[str]:
    yield "<section><h2>Evidence</h2>"
    for ev in s.get("evidence") or []:
        yield f"<h3 class=wrap>{e(ev.get('path'))}</h3>"
        segs = ev.get("segments") or []
        stored = ev.get("stored_hashes") or {}
        rows = [("Format", e(ev.get("format"))), ("Size", size(ev.get("size"))),
                ("Segments", f"{len(segs)}: " + ", ".join(e(x) for x in segs[:20])
                 + (f" &hellip; ({len(segs) - 20:,} more)" if len(segs) > 20 else "")),
                ("Acquisition hashes stored in the image",
                 "<br>".join(f'{e(k)}: <span class="mono">{e(v)}</span>'
                             for k, v in stored.items()) or "none stored"),
                ("Verification (--verify-image)", verification(ev.get("verification"))),
                ("Volume system", e(ev.get("volume_system")))]
        if ev.get("parent"):
            rows.append(("Parent image", e(ev["parent"])))
        if ev.get("error"):
            rows.append(("Error", f'<span class="bad">{e(ev["error"])}</span>'))
        yield kv(rows)
        vols = ev.get("volumes") or []
        if vols:
            yield table(["Slot", "Offset", "Length", "Description", "File system", "Status",
                         "Files", "Errors", "Reason / notes"], (_volume_row(v) for v in vols),
                        numeric=(1, 2, 6, 7))
    yield "</section>"


def verification(v: dict[str, Any] | None) -> str:
    """Whole-media hash against the stored acquisition hash, or why there is none."""
    if not v:
        return "not requested"
    status = str(v.get("status"))
    cls = {"verified": "good", "mismatch": "bad", "error": "bad"}.get(status, "warn")
    lines = [f'<span class="{cls}">{e(status)}</span>']
    lines += [f'computed {e(k)}: <span class="mono">{e(h)}</span>'
              for k, h in (v.get("computed") or {}).items()]
    if v.get("error"):
        lines.append(e(v["error"]))
    return "<br>".join(lines)


def _volume_row(v: dict[str, Any]) -> str:
    bad = v.get("status") not in EXAMINED
    note = e(v.get("error") or "; ".join(v.get("notes") or []) or None)
    if bad:  # the reason in words first, the library's raw message after it
        words, detail = volume_reason(v)
        note = e(words) + (f' <span class=muted>[{e(detail)}]</span>' if detail else "")
    status = f'<span class="warn">{e(v.get("status"))} (not examined)</span>' if bad and \
        v.get("status") not in ("incomplete", "stopped") else e(v.get("status"))
    return (f'<tr{" class=warn" if bad else ""}><td>{e(v.get("slot"))}</td>'
            f'<td class=n>{num(v.get("offset"))}</td><td class=n>{num(v.get("length"))}</td>'
            f'<td>{e(v.get("description"))}</td><td>{e(v.get("fs_type"))}</td><td>{status}</td>'
            f'<td class=n>{num(v.get("files"))}</td><td class=n>{num(v.get("errors"))}</td>'
            f"<td class=words>{note}</td></tr>")


def hashsets(s: dict[str, Any]) -> Iterator[str]:
    yield "<section><h2>Hash sets used</h2>"
    sets = s.get("hashsets") or []
    if not sets:
        yield "<p>No hash set was used.</p>"
    rows = (f'<tr><td>{e(h.get("name"))}</td><td>{e(h.get("kind"))}</td>'
            f'<td>{e(h.get("format"))}</td><td class=n>{num(h.get("records"))}</td>'
            f'<td class=n>{num(h.get("entries"))}</td>'
            f'<td>{e(", ".join(h.get("algorithms") or []))}</td>'
            f'<td class="mono hashes">{_set_digest(h)}</td>'
            f'<td class="wrap path">{e(h.get("path"))}'
            f'</td><td class=n>{num(h.get("skipped_lines"))} / {num(h.get("dropped_empty"))} / '
            f'{num(h.get("conflicts"))}</td></tr>' for h in sets)
    if sets:
        yield table(["Name", "Kind", "Format", "Records", "Digests", "Algorithms",
                     "SHA-256 of the file", "Path", "Skipped / empty / conflicts"], rows,
                    numeric=(3, 4))
        yield ("<p class=muted>Records: lines, rows or items read from the set; digests: "
               "distinct hash values over all algorithms (a record with an MD5 and a SHA-1 "
               "gives two; empty-file digests are dropped).</p>")
    yield "</section>"


def _set_digest(h: dict[str, Any]) -> str:
    """A source's SHA-256; for a compiled index the data digest its header records and the one
    computed from the file (they differ when the index was altered)."""
    check = h.get("verification")
    if not check:
        return e(h.get("sha256"))
    status = check.get("status")
    cls = {"verified": "good", "failed": "bad"}.get(status, "warn")
    return (f'index data, recorded: {e(check.get("sections_sha256_recorded"))}<br>computed: '
            f'{e(check.get("sections_sha256_computed"))} <b class="{cls}">{e(status)}</b>')


def totals(s: dict[str, Any], c: Collected, label: Labels) -> Iterator[str]:
    t = s.get("totals")
    yield "<section><h2>Totals</h2>"
    if t is None:
        yield "<p class=warn>summary.json has no totals (scan did not finish): counted from files.jsonl.</p>"
        t = {"files": c.files, "errors": c.errors_total,
             "known_bad_files": sum(c.hits_total.values())}
    names = [("files", "Files (and NTFS streams)"), ("bytes_hashed", "Bytes hashed"),
             ("deleted", "Deleted"), ("errors", "Content not readable"),
             ("no_content", "Names only (no content to read)"),
             ("known_bad_files", "Known-bad files"),
             ("internal_errors", "Internal errors (defects of triage)"),
             ("perceptual_limited", "PDQ/vPDQ stopped by a limit")]
    yield kv((n, num(t[k])) for k, n in names if k in t)
    cats = s.get("categories") or dict(c.categories)
    rows = (f'<tr class="{severity(k) if severity(k) == "bad" else ""}"><td>{e(k)}</td>'
            f"<td>{e(label(k))}</td><td class=n>{num(n)}</td></tr>"
            for k, n in sorted(cats.items(), key=lambda kv_: sort_key(kv_[0])))
    yield "<h3>Files per category</h3>"
    yield table(["Category", "Meaning", "Files"], rows, numeric=(2,))
    yield from census(s.get("census"))
    yield "</section>"


def census(c: dict[str, Any] | None) -> Iterator[str]:
    """Files by content kind (from their first bytes) and category, and the near-duplicates
    PDQ flagged: the questions after "any hits?"."""
    if not c or not c.get("kinds"):
        return
    kinds = c["kinds"]
    cats = sorted({k for row in kinds.values() for k in row}, key=sort_key)
    rows = (f"<tr><td>{e(census_kind(kind))}</td>"
            + "".join(f"<td class=n>{num(row.get(k, 0))}</td>" for k in cats) + "</tr>"
            for kind, row in kinds.items())
    yield "<h3>Content census (kind by category)</h3>"
    yield f"<p><b>{e(c.get('headline', ''))}</b></p>"
    # codes come from hash sets: escaped like every name (table() only HTML-escapes its head)
    yield table(["Kind", *(escape(census_category(k)) for k in cats)], rows,
                numeric=range(1, len(cats) + 1))
    near = c.get("near_duplicates")
    if near:
        yield (f"<p class=warn><b>{num(near)} near-duplicate picture(s), needs review</b>: "
               "PDQ perceptual hash within the threshold of a set's picture, listed under "
               "<i>Near-duplicates (PDQ)</i> below (files.jsonl: <code>pdq_distance</code>, "
               "matches with algorithm <code>pdq</code>).</p>")


TIME_LABELS = (("mtime", "m"), ("atime", "a"), ("ctime", "c"), ("crtime", "cr"))


def matched(matches: list[dict[str, Any]]) -> str:
    """'caid: A (md5, sha1)' once per set and category, whatever the number of algorithms.
    Exact matches only: PDQ near matches are never shown as if they made the hit."""
    groups: dict[tuple[str, str], list[str]] = {}
    for m in exact_matches({"matches": matches}):
        groups.setdefault((str(m.get("hashset")), str(m.get("category"))), []).append(
            str(m.get("algorithm")))
    return "<br>".join(f"{e(name)}: {e(cat)} ({e(', '.join(algs))})"
                       for (name, cat), algs in groups.items())


def _hit_row(i: int, r: dict[str, Any], algs: tuple[str, ...]) -> str:
    flags = [f for f in ("deleted", "orphan", "realloc") if r.get(f)]
    if r.get("orphan_long_name"):  # FAT: the long name that fails its checksum is evidence too
        flags.append(f'orphan long name "{e(r["orphan_long_name"])}"')
    where = (f'{e(r.get("evidence"))} @ {nb(r.get("volume_offset"))}, '
             f'inode <span class=nb>{e(r.get("inode"))}</span>')
    times = "".join(f"<div>{short:<2} {e(r.get(t))}</div>" for t, short in TIME_LABELS)
    hashes = "".join(f"<div>{a}: {e(r.get(a))}</div>" for a in algs if r.get(a))
    near = closest(r) if near_matches(r) else None
    also = "" if near is None else (f"<div class=muted>also a PDQ near-duplicate (distance "
                                    f"{num(near)}): see Near-duplicates</div>")
    return (f'<tr><td class=n>{i}</td><td class="wrap path"><b>{e(r.get("path"))}</b>'
            f'<div class=muted>{where}{"; " + ", ".join(flags) if flags else ""}</div></td>'
            f'<td class=n>{num(r.get("size"))}</td><td class="mono nowrap">{times}</td>'
            f'<td class="mono hashes">{hashes}</td><td>{matched(r.get("matches") or [])}{also}'
            "</td></tr>")


def hits(c: Collected, algs: tuple[str, ...], label: Labels) -> Iterator[str]:
    yield '<section class="hits"><h2>Known-bad files</h2>'
    if not c.hits_total:
        yield "<p>No file matched a known-bad hash set.</p>"
    else:
        yield ("<p class=muted>* m modified, a accessed, c metadata changed, cr created; "
               "&mdash; not recorded by the file system.</p>")
    for cat in sorted(c.hits_total, key=sort_key):
        rows = c.hits[cat]
        yield (f'<h3><span class="bad">{e(cat)}</span> &ndash; {e(label(cat))}: '
               f"{num(c.hits_total[cat])} file(s)</h3>")
        yield table(["#", "Path", "Size", "Times (UTC)*", "Hashes", "Matched sets"],
                    (_hit_row(i, r, algs) for i, r in enumerate(rows, 1)), numeric=(0, 2))
        yield more(len(rows), c.hits_total[cat], "hits.csv or files.jsonl")
    yield "</section>"


def _near_row(i: int, r: dict[str, Any], label: Labels) -> str:
    """One near-duplicate: where it is and what it is close to; never a picture."""
    flags = ", deleted" if r.get("deleted") else ""
    where = (f'{e(r.get("evidence"))} @ {nb(r.get("volume_offset"))}, '
             f'inode <span class=nb>{e(r.get("inode"))}</span>')
    sets = "<br>".join(f'{e(m.get("hashset"))}: {e(m.get("category"))} '
                       f'<span class=muted>{e(label(m.get("category")))}</span> '
                       f'(distance {num(m.get("distance"))})' for m in near_matches(r))
    cat = r.get("category")
    exact = (f'<span class="bad">{e(cat)}</span> {e(label(cat))}' if is_known_bad(cat)
             else '<span class="warn">none: needs review</span>'
                  f'{" (" + e(label(cat)) + ")" if cat == KNOWN_GOOD else ""}')
    return (f'<tr{"" if is_known_bad(cat) else " class=warn"}><td class=n>{i}</td>'
            f'<td class="wrap path"><b>{e(r.get("path"))}</b><div class=muted>{where}{flags}</div>'
            "</td>"
            f"<td class=n>{num(closest(r))}</td><td class=wrap>{sets}</td><td>{exact}</td>"
            f'<td class=n>{num(r.get("pdq_quality"))}</td><td class=n>{num(r.get("size"))}</td>'
            "</tr>")


def near_duplicates(s: dict[str, Any], c: Collected, label: Labels) -> Iterator[str]:
    """Pictures whose PDQ is close to a set's: leads for a person to look at, not hits.
    Only names, places and distances are shown; never the picture (no thumbnails)."""
    if not c.near_total and not (s.get("options") or {}).get("pdq"):
        return
    yield "<section><h2>Near-duplicates (PDQ) &mdash; needs review</h2>"
    if not c.near_total:
        yield "<p>No picture came within the PDQ threshold of a set's picture.</p></section>"
        return
    threshold = (s.get("options") or {}).get("pdq_threshold")
    yield (f"<p class=warn>{num(c.near_total)} file(s) have a PDQ perceptual hash within "
           f"{e(threshold)} bits of a set's picture; {num(c.near_only)} of them have no exact "
           "known-bad match. A near match is a lead, not a hit: a person must look at the "
           "file to confirm. Closest first.</p>")
    rows = c.near_sorted()
    yield table(["#", "Path", "Distance", "Near-matched set: category (distance)",
                 "Exact match", "PDQ quality", "Size"],
                (_near_row(i, r, label) for i, r in enumerate(rows, 1)), numeric=(0, 2, 5, 6))
    yield more(len(rows), c.near_total, "hits.csv (near_duplicate column) or files.jsonl "
                                        "(pdq_distance)")
    yield "</section>"


def _video_row(i: int, r: dict[str, Any], label: Labels) -> str:
    """One video near match: where it is, which set video or picture it is close to, the
    shares and the times that matched; never a frame."""
    flags = ", deleted" if r.get("deleted") else ""
    where = (f'{e(r.get("evidence"))} @ {nb(r.get("volume_offset"))}, '
             f'inode <span class=nb>{e(r.get("inode"))}</span>')
    found = "<br>".join(f'{e(describe_video(m))} <span class=muted>'
                        f'{e(label(m.get("category")))}</span>' for m in video_matches(r))
    cat = r.get("category")
    exact = (f'<span class="bad">{e(cat)}</span> {e(label(cat))}' if is_known_bad(cat)
             else '<span class="warn">none: needs review</span>')
    return (f'<tr{"" if is_known_bad(cat) else " class=warn"}><td class=n>{i}</td>'
            f'<td class="wrap path"><b>{e(r.get("path"))}</b><div class=muted>{where}{flags}'
            f'</div></td><td class=wrap>{found}</td><td>{exact}</td>'
            f'<td class=n>{num(r.get("vpdq_frames"))}</td><td class=n>{num(r.get("size"))}</td>'
            "</tr>")


def video_near(s: dict[str, Any], c: Collected, label: Labels) -> Iterator[str]:
    """Videos whose sampled frames match a set video (vPDQ) or a set picture (PDQ): leads
    for a person to look at, never hits, never a category. No frame is ever shown."""
    if not c.videos_total and not (s.get("options") or {}).get("vpdq"):
        return
    yield "<section><h2>Near-duplicate videos (vPDQ) &mdash; needs review</h2>"
    sets = s.get("vpdq_sets") or []
    if sets:
        yield ("<p>vPDQ sets: " + "; ".join(
            f'{e(v.get("name"))} ({num(v.get("videos"))} video(s), {num(v.get("frames"))} '
            f'frames, category {e(v.get("category"))}, SHA-256 {e(v.get("sha256"))})'
            for v in sets) + "</p>")
    if not c.videos_total:
        yield ("<p>No video's frames came near a set video (vPDQ) or a set picture (PDQ)."
               "</p></section>")
        return
    yield (f"<p class=warn>{num(c.videos_total)} video(s) have sampled frames within the PDQ "
           "threshold of a set video's frames (share of this video's frames that match, share "
           "of the set video's frames matched, and the times that matched) or of a set "
           "picture. A near match is a lead, not a hit: a person must watch the video to "
           "confirm.</p>")
    yield table(["#", "Path", "Near match (needs review)", "Exact match", "Frames hashed",
                 "Size"], (_video_row(i, r, label) for i, r in enumerate(c.videos, 1)),
                numeric=(0, 4, 5))
    yield more(len(c.videos), c.videos_total, "hits.csv (video_near_duplicate column) or "
                                              "files.jsonl (vpdq_matches)")
    yield "</section>"


def errors(c: Collected) -> Iterator[str]:
    yield "<section><h2>Files whose content was not read</h2>"
    if not c.errors_total:
        yield "<p>None: every file's content was read and hashed.</p></section>"
        return
    yield table(["Reason", "Files"], (f"<tr><td class=wrap>{e(k)}</td><td class=n>{num(n)}</td>"
                                      f"</tr>" for k, n in c.reasons.most_common()), numeric=(1,))
    rows = (f'<tr><td class="wrap path">{e(r.get("path"))}<div class=muted>{e(r.get("evidence"))} @ '
            f'{nb(r.get("volume_offset"))}, inode <span class=nb>{e(r.get("inode"))}</span>'
            f'{", deleted" if r.get("deleted") else ""}</div></td>'
            f'<td class=n>{num(r.get("size"))}</td><td class=wrap>{e(r.get("error"))}</td></tr>'
            for r in c.errors)
    yield table(["Path", "Size", "Error"], rows, numeric=(1,))
    yield more(len(c.errors), c.errors_total, "files.jsonl (records with a non-null error)")
    yield "</section>"


def _option(key: str, value: Any) -> str:
    """One option as run: ``formats`` None means every report format was written."""
    if key == "formats" and value is None:
        return "all (csv, html, dfxml)"
    return e(value if not isinstance(value, list) else ", ".join(map(str, value)))


def run_info(s: dict[str, Any]) -> Iterator[str]:
    tool = s.get("tool") or {}
    opts = s.get("options") or {}
    yield "<section><h2>Run</h2>"
    yield kv([
        ("Started (UTC)", e(s.get("started"))), ("Finished (UTC)", e(s.get("finished"))),
        ("Elapsed", f"{e(s.get('elapsed_seconds'))} s"),
        ("First hit after", f"{e(s.get('first_hit_seconds'))} s"),
        ("Complete", e(s.get("complete"))),
        ("Resumed (UTC)", "<br>".join(e(t) for t in s.get("resumed") or []) or "never"),
        ("Host", e(s.get("host"))),
        ("Tool and libraries", "<br>".join(f"{e(k)} {e(v)}" for k, v in tool.items())),
        ("Options", "<br>".join(f"{e(k)}: {_option(k, v)}" for k, v in opts.items())),
        ("Command", f'<code class=wrap>{e(shlex.join(s.get("command") or []))}</code>'),
        ("Resumed with", "<br>".join(f"<code class=wrap>{e(shlex.join(cmd))}</code>"
                                     for cmd in s.get("resume_commands") or []) or "&mdash;"),
        ("Schema version", e(s.get("schema_version"))),
    ])
    yield "</section>"


def render(summary: dict[str, Any], c: Collected, algs: tuple[str, ...]) -> Iterator[str]:
    case = summary.get("case") or {}
    title = " ".join(str(x) for x in (case.get("case"), case.get("exhibit")) if x)
    yield ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
           '<meta name="referrer" content="no-referrer">'
           f"<title>Triage report{' ' + e(title) if title else ''}</title>"
           f"<style>{CSS}</style></head><body>\n")
    label = Labels(summary)
    for part in (header(summary, c), evidence(summary), hashsets(summary),
                 totals(summary, c, label), hits(c, algs, label),
                 near_duplicates(summary, c, label), video_near(summary, c, label),
                 block_matches(summary), errors(c),
                 run_info(summary)):
        yield from part
        yield "\n"
    yield ("<footer>Generated by triage from files.jsonl and summary.json. This report lists "
           "file names, sizes, times and hashes only; it contains no file content and no "
           "thumbnails. Names are shown with control characters, bidi controls and "
           "undecodable bytes escaped (\\n, \\u202e, \\xff; a backslash as \\\\).</footer>"
           "</body></html>\n")


def write(run_dir: Path, summary: dict[str, Any]) -> Path:
    algs = algorithms(summary)
    collected = collect(run_dir, algs)
    path = run_dir / NAME
    with atomic_text(path) as fh:
        fh.writelines(render(summary, collected, algs))
    return path
