"""Import piecewise MD5 block hashes written by ``md5deep -p SIZE`` / ``hashdeep -p SIZE``.

Three forms are read (detected by content):

- md5deep text: ``<md5>  <path> offset <start>-<end>`` per piece;
- hashdeep text: ``%%%% HASHDEEP-1.0`` header, a ``%%%% size,md5,...,filename`` column line,
  ``##`` comments, then ``<size>,<md5>,...,<path> offset <start>-<end>``;
- DFXML (``md5deep -d -p``, ``hashdeep -d -p``): ``<fileobject>`` with ``<filename>``,
  ``<filesize>``, ``<byte_run file_offset= len=>`` holding ``<hashdigest type='MD5'>``, and the
  whole file's MD5 (and SHA-1 when hashed) as ``hashdigest`` children of the fileobject.

Why: earlier block-hash work (NPS hashdb, bulk_extractor) and labs' existing lists use this
form; the set's digest is then ``md5``. What the piecewise form cannot tell: the bytes, so the
``pattern`` and ``low-entropy`` rules cannot be applied -- only ``constant`` blocks are dropped
(their MD5 is known: 256 values per block size) --, and the text forms give no whole-file MD5
or SHA-1 (the file table records them as unknown; ``--categories-from`` needs DFXML).

Pieces of one file may be interleaved with other files' (md5deep hashes files on several
threads): rows go into the external sort keyed by (digest, file id, block number), and the
global block numbers are assigned once every file's length is known. Memory: the sort buffers
plus one small record per file.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triage.blocks.build import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_MAX_FILES,
    EXCLUDED_G,
    Builder,
    categories_from,
    check_block_size,
    hash_file,
    reference_files,
    sort_budget,
    source_meta,
)
from triage.blocks.tbs import BlockSetError
from triage.hashsets.store import EntryStore

_MD5DEEP = re.compile(r"^([0-9a-fA-F]{32})  (.*) offset (\d+)-(\d+)$")
_OFFSET = re.compile(r"^(.*) offset (\d+)-(\d+)$")
_NO_FILE = 0xFFFFFFFF
MAX_LINE = 1 << 16


@dataclass
class _File:
    name: str
    fid: int  # order of first appearance
    size: int = 0  # largest piece end seen, or <filesize>
    blocks: int = 0  # full pieces: highest full block number + 1
    md5: bytes = b""
    sha1: bytes = b""
    partial: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


Piece = tuple[str, int, int, bytes]  # file name, offset, length, md5


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, 1):
            if len(raw) > MAX_LINE:
                raise BlockSetError(f"{path}:{number}: line longer than {MAX_LINE} bytes")
            yield number, raw.decode("utf-8", errors="surrogateescape").rstrip("\r\n")


def _md5deep_text(path: Path) -> Iterator[Piece]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        m = _MD5DEEP.match(line)
        if not m:
            raise BlockSetError(f"{path}:{number}: not an md5deep -p line "
                                "('<md5>  <path> offset <start>-<end>')")
        start, end = int(m.group(3)), int(m.group(4))
        if end < start:
            raise BlockSetError(f"{path}:{number}: offset range {start}-{end} is backwards")
        yield m.group(2), start, end - start + 1, bytes.fromhex(m.group(1))


def _hashdeep_text(path: Path) -> Iterator[Piece]:
    columns: list[str] | None = None
    for number, line in _lines(path):
        if line.startswith("%%%% "):
            text = line[5:].strip()
            if not text.startswith("HASHDEEP"):
                columns = [c.strip() for c in text.split(",")]
            continue
        if line.startswith("##") or not line.strip():
            continue
        if columns is None or "md5" not in columns or columns[-1] != "filename":
            raise BlockSetError(f"{path}:{number}: hashdeep file without an md5 column "
                                "(make it with hashdeep -c md5 -p SIZE)")
        parts = line.split(",", len(columns) - 1)
        m = _OFFSET.match(parts[-1]) if len(parts) == len(columns) else None
        digest = parts[columns.index("md5")] if m else ""
        if not m or not re.fullmatch(r"[0-9a-fA-F]{32}", digest):
            raise BlockSetError(f"{path}:{number}: not a hashdeep -p line")
        start, end = int(m.group(2)), int(m.group(3))
        if end < start:
            raise BlockSetError(f"{path}:{number}: offset range {start}-{end} is backwards")
        yield m.group(1), start, end - start + 1, bytes.fromhex(digest)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _dfxml(path: Path, files: dict[str, _File]) -> Iterator[Piece]:
    """DFXML fileobjects; the whole file's MD5/SHA-1 and size are stored into ``files``.

    Only a ``hashdigest`` directly inside ``fileobject`` is the whole file's (those inside a
    ``byte_run`` are the pieces'), hence the stack of open elements.
    """
    stack: list[str] = []
    name: str | None = None
    size: int | None = None
    whole: dict[str, bytes] = {}
    pending: list[tuple[int, int, bytes]] = []
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            tag = _local(elem.tag)
            if event == "start":
                stack.append(tag)
                if tag == "fileobject":
                    name, size, whole, pending = None, None, {}, []
                continue
            stack.pop()
            parent = stack[-1] if stack else ""
            if tag == "filename" and parent == "fileobject":
                name = elem.text or ""
            elif tag == "filesize" and parent == "fileobject":
                size = int((elem.text or "").strip())
            elif tag == "byte_run" and parent == "fileobject":
                digest = next((c.text for c in elem if _local(c.tag) == "hashdigest"
                               and c.get("type", "").lower() == "md5"), None)
                if digest is None:
                    raise BlockSetError(f"{path}: a byte_run without an MD5 hashdigest")
                pending.append((int(elem.get("file_offset", "")), int(elem.get("len", "")),
                                bytes.fromhex(digest.strip())))
                elem.clear()
            elif tag == "hashdigest" and parent == "fileobject":
                whole[elem.get("type", "").lower()] = bytes.fromhex((elem.text or "").strip())
            elif tag == "fileobject":
                if name is None:
                    raise BlockSetError(f"{path}: a fileobject without a filename")
                for offset, length, digest in pending:
                    yield name, offset, length, digest
                record = files.get(name)
                if record is not None:
                    md5, sha1 = whole.get("md5", b""), whole.get("sha1", b"")
                    record.md5 = md5 if len(md5) == 16 else b""
                    record.sha1 = sha1 if len(sha1) == 20 else b""
                    if size is not None:
                        record.size = max(record.size, size)
                elem.clear()
    except ET.ParseError as exc:
        raise BlockSetError(f"{path}: not valid DFXML ({exc})") from None
    except ValueError as exc:
        raise BlockSetError(f"{path}: bad value in DFXML ({exc})") from None


def _pieces(path: Path, files: dict[str, _File]) -> Iterator[Piece]:
    try:
        with open(path, "rb") as stream:
            head = stream.read(4096).lstrip()
    except OSError as exc:
        raise BlockSetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if head.startswith(b"<"):
        return _dfxml(path, files)
    if head.startswith(b"%%%% HASHDEEP"):
        return _hashdeep_text(path)
    return _md5deep_text(path)


def _first_length(path: Path) -> int:
    """The piece size of a file: its first piece's length (md5deep -p SIZE writes SIZE)."""
    for _, _, length, _ in _pieces(path, {}):
        return length
    raise BlockSetError(f"{path}: no piecewise hashes in it")


