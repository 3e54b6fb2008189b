"""``triage blockset ...``: build a block set (``.tbs``) from reference files or piecewise
hashes, subtract one from another, describe one.

Mounted by ``triage.cli`` as ``app.add_typer(blockset_app, name="blockset")``. User errors are
``TriageError``s (``BlockSetError``: exit 2), which ``triage.cli.main`` turns into one line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from triage.blocks.build import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_MAX_FILES,
    build_blockset,
    subtract_blocksets,
)
from triage.blocks.tbs import BlockSet, BlockSetError
from triage.reports._escape import escape, json_safe

blockset_app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Block sets (.tbs): block hashes of reference files, for triage sample and scan --blockset.",
)


def _out(text: str = "") -> None:
    """One line; names and category codes come from reference data and are escaped."""
    sys.stdout.write(escape(text) + "\n")


def _check_out(out: Path, force: bool) -> None:
    if out.suffix.lower() != ".tbs":
        raise BlockSetError(f"--out {out}: the block set file name must end in .tbs")
    if out.exists() and not force:
        raise BlockSetError(f"--out {out} exists (use --force to replace it)")


def _progress() -> Any:
    """A progress line on a terminal (a build of 10 GB takes a minute or more)."""
    last = [0.0]

    def show(files: int, size: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1:
            last[0] = now
            sys.stderr.write(f"\rhashed {files:,} reference files, {size / 1e9:.2f} GB")
            sys.stderr.flush()

    return show


def _summary(out: Path, header: dict[str, Any], seconds: float) -> None:
    dropped = ", ".join(f"{k} {v:,}" for k, v in header["dropped"].items() if v) or "none"
    src = header["source"]
    _out(f"wrote {out}: {header['name']}, {header['rows']:,} blocks ({header['entries']:,} "
         f"distinct) of {header['block_size']} B, {header['digest']}, from {src['files']:,} "
         f"files ({src['blocks']:,} blocks) in {seconds:.1f} s")
    _out(f"dropped blocks: {dropped}")


@blockset_app.command()
def build(
    paths: Annotated[list[Path] | None, typer.Argument(metavar="PATH", show_default=False,
                     help="Reference files or folders.")] = None,
    out: Annotated[Path, typer.Option("--out", metavar="NAME.tbs", show_default=False,
                   help="The block set to write.")] = Path(),
    category: Annotated[str | None, typer.Option("--category", metavar="C", help="Category of every reference file.")] = None,
    categories_from: Annotated[Path | None, typer.Option("--categories-from", metavar="HASHSET", help="Take each file's category from this hash set, by the file's MD5 or SHA-1.")] = None,
    block_size: Annotated[int | None, typer.Option("--block-size", metavar="N", help=f"Block size in bytes (default {DEFAULT_BLOCK_SIZE}; with --from-piecewise: the file's).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Set name shown in hits (default: --out's stem).")] = None,
    exclude: Annotated[list[Path] | None, typer.Option("--exclude", metavar="PATH", help="Known-innocent files or folders: their blocks are removed (repeat).")] = None,
    max_files: Annotated[int, typer.Option("--max-files", metavar="N", help="Drop a block found in more than N distinct reference files.")] = DEFAULT_MAX_FILES,
    digest: Annotated[str, typer.Option("--digest", metavar="NAME", help="xxh3-128 or md5.")] = "xxh3-128",
    from_piecewise: Annotated[list[Path] | None, typer.Option("--from-piecewise", metavar="FILE", help="Import md5deep/hashdeep -p output (text or DFXML) instead of reading files (repeat).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Cut reference files into blocks, keep the distinct ones, write NAME.tbs."""
    if out == Path():
        raise BlockSetError("--out NAME.tbs is required")
    _check_out(out, force)
    started = time.monotonic()
    if from_piecewise:
        from triage.blocks.import_hashdeep import import_piecewise

        if paths:
            raise BlockSetError("give either reference PATHs or --from-piecewise, not both")
        header = import_piecewise(from_piecewise, out, name=name, category=category,
                                  categories_from_set=categories_from, block_size=block_size,
                                  max_files=max_files, exclude=exclude or [])
    else:
        if not paths:
            raise BlockSetError("no reference PATH given")
        header = build_blockset(list(paths), out, name=name, category=category,
                                categories_from_set=categories_from,
                                block_size=block_size or DEFAULT_BLOCK_SIZE, digest=digest,
                                max_files=max_files, exclude=exclude or [],
                                progress=_progress() if sys.stderr.isatty() else None)
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")
    _summary(out, header, time.monotonic() - started)


