"""Command-line options derived from the run's description (``triage.config``).

``triage scan`` and ``triage lab submit`` do not declare their scan options one by one: each
field of ``ScanConfig`` that has a flag becomes a typer option with its help text, metavar and
default, and the parsed values become the fields' values again (``values_from``). A new option is
declared once, in ``triage.config``, and is on both commands, in summary.json and in --resume.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar, get_origin

import typer

from triage.config import CASE, INPUT, OPTIONS, PLACE, Field, fields

F = TypeVar("F", bound=Callable[..., Any])

# Shown in --help in this order: what is examined and matched, where it goes, how, by whom.
GROUP_ORDER = (INPUT, PLACE, OPTIONS, CASE)


def _cli_type(f: Field) -> Any:
    """A comma list or a choice is typed as text (split and checked by the run)."""
    return str if f.comma or get_origin(f.type) in (tuple, Literal) else f.type


def _cli_default(f: Field) -> Any:
    if f.comma:
        return ",".join(f.default)
    return f.default


def option_fields(lab: bool = False, skip: Iterable[str] = ()) -> list[Field]:
    """The description's fields that are command-line options, in --help order."""
    skipped = set(skip)
    chosen = [f for f in fields() if f.flag and f.name not in skipped and (f.lab or not lab)]
    return sorted(chosen, key=lambda f: GROUP_ORDER.index(f.group))


def with_options(chosen: list[Field], *, before: int) -> Callable[[F], F]:
    """Give the decorated command the ``chosen`` options after its first ``before`` parameters
    (its own options follow them); the command receives them in ``**options``."""

    def decorate(func: F) -> F:
        own = list(inspect.signature(func, eval_str=True).parameters.values())
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.name != "ctx" else p
               for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
        derived = [inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[_cli_type(f), typer.Option(
                f.flag, help=f.help, metavar=f.metavar)],
            default=_cli_default(f)) for f in chosen]
        func.__signature__ = inspect.Signature(own[:before] + derived + own[before:])  # type: ignore[attr-defined]
        return func

    return decorate


def values_from(chosen: list[Field], given: dict[str, Any]) -> dict[str, Any]:
    """The parsed command-line values as the description's field values."""
    out: dict[str, Any] = {}
    for f in chosen:
        value = given[f.name]
        if f.comma:
            value = tuple(v.strip() for v in value.split(","))
        elif isinstance(value, (list, tuple)):
            value = list(value)
        out[f.name] = value
    return out
