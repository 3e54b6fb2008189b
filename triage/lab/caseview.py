"""The case view: ``case.json`` and ``case.html`` from the exhibits' output files only.

Every exhibit with its state, completeness, exit code, hits by category and what was not
examined; the files found on two or more exhibits, by SHA-1 (the same picture on the phone and
on the laptop links them), with their category; totals. Nothing is read from the evidence and
nothing but names, hashes and numbers is written; every name from the evidence or a hash set is
shown in the one escaped form of ``triage.reports._escape``, and HTML-escaped on the page.

Memory: the links are found with one sorted array of 20-byte digests (each exhibit's distinct
SHA-1s), not a dictionary per file; only the linked digests' names are collected, at most
``PATHS_PER_EXHIBIT`` per exhibit and ``MAX_LINKS`` links in case.json (the counts say how many
more there are).
"""

from __future__ import annotations

import binascii
import html
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from triage.version import __version__
from triage.matching.categories import is_known_bad, most_severe, severity_key
from triage.errors import UsageError
from triage.lab import case as cases
from triage.lab.client import exhibit_status
from triage.records import utc_now
from triage.run.report import write_json_atomic
from triage.reports._escape import escape
from triage.reports._html_style import CSS
from triage.reports._run import atomic_text
from triage.reports.html import CSP, EXIT_MEANING, e, kv, more, num, table
from triage.reports.labels import Labels
from triage.reports.words import EXAMINED, volume_reason

SCHEMA = "triage-case/1"
MAX_LINKS = 100_000  # in case.json; links_total says how many there are
HTML_LINKS = 1_000
PATHS_PER_EXHIBIT = 10
CHUNK = 1 << 16  # lines decoded at once


class _Rec(msgspec.Struct):
    path: str = ""
    volume_offset: int | None = None
    path_bytes: str | None = None
    size: int | None = None
    sha1: str | None = None
    category: str | None = None


_decode = msgspec.json.Decoder(list[_Rec]).decode


def read_records(files: Path) -> Iterator[list[_Rec]]:
    """files.jsonl in chunks of decoded records (one msgspec call per chunk)."""
    with open(files, "rb") as fh:
        while True:
            lines = [line for line in (fh.readline() for _ in range(CHUNK)) if line.strip()]
            if not lines:
                return
            yield _decode(b"[" + b",".join(lines) + b"]")


def _digests(files: Path) -> np.ndarray:
    """The distinct SHA-1s (20 bytes) of one exhibit's files with content."""
    parts = []
    for chunk in read_records(files):
        hexes = [r.sha1 for r in chunk if r.sha1 and r.size and len(r.sha1) == 40]
        if hexes:
            parts.append(np.frombuffer(binascii.unhexlify("".join(hexes)), dtype="S20"))
    if not parts:
        return np.zeros(0, dtype="S20")
    return np.unique(np.concatenate(parts))


def not_examined(summary: dict[str, Any]) -> list[str]:
    """What this exhibit's run did not examine, in the words of the scan's own reports."""
    out = []
    if not summary.get("complete"):
        out.append(f"run incomplete: {summary.get('incomplete_reason') or 'unknown reason'}")
    for why in summary.get("invalid") or []:
        out.append(f"run invalid: {why}")
    for ev in summary.get("evidence") or []:
        if ev.get("error"):
            out.append(f"evidence not scanned: {ev['error']}")
        for v in ev.get("volumes") or []:
            if v.get("status") not in EXAMINED:
                words, detail = volume_reason(v)
                out.append(f"volume at offset {v.get('offset', 0):,} ({v.get('description') or '?'}) "
                           f"{v.get('status')}: {words}" + (f" [{detail}]" if detail else ""))
    t = summary.get("totals") or {}
    if t.get("errors"):
        out.append(f"{t['errors']:,} file(s) could not be read")
    if t.get("internal_errors"):
        out.append(f"{t['internal_errors']:,} internal error(s) (defects of triage); first: "
                   f"{summary.get('first_internal_error')}")
    if summary.get("stopped_early"):
        out.append("stopped at the first known-bad file")
    return out


