"""Hash sets shipped as SQLite databases: NIST NSRL RDSv3 and TSK/Autopsy ``.kdb``.

Databases are opened read-only and ``immutable`` (no journal, no lock files next to evidence),
with ``trusted_schema`` off, and read by column *name*, so the minimal and full RDSv3 flavours
and older ``.kdb`` schemas all work. Rows stream with ``fetchmany`` into the batch path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from triage.errors import HashSetError
from triage.hashsets._builder import HashSetBuilder, shorten

MAGIC = b"SQLite format 3\x00"
_FETCH = 20_000
_HASH_NAMES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha2256": "sha256"}


def connect(path: Path) -> sqlite3.Connection:
    uri = f"{path.absolute().as_uri()}?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True)
    conn.execute("PRAGMA trusted_schema = OFF")
    return conn


def _open(path: Path, needed: tuple[str, ...], what: str) -> tuple[sqlite3.Connection, dict[str, str]]:
    """Connect and check the schema (for a forced ``--format`` on the wrong file, too)."""
    with open(path, "rb") as stream:
        if stream.read(len(MAGIC)) != MAGIC:
            raise HashSetError(f"hash set {path}: not a SQLite database, so not {what}")
    conn = connect(path)
    objects = _objects(conn)
    if not any(name in objects for name in needed):
        conn.close()
        raise HashSetError(f"hash set {path}: SQLite database without {' or '.join(needed)}: not {what}")
    return conn, objects


def _objects(conn: sqlite3.Connection) -> dict[str, str]:
    """Table and view names (lower case) -> their real name."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
    return {str(name).lower(): str(name) for (name,) in rows}


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """Normalised column name (case, '-', '_' ignored) -> real name."""
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return {str(r[1]).lower().replace("_", "").replace("-", ""): str(r[1]) for r in rows}


def _schema(head: bytes, path: Path) -> dict[str, str] | None:
    """Objects of a SQLite file, or None when it is not one (detection never raises)."""
    if not head.startswith(MAGIC):
        return None
    try:
        with closing(connect(path)) as conn:
            return _objects(conn)
    except (sqlite3.Error, OSError, ValueError):
        return None


def _hex(value: Any) -> Any:
    """BLOB digests (TSK) become hex; text passes; other types reach the slow path as they are."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


def _stream(cursor: sqlite3.Cursor) -> Iterator[list[tuple[Any, ...]]]:
    while rows := cursor.fetchmany(_FETCH):
        yield rows


def _read(builder: HashSetBuilder, conn: sqlite3.Connection, table: str, hashes: dict[str, str],
          size: str | None, label: str) -> None:
    """Stream ``hashes`` (alg -> column) and an optional size column of ``table`` into the builder."""
    algorithms = list(hashes)
    wanted = [hashes[a] for a in algorithms] + ([size] if size else [])
    select = ", ".join(f'"{c}"' for c in wanted)
    cursor = conn.execute(f'SELECT {select} FROM "{table}"')
    seen = 0
    for rows in _stream(cursor):
        base = seen
        columns = {alg: [_hex(r[i]) for r in rows] for i, alg in enumerate(algorithms)}
        sizes = None
        if size:
            sizes = [_size(r[-1]) for r in rows]

        def slow(i: int, rows: list[tuple[Any, ...]] = rows, base: int = base) -> None:
            where = f"{label} row {base + i + 1}"
            row = rows[i]
            if size and _size(row[-1]) == -1:
                builder.malformed(where, f"{size} {shorten(row[-1])} is not a non-negative integer")
                return
            pairs = []
            for j, alg in enumerate(algorithms):
                value = _hex(row[j])
                if value is not None and not isinstance(value, str):
                    builder.malformed(where, f"{hashes[alg]} {shorten(value)} is not text or a BLOB")
                    return
                pairs.append((alg, value))
            builder.add(where, pairs, None, _size(row[-1]) if size else None, missing="no hash value")

        builder.add_columns(columns, None, sizes, slow)
        seen += len(rows)


def _size(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        return int(value)
    return -1


class NsrlRds3Parser:
    """NIST NSRL RDSv3 SQLite (modern/legacy/android/iOS, minimal or full flavour).

    Reads ``FILE`` (a table in the minimal flavour, a view in the full one) by column name,
    keeping ``file_size``; falls back to the ``DISTINCT_HASH`` view when ``FILE`` has no hashes.
    """

    id = "nsrl-rds3"
    description = "NIST NSRL RDSv3 SQLite (FILE / DISTINCT_HASH, minimal or full flavour)"
    default_kind = "known-good"

    def detect(self, head: bytes, path: Path) -> bool:
        objects = _schema(head, path)
        return objects is not None and ("file" in objects or "distinct_hash" in objects)

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        conn, objects = _open(path, ("file", "distinct_hash"), "an NSRL RDSv3 database")
        with closing(conn):
            builder.info["rds_flavour"] = "minimal" if "distinct_hash" in objects else "full"
            if "version" in objects:
                builder.info["rds_version"] = _version(conn, objects["version"])
            for name in ("file", "distinct_hash"):
                if name not in objects:
                    continue
                table = objects[name]
                columns = _columns(conn, table)
                hashes = {alg: columns[key] for key, alg in _HASH_NAMES.items() if key in columns}
                if hashes:
                    size = columns.get("filesize")
                    builder.info["rds_table"] = table
                    _read(builder, conn, table, hashes, size, table)
                    return
            raise HashSetError(f"hash set {path}: NSRL RDSv3 database without md5/sha1/sha256 columns in FILE")


def _version(conn: sqlite3.Connection, table: str) -> str | None:
    try:
        row = conn.execute(f'SELECT * FROM "{table}" LIMIT 1').fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else " ".join(str(v) for v in row if v is not None)[:200]


class TskKdbParser:
    """TSK/Autopsy SQLite hash database (``.kdb``): ``hashes`` holds md5/sha1/sha2_256 BLOBs."""

    id = "tsk-kdb"
    description = "TSK/Autopsy SQLite hash database .kdb (tables hashes, file_names, db_properties)"

    def detect(self, head: bytes, path: Path) -> bool:
        objects = _schema(head, path)
        return objects is not None and "hashes" in objects and "db_properties" in objects

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        conn, objects = _open(path, ("hashes",), "a TSK/Autopsy .kdb")
        with closing(conn):
            try:
                props = conn.execute(f'SELECT name, value FROM "{objects["db_properties"]}"').fetchmany(50)
                builder.info["kdb_properties"] = {str(k): str(v) for k, v in props}
            except (KeyError, sqlite3.Error):
                pass  # properties are provenance only
            table = objects["hashes"]
            columns = _columns(conn, table)
            hashes = {alg: columns[key] for key, alg in _HASH_NAMES.items() if key in columns}
            if not hashes:
                raise HashSetError(f"hash set {path}: .kdb 'hashes' table has no md5/sha1/sha2_256 column")
            _read(builder, conn, table, hashes, None, "hashes")
