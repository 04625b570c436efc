"""What every `repogym` command shares: the app, the consoles, common options and small helpers."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from repogym import __version__
from repogym.errors import RepogymError
from repogym.executor import Executor
from repogym.sandbox.limits import Limits

if TYPE_CHECKING:
    from repogym.environment import EnvSpec
    from repogym.llm import ModelConfig
    from repogym.records import ValidatedRecord
    from repogym.repo import RepoSource

console = Console(highlight=False, soft_wrap=True, markup=False)  # test ids like t[1] are not markup
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

app = typer.Typer(
    name="repogym",
    help="Turn a git repository into verified, executable coding tasks; run and score agents on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

REPO_ARG = typer.Argument(..., help="A git repo, a plain directory, a .tar/.tar.gz or a git URL.")
REF_OPT = typer.Option(None, "--ref", help="Branch, tag or commit (default: HEAD).")
BACKEND_OPT = typer.Option(None, "--backend", help="bwrap (default), podman, docker or process (no isolation).")
TEST_DEPS_OPT = typer.Option(None, "--test-deps", help="Extra test dependency (repeatable).")
MODEL_OPT = typer.Option(None, "--model", help="provider/name, e.g. openai/boa (feature_removal).")
API_BASE_OPT = typer.Option(None, "--api-base", help="Base URL ending in /v1 (default: $OPENAI_API_BASE).")
TEST_CMD_OPT = typer.Option(
    None, "--test-command", help="Replaces the detected test command; write JUnit XML to $REPOGYM_JUNIT."
)


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


def say(msg: str) -> None:
    err.print(msg, style="dim")


def pick_backend(backend: str | None) -> str:
    from repogym.sandbox import BACKENDS, default_backend

    if backend is None:
        return default_backend()
    if backend not in BACKENDS:
        raise RepogymError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "process":
        say("warning: the process backend runs the repository's code on this machine with no isolation")
    return backend


PATTERNS_ARG = typer.Argument(..., help="Globs of the source files to work on, e.g. 'src/pkg/*.py'.")
WORKERS_OPT = typer.Option(1, "--workers", help="Parallel validations and checks.")
TIMEOUT_OPT = typer.Option(900.0, "--timeout", help="Seconds before one test-suite run is killed.")
AUTO_TIMEOUT_OPT = typer.Option(
    None, "--timeout", help="Seconds before one test-suite run is killed (default: 10x the base run, >= 60)."
)


MAX_RETRIES_OPT = typer.Option(5, "--max-retries", help="Retries of a model call on 429, 5xx and timeouts.")


def build_model_config(
    model: str, api_base: str | None, max_tokens: int | None, flex: bool, timeout: float = 600.0, max_retries: int = 5
) -> ModelConfig:
    from repogym.llm import ModelConfig

    return ModelConfig(
        model=model,
        api_base=api_base,
        max_tokens=max_tokens,
        flex_processing=flex,
        timeout_s=timeout,
        max_retries=max_retries,
    )


def pick_strategy(strategy: str | None, model: str | None) -> str:
    """feature_removal when a model is given, procedural otherwise; a model strategy without a model is refused."""
    strategy = strategy or ("feature_removal" if model else "procedural")
    if strategy not in ("procedural", "feature_removal"):
        raise RepogymError(f"unknown strategy {strategy!r}; choose one of: feature_removal, procedural")
    if strategy == "feature_removal" and not model:
        raise RepogymError(
            "--strategy feature_removal needs --model provider/name (and --api-base or $OPENAI_API_BASE)"
        )
    return strategy


def repo_resolver(backend: str, repo: str | None) -> Callable[[ValidatedRecord], tuple[RepoSource, EnvSpec]]:
    """Open each record's repository and environment once (see ``repogym.resolve``)."""
    from repogym.resolve import Resolver

    return Resolver(backend, repo, say=say)


def load_tasks(validated: Path, tasks: Path | None, ids: list[str] | None) -> list[tuple[ValidatedRecord, str]]:
    """Validated records with their task descriptions (from the record, or from tasks.jsonl)."""
    from repogym.records import TaskRecord, ValidatedRecord, load_records

    records, bad = load_records(validated, ValidatedRecord)
    for b in bad:
        err.print(f"error: {b} (record skipped)")
    described = {t.task_id: t.task_description for t in load_records(tasks, TaskRecord)[0]} if tasks else {}
    out = []
    for r in records:
        if ids and r.task_id not in ids:
            continue
        description = r.task_description or described.get(r.task_id, "")
        if not description:
            raise RepogymError(f"{r.task_id}: no task description in {validated}; pass --tasks tasks.jsonl")
        out.append((r, description))
    if ids and len(out) < len(set(ids)):
        missing = sorted(set(ids) - {r.task_id for r, _ in out})
        raise RepogymError(f"task id(s) not in {validated}: {', '.join(missing)}")
    return out


MAX_PROCESSES_OPT = typer.Option(512, "--max-processes", help="Processes alive at once in one sandbox.")
MAX_MEMORY_OPT = typer.Option("4G", "--max-memory", help="Memory of one sandbox, e.g. 4G or 512M.")
MAX_DISK_OPT = typer.Option("2G", "--max-disk", help="What one sandbox may write to /repo and /tmp, e.g. 2G.")


def parse_size(text: str, flag: str) -> int:
    """'4G', '512M', '100K' or a byte count -> bytes; a clear error naming the flag otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, flags=re.I)
    if not m:
        raise RepogymError(f"{flag} {text!r}: give a size such as 4G, 512M or 100K")
    return int(float(m.group(1)) * 1024 ** "_KMGT".index(m.group(2).upper() or "_"))


def build_limits(max_processes: int, max_memory: str, max_disk: str) -> Limits:
    return Limits(
        max_processes=max_processes,
        memory_bytes=parse_size(max_memory, "--max-memory"),
        disk_bytes=parse_size(max_disk, "--max-disk"),
    )


EXECUTOR_OPT = typer.Option("local", "--executor", help="Where units run: local (threads) or ray (a Ray cluster).")
RAY_ADDRESS_OPT = typer.Option(
    None, "--ray-address", help="Ray cluster address (default: the running cluster, else a local one)."
)


def pick_executor(name: str, workers: int, address: str | None) -> Executor[Any, Any] | None:
    """None for local (each stage's own local path); a Ray executor for ray; an error listing valid names."""
    from repogym.executor import EXECUTORS, make_executor

    if name == "local":
        return None
    if name not in EXECUTORS:
        raise RepogymError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    return make_executor(name, workers, address)
