"""files.dfxml: the records as Digital Forensics XML, the format of fiwalk.

Core elements follow the DFXML schema's order (fileobject: filename, partition, id, name_type,
filesize, unalloc, alloc_inode/alloc_name, orphan, inode, mtime, ctime, atime, crtime,
hashdigest); what DFXML has no element for (evidence, volume offset, NTFS attribute, category,
matches, errors, xxh128, content census and PDQ, case) are extension elements in the ``triage`` namespace at the end
of their parent. Fileobjects sit directly under ``<dfxml>`` in files.jsonl order (the scan
finishes files of different volumes interleaved); each names its volume by ``<partition>``
and ``triage:volume_offset``. The ``<volume>`` elements up front describe every volume,
including those not examined. Names are ``escape``d, so no XML-invalid character (control,
lone surrogate) can make the file ill-formed; raw bytes stay recoverable.
"""

from __future__ import annotations

import re
import shlex
import shutil
from concurrent.futures import Executor
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import quoteattr

from triage.errors import OutputError
from triage.reports._escape import _NEEDS, escape
from triage.reports._run import atomic_text, iter_records, split_lines
from triage.reports.labels import Labels

NAME = "files.dfxml"
DFXML_NS = "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML"
DC_NS = "http://purl.org/dc/elements/1.1/"
TRIAGE_NS = "https://github.com/triage/ns/1"
DFXML_VERSION = "1.2.0"
DFXML_HASHES = ("md5", "sha1", "sha256")  # the digest types DFXML defines; others: triage:


# anything ``escape`` or XML would change; text without it (nearly all) is written as it is
_PLAIN = re.compile('[&<>"' + _NEEDS.pattern[1:])


