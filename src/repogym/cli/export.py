"""Export commands: tasks in other harnesses' formats (SWE-bench instances, Harbor task folders, HF parquet)."""

from __future__ import annotations

from pathlib import Path

import typer

from repogym.cli.common import BACKEND_OPT, app, console, err, load_tasks, pick_backend, repo_resolver

export_app = typer.Typer(help="Export tasks to other harnesses' formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("swebench")
def export_swebench(
    validated: Path = typer.Option(..., "--validated", help="validated_tasks.jsonl"),
    tasks: Path | None = typer.Option(None, "--tasks", help="tasks.jsonl (descriptions, when not in V)."),
    output: Path = typer.Option(Path("swebench_instances.jsonl"), "--output", help="Instances JSONL."),
    git_dir: Path = typer.Option(
        Path("outputs/swebench-repos"), "--git-dir", help="Where each task state goes: GIT_DIR/<instance_id>.git."
    ),
    repo: str | None = typer.Option(None, "--repo", help="Repository (default: each record's `repo`)."),
    backend: str | None = BACKEND_OPT,
) -> None:
    """Write tasks as SWE-bench instances; each task state is a sealed one-commit repository under --git-dir."""
    from repogym.export import export_swebench as run_export
    from repogym.records import append_record

    chosen = load_tasks(validated, tasks, None)
    resolve = repo_resolver(pick_backend(backend), repo)
    output.unlink(missing_ok=True)
    for rec, description in chosen:
        append_record(output, run_export(rec, description, *resolve(rec), git_dir))
    console.print(
        f"wrote {len(chosen)} instance(s) to {output}; each base_commit is the one commit of "
        f"{git_dir}/<instance_id>.git (the sealed task state, no history)"
    )


STATE_DIR_ARG = typer.Argument(..., help="A workflow state dir; its tasks that passed all checks are exported.")
REPO_OPT = typer.Option(None, "--repo", help="Repository (default: each record's `repo`).")


@export_app.command("hf")
def export_hf(
    state_dir: Path = STATE_DIR_ARG, out: Path = typer.Argument(..., help="Dataset dir."), repo: str | None = REPO_OPT
) -> None:
    """Write a Hugging Face dataset: parquet in SWE-bench's columns plus repogym's, and a dataset card."""
    from repogym.export.hf import DATA_FILE
    from repogym.export.hf import export_hf as run_export

    rows = run_export(state_dir, out, repo)
    console.print(f"wrote {len(rows)} task(s) to {out / DATA_FILE} and the dataset card {out / 'README.md'}")


@export_app.command("harbor")
def export_harbor(
    state_dir: Path = STATE_DIR_ARG,
    out: Path = typer.Argument(..., help="Where the task folders go (one per task)."),
    reward: str = typer.Option("binary", "--reward", help="binary (1 if resolved, else 0) or partial credit."),
    base_image: str | None = typer.Option(None, "--base-image", help="FROM image (default: the env's or repogym's)."),
    verify: int = typer.Option(0, "--verify", help="Run the oracle and a no-op on the first N tasks with podman."),
    repo: str | None = REPO_OPT,
) -> None:
    """Write Harbor task folders: instruction.md, task.toml, environment/, tests/test.sh, solution/solve.sh."""
    from repogym.export.harbor import export_harbor as run_export

    dirs = run_export(state_dir, out, reward, base_image, repo)
    console.print(f"wrote {len(dirs)} Harbor task folder(s) under {out} (reward: {reward})")
    if verify:
        _verify(dirs[:verify])


def _verify(dirs: list[Path]) -> None:
    from repogym.export.harbor_run import run_trial

    bad = 0
    for d in dirs:
        gold, noop = run_trial(d, solve=True), run_trial(d, solve=False)
        ok = gold.reward == 1.0 and noop.reward == 0.0
        bad += not ok
        console.print(f"{d.name}: oracle {gold.reward}, no-op {noop.reward}{'' if ok else '  <- wrong'}")
    if bad:
        err.print(f"{bad} of {len(dirs)} task(s) do not score oracle = 1 and no-op = 0")
        raise typer.Exit(1)
