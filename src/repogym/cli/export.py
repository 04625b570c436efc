"""Export commands: tasks in other harnesses' formats (SWE-bench instances, Harbor task folders, HF parquet)."""

from __future__ import annotations

from pathlib import Path

import typer

from repogym.cli.common import BACKEND_OPT, app, console, load_tasks, pick_backend, repo_resolver

export_app = typer.Typer(help="Export tasks to other harnesses' formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("swebench")
def export_swebench(
    validated: Path = typer.Option(..., "--validated", help="validated_tasks.jsonl"),
    tasks: Path | None = typer.Option(None, "--tasks", help="tasks.jsonl (descriptions, when not in V)."),
    output: Path = typer.Option(Path("swebench_instances.jsonl"), "--output", help="Instances JSONL."),
    git_dir: Path = typer.Option(Path("outputs/swebench.git"), "--git-dir", help="Bare repo of task-state commits."),
    repo: str | None = typer.Option(None, "--repo", help="Repository (default: each record's `repo`)."),
    backend: str | None = BACKEND_OPT,
) -> None:
    """Write tasks as SWE-bench instances; each task state is a sealed commit (branch) in --git-dir."""
    from repogym.export import export_swebench as run_export
    from repogym.records import append_record

    chosen = load_tasks(validated, tasks, None)
    resolve = repo_resolver(pick_backend(backend), repo)
    output.unlink(missing_ok=True)
    for rec, description in chosen:
        append_record(output, run_export(rec, description, *resolve(rec), git_dir))
    console.print(f"wrote {len(chosen)} instance(s) to {output}; base commits are branches of {git_dir}")
