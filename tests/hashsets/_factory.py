"""Benign test material: every digest is hashlib over bytes the tests make up ("file-1", ...)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

VICS_1_MEDIA = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media"
VICS_1_CASES = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Cases"
VICS_2_MEDIA = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media"
VICS_2_CASES = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/UK/$metadata#Cases"


def content(n: int) -> bytes:
    """The made-up "file" whose digests stand in for set entries."""
    return f"file-{n}".encode()


def hexdigest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def md5(n: int) -> str:
    return hexdigest("md5", content(n))


def sha1(n: int) -> str:
    return hexdigest("sha1", content(n))


def sha256(n: int) -> str:
    return hexdigest("sha256", content(n))


def raw(hex_digest: str) -> bytes:
    return bytes.fromhex(hex_digest)


EMPTY_MD5 = hexdigest("md5", b"")
EMPTY_SHA1 = hexdigest("sha1", b"")
EMPTY_SHA256 = hexdigest("sha256", b"")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def vics(context: str, value: list[object], context_key: str | None = None) -> str:
    """A VICS document; the context key follows the version (1.x ``odata.metadata``, 2.0 ``@odata.context``)."""
    key = context_key or ("@odata.context" if "/2.0.xml/" in context else "odata.metadata")
    return json.dumps({key: context, "value": value})


# -- SQLite fixtures: the published schemas, filled with made-up rows ------------------------

RDS3_MINIMAL_SCHEMA = """
CREATE TABLE FILE (sha256 VARCHAR NOT NULL, sha1 VARCHAR NOT NULL, md5 VARCHAR NOT NULL,
                   crc32 VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_size INTEGER NOT NULL,
                   package_id INTEGER NOT NULL);
CREATE TABLE PKG (package_id INTEGER, name VARCHAR, version VARCHAR, operating_system_id INTEGER,
                  manufacturer_id INTEGER, language VARCHAR, application_type VARCHAR);
CREATE TABLE OS (operating_system_id INTEGER, name VARCHAR, version VARCHAR, manufacturer_id INTEGER);
CREATE TABLE MFG (manufacturer_id INTEGER, name VARCHAR);
CREATE TABLE VERSION (version VARCHAR, build_set VARCHAR, build_date TIMESTAMP, release_date TIMESTAMP,
                      description VARCHAR);
CREATE VIEW DISTINCT_HASH AS SELECT DISTINCT sha256, sha1, md5, crc32 FROM FILE;
"""

# The full flavour keeps the hashes in a table and emulates the RDS 2.x files with views.
RDS3_FULL_SCHEMA = """
CREATE TABLE METADATA (sha256 VARCHAR, sha1 VARCHAR, md5 VARCHAR, crc32 VARCHAR, file_name VARCHAR,
                       file_size INTEGER, package_id INTEGER, extension VARCHAR);
CREATE VIEW FILE AS SELECT sha1 AS "SHA-1", md5 AS "MD5", crc32 AS "CRC32", file_name AS "FileName",
                           file_size AS "FileSize", package_id AS "ProductCode" FROM METADATA;
CREATE TABLE PKG (package_id INTEGER, name VARCHAR);
"""

KDB_SCHEMA = """
CREATE TABLE db_properties (name TEXT NOT NULL, value TEXT);
CREATE TABLE hashes (id INTEGER PRIMARY KEY AUTOINCREMENT, md5 BINARY(16) UNIQUE, sha1 BINARY(20), sha2_256 BINARY(32));
CREATE TABLE file_names (name TEXT NOT NULL, hash_id INTEGER NOT NULL, PRIMARY KEY(name, hash_id));
CREATE TABLE comments (comment TEXT NOT NULL, hash_id INTEGER NOT NULL, PRIMARY KEY(comment, hash_id));
CREATE INDEX md5_index ON hashes(md5);
"""


def sqlite_db(path: Path, schema: str, rows: dict[str, list[tuple]]) -> Path:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.executescript(schema)
    for table, values in rows.items():
        if values:
            marks = ",".join("?" * len(values[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    conn.commit()
    conn.close()
    return path


def rds3_row(n: int, size: int = 100) -> tuple:
    return (sha256(n).upper(), sha1(n).upper(), md5(n).upper(), "DEADBEEF", f"f{n}.dll", size, 1)
