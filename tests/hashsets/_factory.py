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
