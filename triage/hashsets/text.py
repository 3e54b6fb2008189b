"""Line-oriented hash lists: md5sum/sha1sum/sha256sum output and hashdeep files."""

from __future__ import annotations

import re
from pathlib import Path

from triage.hashsets._base import first_line, head_text, numbered_lines, open_text
from triage.hashsets._builder import HashSetBuilder, parse_size, shorten

# GNU form (optionally "\"-escaped) or a bare hash: 32/40/64 hex digits, then whitespace or end.
_GNU_LINE = re.compile(r"\\?(?:[0-9a-f]{64}|[0-9a-f]{40}|[0-9a-f]{32})(?:[ \t]|$)", re.IGNORECASE)
# BSD / --tag form: "MD5 (name) = hex". The tag itself is validated separately.
_BSD_TAG = re.compile(r"([A-Za-z][A-Za-z0-9-]*) \(")
_BSD_LINE = re.compile(r"(?:MD5|SHA-?1|SHA-?256) \(.*\) = [0-9a-f]+\s*$", re.IGNORECASE)
_BSD_ALGORITHMS = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256"}


def _significant_lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


class Md5sumParser:
    """``md5sum``-family output, BSD ``--tag`` lines and bare one-hash-per-line lists."""

    id = "md5sum"
    description = "md5sum/sha1sum/sha256sum lines (GNU or BSD tag form) or one hash per line"

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        if text is None:
            return False
        lines = _significant_lines(text)
        if not lines:
            return False
        return bool(_GNU_LINE.match(lines[0]) or _BSD_LINE.match(lines[0]))

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        with open_text(path) as stream:
            for lineno, line in numbered_lines(stream, builder):
                line = line.strip()
                if line and not line.startswith("#"):
                    self._line(builder, lineno, line)

    @staticmethod
    def _line(builder: HashSetBuilder, lineno: int, line: str) -> None:
        tag = _BSD_TAG.match(line)
        if tag:
            algorithm = _BSD_ALGORITHMS.get(tag.group(1).upper().replace("-", ""))
            if algorithm is None:
                builder.malformed(lineno, f"unsupported algorithm {shorten(tag.group(1))}")
                return
            # The name may itself contain ") = ", so the digest follows the last one.
            cut = line.rfind(") = ")
            if cut < 0:
                builder.malformed(lineno, f"BSD-style line without ') = ': {shorten(line)}")
                return
            builder.add(lineno, [(algorithm, line[cut + 4 :])])
            return
        if line.startswith("\\"):  # GNU escapes names with "\" or newline this way
            line = line[1:]
        fields = line.split(None, 1)
        builder.add(lineno, [(None, fields[0] if fields else None)], missing="no hash after '\\'")


# hashdeep algorithm names; unsupported ones (tiger, whirlpool) are read past, not loaded.
_HASHDEEP_ALGORITHMS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256"}


class HashdeepParser:
    """hashdeep / md5deep ``-c`` audit files: ``%%%% size,<algs>,filename`` then CSV-ish lines."""

    id = "hashdeep"
    description = "hashdeep file (%%%% HASHDEEP-1.0)"

    def detect(self, head: bytes, path: Path) -> bool:
        text = head_text(head)
        return text is not None and first_line(text).strip().upper() == "%%%% HASHDEEP-1.0"

    def parse(self, path: Path, builder: HashSetBuilder) -> None:
        columns: list[str] | None = None
        with open_text(path) as stream:
            for lineno, line in numbered_lines(stream, builder):
                if not line.strip():
                    continue
                if line.startswith("%%%%"):
                    columns = self._header(builder, lineno, line[4:].strip(), columns)
                elif line.startswith("#"):
                    continue
                elif columns is None:
                    builder.malformed(lineno, "data line before the '%%%% size,...' header")
                else:
                    self._line(builder, lineno, line, columns)

    @staticmethod
    def _header(
        builder: HashSetBuilder, lineno: int, body: str, columns: list[str] | None
    ) -> list[str] | None:
        if body.upper().startswith("HASHDEEP-"):
            return columns
        names = [name.strip().lower() for name in body.split(",")]
        if len(names) < 3 or names[0] != "size" or names[-1] != "filename":
            raise builder.fail(lineno, f"unrecognised hashdeep header {shorten(body)}")
        if not any(name in _HASHDEEP_ALGORITHMS for name in names[1:-1]):
            raise builder.fail(lineno, f"no md5, sha1 or sha256 column in {shorten(body)}")
        return names

    @staticmethod
    def _line(builder: HashSetBuilder, lineno: int, line: str, columns: list[str]) -> None:
        # Split only len(columns)-1 times: the file name is last and may contain commas.
        fields = line.split(",", len(columns) - 1)
        if len(fields) < len(columns):
            builder.malformed(
                lineno, f"expected {len(columns)} comma-separated fields: {shorten(line)}"
            )
            return
        try:
            size = parse_size(fields[0])
        except ValueError:
            builder.malformed(lineno, f"size {shorten(fields[0])} is not a number")
            return
        if size is None:
            builder.malformed(lineno, "empty size field")
            return
        hashes = []
        for name, value in zip(columns[1:-1], fields[1:-1]):
            if not value.strip():
                builder.malformed(lineno, f"empty {name} field")
                return
            if name in _HASHDEEP_ALGORITHMS:
                hashes.append((_HASHDEEP_ALGORITHMS[name], value))
        builder.add(lineno, hashes, None, size)
