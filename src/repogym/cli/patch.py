"""SEARCH/REPLACE patch commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from repogym.cli.common import app, console, read_text_arg

if TYPE_CHECKING:
    pass


patch_app = typer.Typer(help="Check or apply SEARCH/REPLACE patches.", no_args_is_help=True)
app.add_typer(patch_app, name="patch")


@patch_app.command("check")
def patch_check(
    patch: str = typer.Argument(..., help="Patch file ('-' for standard input)."),
    repo: Path = typer.Option(Path("."), "--repo", help="Directory the patch's paths are relative to."),
) -> None:
    """Say whether every block of a patch applies, without changing any file."""
    from repogym import patches

    blocks = patches.parse(read_text_arg(patch))
    result = patches.apply(blocks, repo, dry_run=True)
    _report_patch(blocks, result, "would change")


@patch_app.command("apply")
def patch_apply(
    patch: str = typer.Argument(..., help="Patch file ('-' for standard input)."),
    repo: Path = typer.Option(Path("."), "--repo", help="Directory the patch's paths are relative to."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and report, change nothing."),
    show_diff: bool = typer.Option(False, "--diff", help="Print the change as a unified git diff."),
) -> None:
    """Apply a SEARCH/REPLACE patch: every block or none."""
    from repogym import patches

    blocks = patches.parse(read_text_arg(patch))
    result = patches.apply(blocks, repo, dry_run=dry_run)
    _report_patch(blocks, result, "would change" if dry_run else "changed")
    if show_diff:
        sys.stdout.write(patches.unified_diff(result))


def _report_patch(blocks: list, result: object, verb: str) -> None:
    from repogym.patches import ApplyResult

    assert isinstance(result, ApplyResult)
    fallback = dict(result.fallbacks)
    for n, b in enumerate(blocks, 1):
        how = f"applies, ignoring {fallback[n]}" if n in fallback else "applies"
        console.print(f"block {n} ({b.path}): {how}")
    console.print(f"{len(blocks)} block(s) apply; {verb} {len(result.files)} file(s): {', '.join(result.files)}")