def _exhibit(the_case: cases.Case, ex: cases.Exhibit) -> dict[str, Any]:
    row = exhibit_status(the_case, ex, None)
    out = the_case.out(ex.name)
    from triage.lab.worker import read_summary

    summary = read_summary(out) or {}
    lab = cases.read_lab_record(the_case, ex.name)
    t = summary.get("totals") or {}
    code = summary.get("exit_code")
    entry = {
        "name": ex.name, "evidence": ex.evidence, "out": str(out), "state": row["state"],
        "complete": bool(summary.get("complete")), "exit_code": code,
        "exit_meaning": EXIT_MEANING.get(code) if isinstance(code, int) else None,
        "reason": row.get("reason"), "host": summary.get("host") or lab.get("host"),
        "resumed": bool(summary.get("resumed")), "resumed_at": summary.get("resumed") or [],
        "attempts": lab.get("attempts", []),
        "started": summary.get("started"), "finished": summary.get("finished"),
        "elapsed_seconds": summary.get("elapsed_seconds"),
        "totals": t, "categories": summary.get("categories") or {},
        "known_bad_files": t.get("known_bad_files", 0),
        "not_examined": not_examined(summary) if summary else [],
    }
    entry["_labels"] = Labels(summary) if summary else Labels()
    return entry


