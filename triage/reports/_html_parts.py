"""The cells report.html is made of (escaping, numbers, tables) and its CSP, shared by
``html.py`` and ``html_blocks.py`` (which html.py imports) without an import circle."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from triage.reports._escape import escape

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'"


def e(value: Any) -> str:
    """Text for the page: name escaping, then HTML escaping; None shows as an em dash."""
    if value is None or value == "":
        return "&mdash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return html.escape(escape(str(value)), quote=True)


def num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else e(value)


def nb(value: Any) -> str:
    """A number inside wrapping text, never broken across lines (an offset cut in two reads
    as two numbers)."""
    return f"<span class=nb>{num(value)}</span>"


def kv(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def table(head: list[str], rows: Iterable[str], numeric: Iterable[int] = ()) -> str:
    nums = set(numeric)
    ths = "".join(f'<th{" class=n" if i in nums else ""}>{html.escape(h)}</th>'
                  for i, h in enumerate(head))
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