def _t(value: Any) -> str:
    """Element text: name escaping first (no XML-invalid character remains), then XML."""
    text = value if type(value) is str else str(value)
    if _PLAIN.search(text) is None:
        return text
    return escape(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _a(value: Any) -> str:
    """A double-quoted attribute value."""
    return '"' + _t(value).replace('"', "&quot;") + '"'


def _el(tag: str, value: Any, indent: str = "    ") -> str:
    return f"{indent}<{tag}>{_t(value)}</{tag}>\n"


def _head(summary: dict[str, Any]) -> Iterator[str]:
    tool = summary.get("tool") or {}
    case = summary.get("case") or {}
    yield '<?xml version="1.0" encoding="UTF-8"?>\n'
    yield (f"<dfxml xmlns={quoteattr(DFXML_NS)} xmlns:dc={quoteattr(DC_NS)} "
           f"xmlns:triage={quoteattr(TRIAGE_NS)} version={quoteattr(DFXML_VERSION)}>\n")
    yield "  <metadata>\n    <dc:type>Hash list</dc:type>\n"
    for key in ("case", "examiner", "exhibit"):
        if case.get(key) is not None:
            yield _el(f"triage:{key}", case[key])
    yield _el("triage:schema_version", summary.get("schema_version", ""))
    yield _el("triage:complete", 1 if summary.get("complete") else 0)
    yield "  </metadata>\n"
    yield '  <creator version="1.0">\n'
    yield _el("program", tool.get("name", "triage"))
    yield _el("version", tool.get("version", ""))
    yield "    <build_environment>\n"
    for name, version in tool.items():
        if name not in ("name", "version"):
            yield f"      <library name={_a(name)} version={_a(version)}/>\n"
    yield "    </build_environment>\n    <execution_environment>\n"
    if summary.get("host"):
        yield _el("host", summary["host"], "      ")
    yield _el("command_line", shlex.join(summary.get("command") or []), "      ")
    if summary.get("started"):
        yield _el("start_time", summary["started"], "      ")
    yield "    </execution_environment>\n  </creator>\n  <source>\n"
    for ev in summary.get("evidence") or []:
        yield _el("image_filename", ev.get("path", ""))
    yield "  </source>\n"
    for ev in summary.get("evidence") or []:
        for v in ev.get("volumes") or []:
            yield from _volume(ev, v)


def _volume(ev: dict[str, Any], v: dict[str, Any]) -> Iterator[str]:
    yield f"  <volume offset={quoteattr(str(v.get('offset', 0)))}>\n"
    if v.get("offset"):  # partition_offset is a positiveInteger: omitted for offset 0
        yield _el("partition_offset", v["offset"])
    if v.get("fs_type"):
        yield _el("ftype_str", v["fs_type"])
    yield _el("triage:evidence", ev.get("path", ""))
    yield _el("triage:status", v.get("status", ""))
    if v.get("error"):
        yield _el("triage:error", v["error"])
    yield "  </volume>\n"


def partition_numbers(summary: dict[str, Any]) -> dict[tuple[str, int], int]:
    """(evidence, volume offset) -> DFXML ``partition``: 1-based order in that evidence."""
    out: dict[tuple[str, int], int] = {}
    for ev in summary.get("evidence") or []:
        for i, v in enumerate(ev.get("volumes") or [], 1):
            out[(ev.get("path", ""), v.get("offset", 0))] = i
    return out


_ALLOC = {  # (deleted, realloc) -> DFXML allocation elements
    (False, False): "    <alloc_inode>1</alloc_inode>\n    <alloc_name>1</alloc_name>\n",
    (False, True): "    <alloc_inode>1</alloc_inode>\n    <alloc_name>1</alloc_name>\n",
    # deleted name whose metadata has since been given to another file
    (True, True): "    <alloc_inode>1</alloc_inode>\n    <alloc_name>0</alloc_name>\n",
    (True, False): "    <unalloc>1</unalloc>\n    <alloc_inode>0</alloc_inode>\n",
}
_TIMES = ("mtime", "ctime", "atime", "crtime")  # DFXML's order


class _Volume:
    """What every fileobject of one volume repeats, escaped once."""

    def __init__(self, r: dict[str, Any], partition: int | None) -> None:
        self.partition = f"    <partition>{partition}</partition>\n" if partition else ""
        self.tail = (_el("triage:evidence", r.get("evidence", ""))
                     + _el("triage:volume_offset", r.get("volume_offset", 0))
                     + _el("triage:fs_type", r.get("fs_type", "")))


def fileobject(r: dict[str, Any], n: int, volume: _Volume, algs: list[str],
               label: Labels) -> str:
    """One record as a fileobject. Every text goes through ``_t``/``_a``; the values that are
    plain by schema (times, hashes, census words) are checked together in one search, so a
    run of millions of records renders in seconds (hot path)."""
    get = r.get
    path = str(get("path") or "")
    inode = str(get("inode") or "")
    addr, _, attr = inode.partition("-")
    is_addr = addr.isdigit()
    size = get("size")
    times = [(t, get(t)) for t in _TIMES]
    times = [(t, v) for t, v in times if v]
    digests = [(a, get(a)) for a in algs]
    digests = [(a, v) for a, v in digests if v]
    kind, sig, cat = get("kind"), get("signature"), get("category")
    plain = [v for _, v in times] + [v for _, v in digests]
    plain += [v for v in (kind, sig, cat) if v is not None]
    esc = _t if _PLAIN.search("".join(map(str, plain))) else _same
    parts = [f"  <fileobject>\n    <filename>{_t(path[1:] if path[:1] == '/' else path)}"
             f"</filename>\n{volume.partition}    <id>{n}</id>\n    <name_type>r</name_type>\n"]
    if size is not None:
        parts.append(f"    <filesize>{int(size)}</filesize>\n")
    parts.append(_ALLOC[(bool(get("deleted")), bool(get("realloc")))])
    if get("orphan"):
        parts.append("    <orphan>1</orphan>\n")
    if is_addr:
        parts.append(f"    <inode>{addr}</inode>\n")
    parts += [f"    <{t}>{esc(v)}</{t}>\n" for t, v in times]
    parts += [f'    <hashdigest type="{a}">{esc(v)}</hashdigest>\n' for a, v in digests
              if a in DFXML_HASHES]
    parts.append(volume.tail)
    if attr or not is_addr:
        parts.append(_el("triage:inode", inode))
    if get("orphan_long_name"):
        parts.append(_el("triage:orphan_long_name", r["orphan_long_name"]))
    parts += [f'    <triage:hashdigest type="{a}">{esc(v)}</triage:hashdigest>\n'
              for a, v in digests if a not in DFXML_HASHES]
    if kind is not None:
        parts.append(f"    <triage:kind>{esc(kind)}</triage:kind>\n")
    if sig is not None:
        parts.append(f"    <triage:signature>{esc(sig)}</triage:signature>\n")
    if get("extension_mismatch") is not None:
        parts.append(f"    <triage:extension_mismatch>{int(bool(r['extension_mismatch']))}"
                     "</triage:extension_mismatch>\n")
    if get("pdq") is not None or get("pdq_error") or get("pdq_distance") is not None:
        parts.append(_pdq(r))
    if get("vpdq_frames") is not None or get("vpdq_error") or get("vpdq_matches"):
        parts.append(_vpdq(r))
    if cat is not None:
        parts.append(f"    <triage:category label={_a(label(cat))}>{esc(cat)}"
                     "</triage:category>\n")
    for m in get("matches") or ():
        parts.append(f"    <triage:match hashset={_a(m.get('hashset', ''))} "
                     f"algorithm={_a(m.get('algorithm', ''))} "
                     f"category={_a(m.get('category', ''))}"
                     + (f' distance="{int(m["distance"])}"' if m.get("distance") is not None
                        else "") + "/>\n")
    if get("error"):
        parts.append(_el("triage:error", r["error"]))
    parts.append("  </fileobject>\n")
    return "".join(parts)


def _same(text: Any) -> str:
    return text


def _pdq(r: dict[str, Any]) -> str:
    parts = []
    if r.get("pdq") is not None:
        quality = r.get("pdq_quality")
        attr = f' quality="{int(quality)}"' if quality is not None else ""
        parts.append(f"    <triage:pdq{attr}>{_t(r['pdq'])}</triage:pdq>\n")
    if r.get("pdq_error"):
        parts.append(_el("triage:pdq_error", r["pdq_error"]))
    if r.get("pdq_distance") is not None:
        parts.append(f"    <triage:pdq_distance>{int(r['pdq_distance'])}</triage:pdq_distance>\n")
    return "".join(parts)


def _vpdq(r: dict[str, Any]) -> str:
    """--vpdq: frames hashed, seconds decoded, why not (all), and each video near match
    (needs review, never the category)."""
    parts = []
    frames, duration = r.get("vpdq_frames"), r.get("vpdq_duration")
    if frames is not None:
        attr = f' duration="{float(duration):g}"' if isinstance(duration, (int, float)) else ""
        parts.append(f"    <triage:vpdq frames=\"{int(frames)}\"{attr}/>\n")
    if r.get("vpdq_error"):
        parts.append(_el("triage:vpdq_error", r["vpdq_error"]))
    for m in r.get("vpdq_matches") or ():
        extra = "".join(f" {k}={_a(str(m[k]))}" for k in ("video", "query_pct", "target_pct",
                                                           "at", "frames") if k in m)
        parts.append(f"    <triage:video_match hashset={_a(m.get('hashset', ''))} "
                     f"algorithm={_a(m.get('algorithm', ''))} "
                     f"category={_a(m.get('category', ''))} "
                     f'distance="{int(m.get("distance") or 0)}"{extra}/>\n')
    return "".join(parts)


def write(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Stream files.jsonl into one fileobject per record (constant memory)."""
    path = run_dir / NAME
    with atomic_text(path) as fh:
        fh.writelines(_head(summary))
        _body(fh, run_dir, summary, 0, None, 1, 0)
        fh.write("</dfxml>\n")
    return path


def write_parallel(run_dir: Path, summary: dict[str, Any], pool: Executor
                   ) -> Callable[[], Path]:
    """``write`` with the two halves of files.jsonl rendered in ``pool`` side by side (DFXML
    is the costly format: ~15 us per record); call the returned function for the file."""
    parts = [(run_dir / f".{NAME}.part{i}", piece)
             for i, piece in enumerate(split_lines(run_dir))]
    futures = [pool.submit(_write_part, part, run_dir, summary, piece) for part, piece in parts]

    def finish() -> Path:
        path = run_dir / NAME
        try:
            for f in futures:
                f.result()
            with atomic_text(path) as fh:
                fh.writelines(_head(summary))
                fh.flush()
                for part, _ in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, fh.buffer)  # type: ignore[attr-defined]
                fh.write("</dfxml>\n")
        finally:
            for part, _ in parts:
                part.unlink(missing_ok=True)
        return path

    return finish


def _write_part(part: Path, run_dir: Path, summary: dict[str, Any],
                piece: tuple[int, int | None, int, int]) -> None:
    try:
        with open(part, "w", encoding="utf-8", newline="") as fh:
            _body(fh, run_dir, summary, *piece)
    except OSError as e:
        raise OutputError(f"{part}: cannot write ({e.strerror or e})") from None


def _body(fh: TextIO, run_dir: Path, summary: dict[str, Any], start: int, end: int | None,
          first_line: int, records_before: int) -> None:
    partitions = partition_numbers(summary)
    label = Labels(summary)
    algs = list(summary.get("options", {}).get("algorithms") or DFXML_HASHES)
    volumes: dict[tuple[str, int, str], _Volume] = {}
    records = iter_records(run_dir, start, end, first_line)
    for n, record in enumerate(records, records_before + 1):
        key = (record.get("evidence", ""), record.get("volume_offset", 0),
               record.get("fs_type", ""))
        volume = volumes.get(key)
        if volume is None:
            volume = volumes[key] = _Volume(record, partitions.get(key[:2]))
        fh.write(fileobject(record, n, volume, algs, label))
