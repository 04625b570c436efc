"""The test-environment commands."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from repogym.cli.common import (
    API_BASE_OPT,
    BACKEND_OPT,
    MODEL_OPT,
    REF_OPT,
    REPO_ARG,
    TEST_CMD_OPT,
    TEST_DEPS_OPT,
    app,
    console,
    pick_backend,
    say,
)
from repogym.errors import RepogymError

if TYPE_CHECKING:
    pass


env_app = typer.Typer(help="Detect, build and run a repository's test environment.", no_args_is_help=True)
app.add_typer(env_app, name="env")


@env_app.command("detect")
def env_detect(
    repo: str = REPO_ARG,
    ref: str | None = REF_OPT,
    backend: str | None = BACKEND_OPT,
    test_deps: list[str] | None = TEST_DEPS_OPT,
    test_command: str | None = TEST_CMD_OPT,
) -> None:
    """Print the environment spec inferred from the repository's files (JSON)."""
    from repogym import environment
    from repogym.repo import open_repo, temp_working_copy

    src = open_repo(repo, ref, say=say)
    with temp_working_copy(src) as wc:
        spec = environment.detect(wc, src.name, pick_backend(backend), test_deps, test_command)
    print(spec.model_dump_json(indent=2))


@env_app.command("build")
def env_build(
    repo: str = REPO_ARG,
    ref: str | None = REF_OPT,
    backend: str | None = BACKEND_OPT,
    test_deps: list[str] | None = TEST_DEPS_OPT,
    test_command: str | None = TEST_CMD_OPT,
    dockerfile: Path | None = typer.Option(None, "--dockerfile", help="podman/docker: the Dockerfile to build."),
    image: str | None = typer.Option(None, "--image", help="podman/docker: image name (default env_agent__NAME)."),
    agent: str | None = typer.Option(
        None, "--agent", help="podman: let an agent write the Dockerfile (codex, claude, mini-swe-agent)."
    ),
    agent_binary: str | None = typer.Option(None, "--agent-binary", help="Path of the agent's executable."),
    model: str | None = MODEL_OPT,
    api_base: str | None = API_BASE_OPT,
    tips_path: Path | None = typer.Option(None, "--env-tips-path", help="Tips the agent reads and updates."),
) -> None:
    """Build the environment: a cached virtualenv (bwrap/process) or an image (podman/docker)."""
    from repogym import environment
    from repogym.repo import open_repo

    src = open_repo(repo, ref, say=say)
    if agent:
        _build_with_agent(src, backend, agent, agent_binary, model, api_base, image, tips_path)
        return
    spec = environment.prepare(
        src, pick_backend(backend), test_deps=test_deps, test_command=test_command, dockerfile=dockerfile,
        image=image, say=say,
    )  # fmt: skip
    console.print(f"environment ready: {spec.venv or spec.image}")


def _build_with_agent(
    src: Any, backend: str | None, agent: str, binary: str | None, model: str | None, api_base: str | None,
    image: str | None, tips_path: Path | None,
) -> None:  # fmt: skip
    """`env build --agent`: the environment agent writes and proves a Dockerfile (podman)."""
    from repogym.agents.external import external_agent
    from repogym.env_agent import build_with_agent
    from repogym.sandbox.podman import default_image_name

    if (backend or "podman") != "podman" or not model:
        raise RepogymError("--agent builds a podman image: give --backend podman (the default here) and --model")
    ext = external_agent(agent, model, api_base, binary)
    name = image or default_image_name(src.name)
    result = build_with_agent(src, ext, name, tips_path, Path(f"outputs/env_agent/{name}.log.jsonl").resolve())
    console.print(f"environment ready: {result.image} ({result.image_id[:12]}); the agent's Dockerfile:")
    console.print(result.dockerfile)


@env_app.command("test")
def env_test(
    repo: str = REPO_ARG,
    ref: str | None = REF_OPT,
    backend: str | None = BACKEND_OPT,
    test_deps: list[str] | None = TEST_DEPS_OPT,
    test_command: str | None = TEST_CMD_OPT,
    image: str | None = typer.Option(None, "--image", help="podman/docker: image name (default env_agent__NAME)."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds before the suite is killed."),
    as_json: bool = typer.Option(False, "--json", help="Print per-test outcomes as JSON."),
    in_place: bool = typer.Option(
        False, "--in-place", help="Test REPO's work tree as it is (uncommitted edits included), not a clean copy."
    ),
) -> None:
    """Run the test suite in the sandbox and print per-test outcomes (builds the environment if needed)."""
    from repogym import environment
    from repogym.repo import open_repo, temp_working_copy

    if in_place and not Path(repo).is_dir():
        raise RepogymError(f"--in-place needs a directory, not {repo}")
    src = open_repo(repo, ref, say=say)
    spec = environment.prepare(
        src, pick_backend(backend), test_deps=test_deps, test_command=test_command, image=image, say=say
    )
    with contextlib.ExitStack() as stack:
        wc = Path(repo) if in_place else stack.enter_context(temp_working_copy(src))
        sb = stack.enter_context(environment.open_env_sandbox(spec, wc))
        run = environment.run_tests(spec, sb, timeout_s=timeout)
    if as_json:
        print(json.dumps({"backend": spec.backend, "source": run.source, "exit_code": run.exit_code,
                          "timed_out": run.timed_out, "summary": run.summary(), "outcomes": run.outcomes,
                          "note": run.note}, indent=2))  # fmt: skip
    else:
        _print_test_run(run)
    if not run.all_passed:
        raise typer.Exit(1)


def _print_test_run(run: object) -> None:
    from rich.table import Table

    from repogym.testresults import TestRun

    assert isinstance(run, TestRun)
    table = Table("test", "outcome")
    for tid, outcome in sorted(run.outcomes.items()):
        table.add_row(tid, outcome)
    if run.outcomes:
        console.print(table)
    counts = ", ".join(f"{n} {k}" for k, n in run.summary().items() if n)
    console.print(f"{counts or 'no per-test results'} in {run.seconds:.1f}s (exit code {run.exit_code})")
    if run.note:
        console.print(run.note)


@env_app.command("base-image")
def env_base_image(
    engine: str = typer.Option("podman", "--engine", help="podman or docker."),
    name: str = typer.Option("localhost/repogym-base:bookworm", "--name", help="Image name."),
) -> None:
    """Build a Debian base image with Python (debootstrap) for projects' Dockerfiles to start FROM."""
    from repogym.sandbox.images import build_base_image

    console.print(f"built {build_base_image(engine, name, say=say)}")
