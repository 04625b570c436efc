"""`repogym view`: a static HTML report of a state dir and its eval runs."""

from __future__ import annotations

from pathlib import Path

import typer

from repogym.cli.common import app, console


@app.command("view")
def view(
    state_dir: Path = typer.Argument(..., help="A workflow state dir (tasks.jsonl, validated_tasks.jsonl, ...)."),
    eval_dir: list[Path] | None = typer.Option(None, "--eval", help="An eval output dir (repeatable)."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write."),
) -> None:
    """Write one self-contained HTML page (no network) to browse, filter and read the tasks and agents' attempts."""
    from repogym.view import build_report

    n = build_report(state_dir, eval_dir or [], out)
    console.print(
        f"wrote {out} ({n['bytes'] / 1e6:.1f} MB): {n['tasks']} task(s), {n['evals']} eval run(s), "
        f"{n['attempts']} attempt(s); open file://{out.resolve()}"
    )