def import_piecewise(sources: list[Path], out: Path, *, name: str | None = None,
                     category: str | None = None, categories_from_set: Path | None = None,
                     block_size: int | None = None, max_files: int = DEFAULT_MAX_FILES,
                     exclude: list[Path] | None = None,
                     budget: int | None = None) -> dict[str, Any]:
    """Piecewise MD5 hashes into a ``.tbs`` with digest md5; returns the written header."""
    if category is not None and categories_from_set is not None:
        raise BlockSetError("--category and --categories-from exclude each other")
    if block_size is None:
        block_size = _first_length(sources[0]) if sources else DEFAULT_BLOCK_SIZE
    check_block_size(block_size)
    constant = {hashlib.md5(bytes([v]) * block_size).digest() for v in range(256)}
    files: dict[str, _File] = {}
    order: list[_File] = []
    store = EntryStore(budget=budget or sort_budget(), tmpdir=Path(out).absolute().parent)
    builder = Builder(block_size=block_size, digest="md5", max_files=max_files,
                      tmpdir=Path(out).absolute().parent, budget=budget)
    try:
        batch = bytearray()
        for source in sources:
            for fname, offset, length, digest in _pieces(source, files):
                record = files.get(fname)
                if record is None:
                    if len(files) >= _NO_FILE:
                        raise BlockSetError("too many files")
                    record = files[fname] = _File(fname, len(order))
                    order.append(record)
                fid = record.fid
                record.size = max(record.size, offset + length)
                if length > block_size or offset % block_size:
                    raise BlockSetError(f"{source}: a piece of {length} bytes at offset {offset}: "
                                        f"not piecewise hashes of {block_size}-byte blocks "
                                        "(see --block-size)")
                if length < block_size:
                    record.partial = 1
                    continue
                index = offset // block_size
                record.blocks = max(record.blocks, index + 1)
                if digest in constant:
                    record.dropped["constant"] += 1
                    continue
                batch += digest + fid.to_bytes(4, "big") + index.to_bytes(4, "big")
                if len(batch) >= 24 << 16:
                    _flush(store, batch)
        for file, _ in reference_files(exclude or []):
            try:
                hashed = hash_file(file, block_size, "md5", whole=False, filter_weak=False)
            except OSError as exc:
                raise BlockSetError(f"--exclude {file}: cannot read: {exc.strerror or exc}") from None
            builder.stats["exclude_files"] += 1
            builder.stats["exclude_blocks"] += len(hashed.digests)
            for digest in hashed.digests:
                batch += digest.tobytes() + _NO_FILE.to_bytes(4, "big") + bytes(4)
            if len(batch) >= 24 << 16:
                _flush(store, batch)
        _flush(store, batch)
        if not order:
            raise BlockSetError("no piecewise hashes in " + ", ".join(map(str, sources)))
        category_of = categories_from(categories_from_set) if categories_from_set else None
        new_index = np.full(len(order), -1, dtype=np.int64)
        seen: set[bytes] = set()
        for fid, record in enumerate(order):
            if record.md5 and record.md5 in seen:
                builder.stats["duplicate_files"] += 1
                continue
            if record.md5:
                seen.add(record.md5)
            cat = category
            if category_of is not None:
                cat = category_of(record.md5, record.sha1)
                if cat is None:
                    builder.stats["uncategorised_files"] += 1
            dropped = Counter(record.dropped)
            dropped["partial"] += record.partial
            new_index[fid] = builder.stats["files"]
            builder.add_hashed(record.name, record.size, record.blocks,
                               np.zeros((0, 16), np.uint8), np.zeros(0, np.int64),
                               record.md5, record.sha1, cat, dropped)
        starts = np.array(builder.starts, dtype=np.int64)
        finished = store.finish()
        blocks = finished.blocks("pieces") if finished.algorithms else iter(())
        meta = {"name": name or Path(out).stem, "low_entropy_values": None,
                "source": source_meta(builder, "piecewise", [], [str(s) for s in sources])}
        return builder.write(Path(out), meta, _converted(blocks, new_index, starts))
    finally:
        store.close()
        builder.close()


def _flush(store: EntryStore, batch: bytearray) -> None:
    if batch:
        store.add("pieces", np.frombuffer(bytes(batch), dtype="S24"), 0)
        batch.clear()


def _converted(blocks: Iterator[Any], new_index: np.ndarray, starts: np.ndarray) -> Iterator[np.ndarray]:
    """(digest, file id, block) rows -> (digest, g) rows; rows of skipped files go."""
    for block in blocks:
        rows = block.keys.view(np.uint8).reshape(-1, 24)
        fid = np.ascontiguousarray(rows[:, 16:20]).view(">u4").reshape(-1).astype(np.int64)
        idx = np.ascontiguousarray(rows[:, 20:24]).view(">u4").reshape(-1).astype(np.int64)
        excl = fid == _NO_FILE
        f = np.where(excl, 0, new_index[np.minimum(fid, len(new_index) - 1)])
        keep = excl | (f >= 0)
        g = np.where(excl, EXCLUDED_G, starts[np.maximum(f, 0)] + idx)
        out = np.empty((int(keep.sum()), 20), dtype=np.uint8)
        out[:, :16] = rows[keep, :16]
        out[:, 16:] = g[keep].astype(">u4").view(np.uint8).reshape(-1, 4)
        yield out
