"""The block-hash parts of report.html: the sampling section of ``triage sample`` and the block
matches of ``scan --blockset``. Kept apart from html.py (one call there) so each stays small.
Every value goes through ``_html_parts.e`` (name escaping, then HTML escaping); no content is shown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from triage.reports._html_parts import CSP, e, kv, nb, num, table
from triage.reports._html_style import CSS
from triage.reports._run import atomic_text

UNCONFIRMED = "block evidence, not confirmed by a whole-file hash"
SHOWN = 200


def _owner(o: dict[str, Any]) -> str:
    where = o.get("where")
    if where == "file":
        dele = " (deleted)" if o.get("deleted") else ""
        return f"{e(o.get('path'))}{dele} <small>inode {e(o.get('inode'))}</small>"
    return e(where)


def _refs(h: dict[str, Any]) -> str:
    return "<br>".join(f"{e(r.get('name'))} <small>md5 {e(r.get('md5'))} block at "
                       f"{e(r.get('block_offset'))}</small> [{e(r.get('category'))}]"
                       for r in h.get("reference_files") or [])


def sampling(s: dict[str, Any]) -> Iterator[str]:
    """One table per evidence: the plan, the confidence statement, the hits."""
    samp = s.get("sampling")
    if not samp:
        return
    yield "<section><h2>Sampling</h2>"
    for m in samp.get("media", []):
        yield f"<h3>{e(m.get('evidence'))}</h3>"
        yield f"<p><strong>{e(m.get('statement'))}</strong></p>"
        yield kv([
            ("Media blocks N", num(m.get("media_blocks"))), ("Block size", num(m.get("block_size"))),
            ("Reads n (planned / succeeded / failed)",
             f"{num(m.get('reads'))} / {num(m.get('reads_ok'))} / {num(m.get('read_errors'))}"),
            ("Read size", e(m.get("read_size"))), ("Bytes read", num(m.get("bytes_read"))),
            ("Seed", e(m.get("seed"))), ("Elapsed", f"{e(m.get('elapsed_seconds'))} s"),
            ("Confidence asked / achieved",
             f"{e(m.get('confidence_asked'))} / {e(round(m.get('confidence_achieved', 0), 6))}"),
        ])
        hits = m.get("hits") or []
        if hits:
            rows = [f"<tr><td>{nb(h['device_offset'])}</td><td>{e(h.get('owner', {}).get('volume'))}"
                    f"</td><td>{_owner(h.get('owner', {}))}</td><td>{_refs(h)}</td>"
                    f"<td>{e(h.get('confirmed') or UNCONFIRMED)}</td></tr>"
                    for h in hits[:SHOWN]]
            yield table(["device offset", "volume", "owner", "reference file", "confirmation"],
                        rows, numeric=[0])
    yield "</section>"


def block_matches(s: dict[str, Any]) -> Iterator[str]:
    """``scan --blockset``: files with matching blocks, and blocks no file holds."""
    bm = s.get("block_scan")
    if not bm:
        return
    yield "<section><h2>Block matches</h2>"
    yield (f"<p>{num(bm.get('bytes_read'))} bytes read, {num(bm.get('windows_hashed'))} windows "
           f"hashed against {e(bm.get('blockset', {}).get('name'))}; "
           f"{num(bm.get('hit_blocks'))} matching blocks. Every row is {e(UNCONFIRMED)} "
           "unless the file's own hash matched.</p>")
    rows = [f"<tr><td>{e(f.get('path'))}{' (deleted)' if f.get('deleted') else ''}</td>"
            f"<td>{num(f.get('volume_offset'))}</td><td>{num(f.get('blocks'))}</td>"
            f"<td>{e(f.get('reference', {}).get('name'))} <small>md5 "
            f"{e(f.get('reference', {}).get('md5'))}</small></td>"
            f"<td>{e(f.get('category'))}</td></tr>" for f in (bm.get("files") or [])[:SHOWN]]
    if rows:
        yield table(["file", "volume", "blocks", "reference file", "category"], rows, numeric=[1, 2])
    rows = [f"<tr><td>{nb(u.get('device_offset'))}</td><td>{e(u.get('where'))}</td>"
            f"<td>{num(u.get('blocks'))}</td><td>{e(u.get('reference', {}).get('name'))} "
            f"<small>md5 {e(u.get('reference', {}).get('md5'))}</small></td>"
            f"<td>{e(u.get('category'))}</td></tr>" for u in (bm.get("unowned") or [])[:SHOWN]]
    if rows:
        yield "<h3>In unallocated space or outside any volume</h3>"
        yield table(["device offset", "where", "blocks", "reference file", "category"], rows,
                    numeric=[0, 2])
    yield "</section>"


def write_sample_report(out: Path, summary: dict[str, Any]) -> Path:
    """report.html of ``triage sample`` (no file walk: the sampling section and the set)."""
    path = out / "report.html"
    with atomic_text(path) as fh:
        fh.write("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
                 f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
                 f"<title>Triage sample</title><style>{CSS}</style></head><body>\n")
        bset = summary.get("blockset") or {}
        fh.write(f"<h1>Block sample: exit code {e(summary.get('exit_code'))}</h1>"
                 f"<p>Block set {e(bset.get('name'))} ({e(bset.get('blocks'))} blocks of "
                 f"{e(bset.get('block_size'))} bytes, {e(bset.get('digest'))})</p>\n")
        fh.writelines(sampling(summary))
        fh.writelines(block_matches(summary))
        fh.write("<footer>Generated by triage sample. Offsets, names and hashes only; no "
                 "content.</footer></body></html>\n")
    return path
