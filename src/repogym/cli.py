"""The `repogym` command: thin wrappers that build configs and call one library function each."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from repogym import __version__
from repogym.errors import RepogymError

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

app = typer.Typer(
    name="repogym",
    help="Turn a git repository into verified, executable coding tasks; run and score agents on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
patch_app = typer.Typer(help="Check or apply SEARCH/REPLACE patches.", no_args_is_help=True)
app.add_typer(patch_app, name="patch")


def _version(value: bool) -> None:
    if value:
        console.print(f"repogym {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """repogym: repository in, verified coding tasks out."""


def read_text_arg(path: str) -> str:
    """Read a file argument, or standard input for '-'."""
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.is_file():
        raise RepogymError(f"{path}: no such file")
    return p.read_text()


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


def main() -> None:
    """Console entry point: user errors become one line on stderr and their exit status."""
    try:
        app()
    except RepogymError as e:
        err.print(f"error: {e}", soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume")
        sys.exit(130)