@blockset_app.command("import")
def import_(
    sources: Annotated[list[Path], typer.Argument(metavar="FILE...", show_default=False, help="md5deep/hashdeep -p output (text or DFXML).")],
    out: Annotated[Path, typer.Option("--out", metavar="NAME.tbs", show_default=False, help="The block set to write.")],
    category: Annotated[str | None, typer.Option("--category", metavar="C", help="Category of every file.")] = None,
    categories_from: Annotated[Path | None, typer.Option("--categories-from", metavar="HASHSET", help="Category by each file's MD5 (DFXML gives it; the text forms do not).")] = None,
    block_size: Annotated[int | None, typer.Option("--block-size", metavar="N", help="Piece size (default: read from the file).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Set name (default: --out's stem).")] = None,
    exclude: Annotated[list[Path] | None, typer.Option("--exclude", metavar="PATH", help="Known-innocent files or folders (hashed with MD5).")] = None,
    max_files: Annotated[int, typer.Option("--max-files", metavar="N", help="Drop a block found in more than N distinct files.")] = DEFAULT_MAX_FILES,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Same as build --from-piecewise FILE...: piecewise MD5 block hashes into NAME.tbs."""
    from triage.blocks.import_hashdeep import import_piecewise

    _check_out(out, force)
    started = time.monotonic()
    header = import_piecewise(sources, out, name=name, category=category,
                              categories_from_set=categories_from, block_size=block_size,
                              max_files=max_files, exclude=exclude or [])
    _summary(out, header, time.monotonic() - started)


@blockset_app.command()
def subtract(
    a: Annotated[Path, typer.Argument(metavar="A.tbs", show_default=False, help="The set to keep blocks of.")],
    b: Annotated[Path, typer.Argument(metavar="B.tbs", show_default=False, help="Blocks to remove (e.g. built from innocent files).")],
    out: Annotated[Path, typer.Option("--out", metavar="C.tbs", show_default=False, help="The block set to write.")],
    name: Annotated[str | None, typer.Option("--name", help="Set name (default: --out's stem).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Write A's blocks that do not occur in B."""
    _check_out(out, force)
    started = time.monotonic()
    header = subtract_blocksets(a, b, out, name=name)
    _out(f"wrote {out}: {header['name']}, {header['rows']:,} blocks "
         f"({header['dropped'].get('subtracted', 0):,} subtracted) in "
         f"{time.monotonic() - started:.1f} s")


@blockset_app.command()
def info(
    path: Annotated[Path, typer.Argument(metavar="X.tbs", show_default=False, help="A block set.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
    files: Annotated[bool, typer.Option("--files", help="List every reference file.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Do not re-hash the data sections (reading the whole file).")] = False,
) -> None:
    """Counts, block size, digest, categories, files, dropped blocks by reason; the data's
    SHA-256 is re-computed and compared (exit 2 when it differs)."""
    with BlockSet.open(path) as bs:
        desc = bs.info(verify=not no_verify)
        if files:
            desc["file_list"] = [dict(vars(bs.file(i)), blocks=int(bs.file_blocks[i]))
                                 for i in range(bs.n_files)]
    if json_out:
        sys.stdout.write(json_safe(json.dumps(desc, ensure_ascii=False, indent=2)) + "\n")
    else:
        _print_info(desc)
    if desc.get("problem"):
        raise BlockSetError(f"block set {path}: {desc['problem']}")


def _print_info(d: dict[str, Any]) -> None:
    _out(f"{d['name']}  (block set, format v{d['format_version']})")
    _out(f"  blocks      {d['blocks']:,} ({d['entries']:,} distinct) of {d['block_size']} B, "
         f"digest {d['digest']}")
    src = d["source"]
    _out(f"  files       {d['files']:,} reference files ({d['files_with_blocks']:,} with kept "
         f"blocks), {src['bytes']:,} bytes, {src['blocks']:,} full blocks"
         + (f"; {src['duplicate_files']:,} duplicate files skipped" if src.get("duplicate_files") else ""))
    cats = ", ".join(f"{'(uncategorised)' if k == 'null' else k} {v:,}"
                     for k, v in d["categories"].items()) or "none"
    _out(f"  categories  {cats} (blocks)")
    dropped = ", ".join(f"{k} {v:,}" for k, v in d["dropped"].items()) or "none"
    _out(f"  dropped     {dropped}")
    if src.get("exclude_files"):
        _out(f"  excluded    {src['exclude_files']:,} innocent files ({src['exclude_blocks']:,} blocks)")
    rules = f"at most {d['max_files']} files per block"
    if d["low_entropy_values"] is None:
        rules += "; pattern and low-entropy rules not applied (built from piecewise hashes)"
    else:
        rules += f"; fewer than {d['low_entropy_values']} byte values is low-entropy"
    _out(f"  rules       {rules}")
    _out(f"  file        {d['file_bytes']:,} bytes ({d['bytes_per_block']} per block), "
         f"created {d['created']}")
    _out(f"  sha256      {d['sha256_recorded']} (data sections)")
    if "verified" in d:
        _out(f"  verified    {'yes' if d['verified'] else 'NO: ' + str(d['problem'])} "
             f"({d['verify_seconds']} s)")
    for f in d.get("file_list", []):
        _out(f"  {f['md5'] or '-':32}  {f['size']:>12,}  {f['blocks']:>9,}  "
             f"{f['category'] or '-'}  {f['name']}")