def _links(the_case: cases.Case, exhibits: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Files whose SHA-1 is on two or more exhibits: (links, most severe first; their number)."""
    names = [x["name"] for x in exhibits]
    files = [the_case.out(n) / "files.jsonl" for n in names]
    per = [_digests(f) if f.is_file() else np.zeros(0, dtype="S20") for f in files]
    if len(per) < 2 or sum(len(p) for p in per) == 0:
        return [], 0
    allkeys = np.concatenate(per)
    allkeys.sort(kind="stable")
    repeated = allkeys[1:] == allkeys[:-1]
    linked = np.unique(allkeys[1:][repeated])  # each exhibit's digests are distinct already
    if not len(linked):
        return [], 0
    wanted = set(linked.tolist())
    found: dict[bytes, dict[str, Any]] = {}
    for name, f in zip(names, files):
        if not f.is_file():
            continue
        for chunk in read_records(f):
            for r in chunk:
                if not (r.sha1 and r.size and len(r.sha1) == 40):
                    continue
                key = binascii.unhexlify(r.sha1)
                if key not in wanted:
                    continue
                link = found.setdefault(key, {"sha1": r.sha1, "size": r.size,
                                              "categories": set(), "exhibits": {}})
                if r.category:
                    link["categories"].add(r.category)
                where = link["exhibits"].setdefault(name, {"exhibit": name, "files": 0,
                                                           "paths": []})
                where["files"] += 1
                if len(where["paths"]) < PATHS_PER_EXHIBIT:
                    place = {"volume_offset": r.volume_offset, "path": r.path}
                    if r.path_bytes:
                        place["path_bytes"] = r.path_bytes
                    where["paths"].append(place)
    links = []
    for link in found.values():
        category = most_severe(link.pop("categories"))
        links.append({**link, "category": category, "exhibit_count": len(link["exhibits"]),
                      "exhibits": list(link["exhibits"].values())})
    links.sort(key=lambda x: (severity_key(x["category"]), -x["exhibit_count"], x["sha1"]))
    return links[:MAX_LINKS], len(links)


def build(case_dir: Path) -> dict[str, Any]:
    """The case view as data (what case.json holds)."""
    the_case = cases.load(case_dir)
    exhibits = [_exhibit(the_case, ex) for ex in the_case.exhibits]
    links, total_links = _links(the_case, exhibits)
    cats: dict[str, int] = {}
    for x in exhibits:
        for c, n in x["categories"].items():
            cats[c] = cats.get(c, 0) + n
    states = [x["state"] for x in exhibits]
    totals = {
        "exhibits": len(exhibits), "done": states.count("done"),
        "failed": states.count("failed"),
        "incomplete": sum(1 for x in exhibits if x["state"] == "done" and not x["complete"])
        + states.count("incomplete"),
        "not_started": states.count("not started"),
        "resumed": sum(1 for x in exhibits if x["resumed"]),
        "files": sum((x["totals"] or {}).get("files", 0) for x in exhibits),
        "bytes_hashed": sum((x["totals"] or {}).get("bytes_hashed", 0) for x in exhibits),
        "known_bad_files": sum(x["known_bad_files"] for x in exhibits),
        "exhibits_with_hits": sum(1 for x in exhibits if x["known_bad_files"]),
        "categories": dict(sorted(cats.items(), key=lambda kv: severity_key(kv[0]))),
        "linked_files": total_links,
        "linked_known_bad": sum(1 for x in links if is_known_bad(x["category"])),
    }
    return {
        "schema": SCHEMA, "generated": utc_now(),
        "tool": {"name": "triage", "version": __version__},
        "case": the_case.case, "examiner": the_case.examiner, "id": the_case.id,
        "folder": str(the_case.path), "rematch_of": the_case.rematch_of or None,
        "hashsets": [{k: s.get(k) for k in ("name", "kind", "path", "sha256")}
                     for s in the_case.hashset_sources],
        "exhibits": exhibits, "links": links, "links_total": total_links,
        "links_omitted": total_links - len(links), "totals": totals,
    }


def _public(view: dict[str, Any]) -> dict[str, Any]:
    return {**view, "exhibits": [{k: v for k, v in x.items() if not k.startswith("_")}
                                 for x in view["exhibits"]]}


def write_case(case_dir: str | os.PathLike[str], formats: str = "json,html"
               ) -> tuple[list[Path], dict[str, Any]]:
    wanted = {f.strip().lower() for f in formats.split(",") if f.strip()}
    unknown = wanted - {"json", "html"}
    if unknown or not wanted:
        raise UsageError(f"--formats: unknown format {', '.join(sorted(unknown)) or '(none)'}; "
                         "choose from json,html")
    folder = Path(case_dir)
    view = build(folder)
    written = []
    if "json" in wanted:
        write_json_atomic(folder / "case.json", _public(view))
        written.append(folder / "case.json")
    if "html" in wanted:
        with atomic_text(folder / "case.html") as fh:
            for part in render(view):
                fh.write(part)
        written.append(folder / "case.html")
    return written, _public(view)


# -- case.html -----------------------------------------------------------------------------------

def _cats(categories: dict[str, int], label: Labels) -> str:
    if not categories:
        return "&mdash;"
    parts = []
    for c, n in sorted(categories.items(), key=lambda kv: severity_key(kv[0])):
        cls = ' class="bad"' if is_known_bad(c) else ""
        parts.append(f"<span{cls}>{e(c)} ({e(label(c))}): {num(n)}</span>")
    return "<br>".join(parts)


def _exhibit_row(x: dict[str, Any]) -> str:
    bad = x["known_bad_files"] > 0
    warn = x["state"] != "done" or not x["complete"] or x["not_examined"]
    cls = ' class="warn"' if warn else ""  # hits are red in their own cells, not the whole row
    state = x["state"] + ("" if x["state"] != "done" or x["complete"] else " (incomplete)")
    if x["resumed"]:
        state += f"; resumed {len(x['resumed_at'])}&times; after an interruption"
    code = "&mdash;" if x["exit_code"] is None else f"{x['exit_code']} ({e(x['exit_meaning'])})"
    missing = "<br>".join(e(w) for w in x["not_examined"]) or (e(x["reason"]) if x["reason"]
                                                                 else "nothing")
    if x["reason"] and x["not_examined"]:
        missing = e(x["reason"]) + "<br>" + missing
    name = f"<span class=bad>{e(x['name'])}</span>" if bad else e(x["name"])
    return (f"<tr{cls}><td class=wrap>{name}</td><td class='wrap mono'>{e(x['evidence'])}"
            f"</td><td>{state}</td><td>{code}</td><td class=n>{num((x['totals'] or {}).get('files'))}"
            f"</td><td>{_cats(x['categories'], x['_labels'])}</td><td class=wrap>{missing}</td>"
            f"<td>{e(x['host'])}</td></tr>")


def _link_row(i: int, link: dict[str, Any], label: Labels) -> str:
    bad = is_known_bad(link["category"])
    cls = ""
    where = "".join(
        f"<div><b>{e(w['exhibit'])}</b> ({num(w['files'])}): "
        + "; ".join(f"{e(p['path'])} <span class=muted>@&nbsp;{num(p['volume_offset'])}</span>"
                    for p in w["paths"])
        + (" &hellip;" if w["files"] > len(w["paths"]) else "") + "</div>"
        for w in link["exhibits"])
    category = f"{e(link['category'])} ({e(label(link['category']))})"
    if bad:
        category = f"<span class=bad>{category}</span>"
    return (f"<tr{cls}><td class=n>{i}</td><td>{category}"
            f"</td><td class=n>{link['exhibit_count']}</td><td class='mono hashes'>"
            f"{e(link['sha1'])}</td><td class=n>{num(link['size'])}</td>"
            f"<td class='wrap path'>{where}</td></tr>")


def render(view: dict[str, Any]) -> Iterator[str]:
    t = view["totals"]
    label = Labels()
    for x in view["exhibits"]:  # every exhibit's profile labels (first to name a code wins)
        for code, text in x["_labels"].table.items():
            label.table.setdefault(code, text)
    title = f"triage case {escape(view['case'])}" if view["case"] else "triage case"
    yield ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>")
    yield f"<h1>{html.escape(title)}</h1>"
    problems = [x for x in view["exhibits"]
                if x["state"] != "done" or not x["complete"] or x["not_examined"]]
    if t["known_bad_files"]:
        banner = (f'<div class="banner bad"><b>{num(t["known_bad_files"])} known-bad file(s)</b>'
                  f' on {num(t["exhibits_with_hits"])} of {num(t["exhibits"])} exhibit(s); '
                  f'{num(t["linked_known_bad"])} known-bad file(s) on two or more exhibits.')
    elif problems:
        banner = '<div class="banner"><b>No known-bad file found, but not everything was examined.</b>'
    else:
        banner = ('<div class="banner ok"><b>No known-bad file</b> on any exhibit; every exhibit '
                  "was fully examined.")
    if problems:
        banner += "<ul>" + "".join(
            f"<li>{e(x['name'])}: {e(x['state'])}"
            + (f" &mdash; {e(x['reason'])}" if x["reason"] else "")
            + (f" &mdash; {e(x['not_examined'][0])}" if x["not_examined"] else "") + "</li>"
            for x in problems) + "</ul>"
    yield banner + "</div>"
    yield kv([("case", e(view["case"])), ("examiner", e(view["examiner"])),
              ("case folder", f"<span class='mono wrap'>{e(view['folder'])}</span>"),
              ("re-match of", e(view["rematch_of"])),
              ("generated", e(view["generated"])),
              ("exhibits", f"{num(t['exhibits'])}: {num(t['done'])} done, {num(t['failed'])} "
                           f"failed, {num(t['incomplete'])} incomplete, {num(t['not_started'])} "
                           f"not started, {num(t['resumed'])} resumed after an interruption"),
              ("files", num(t["files"])), ("bytes hashed", num(t["bytes_hashed"])),
              ("known-bad files", num(t["known_bad_files"])),
              ("by category", _cats(t["categories"], label)),
              ("files on two or more exhibits", num(t["linked_files"]))])
    yield "<h2>Exhibits</h2>"
    yield table(["exhibit", "evidence", "state", "exit code", "files", "by category",
                 "not examined", "host"], (_exhibit_row(x) for x in view["exhibits"]),
                numeric=[4])
    yield "<h2>Files found on two or more exhibits (by SHA-1)</h2>"
    links = view["links"]
    if not links:
        yield "<p>None.</p>"
    else:
        yield table(["#", "category", "exhibits", "SHA-1", "size", "where (exhibit (files): names)"],
                    (_link_row(i, link, label) for i, link in enumerate(links[:HTML_LINKS], 1)),
                    numeric=[0, 2, 4])
        yield more(min(len(links), HTML_LINKS), view["links_total"], "case.json")
    yield "<h2>Hash sets</h2>"
    yield table(["name", "kind", "source", "SHA-256"],
                (f"<tr><td>{e(h['name'])}</td><td>{e(h['kind'])}</td><td class='wrap mono'>"
                 f"{e(h['path'])}</td><td class='mono hashes'>{e(h['sha256'])}</td></tr>"
                 for h in view["hashsets"]))
    yield (f"<footer>triage {e(view['tool']['version'])}: built from the exhibits' output files "
           "only (summary.json, files.jsonl); names and hashes only, never content.</footer>"
           "</body></html>\n")
