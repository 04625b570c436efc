"""Hugging Face dataset export: the checked tasks as parquet in SWE-bench's column layout, with a dataset card.

Columns are SWE-bench's (instance_id, repo, base_commit, patch, test_patch, problem_statement, FAIL_TO_PASS,
PASS_TO_PASS, version, environment_setup_commit, created_at, hints_text), with the test lists as lists of strings,
plus repogym's: task_id, strategy, difficulty, subject, validator, and ``task_state_bundle``, the sealed task
state as a git bundle (one commit, no history), since our base commits exist nowhere else:
``git clone task.bundle repo`` gives the repository at ``base_commit``.
"""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

from repogym import __version__
from repogym.errors import RepogymError
from repogym.export.swebench import swebench_instance
from repogym.export.tasks import ExportTask, checked_tasks, seal
from repogym.taskset import StateDir, summarize

DATA_FILE = "data/test-00000-of-00001.parquet"
LIST_COLUMNS = ("FAIL_TO_PASS", "PASS_TO_PASS")
INSTALL = "pip install 'repogym[hf]'"


def export_hf(state_dir: Path, out: Path, repo: str | None = None) -> list[dict[str, Any]]:
    """Write ``out/data/*.parquet`` and ``out/README.md`` for the checked tasks of ``state_dir``; returns the rows."""
    pa, pq = _pyarrow()
    state, tasks = checked_tasks(state_dir, repo)
    rows = [hf_row(t) for t in tasks]
    (out / DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=_schema(pa)), out / DATA_FILE)
    (out / "README.md").write_text(dataset_card(state, tasks, out.name), encoding="utf-8")
    return rows


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise RepogymError(f"the Hugging Face export needs pyarrow: {INSTALL}") from e
    return pa, pq


def _schema(pa: Any) -> Any:
    strings = [*swebench_instance_columns(), "task_id", "strategy", "difficulty", "subject", "validator"]
    fields = [(c, pa.list_(pa.string()) if c in LIST_COLUMNS else pa.string()) for c in strings]
    return pa.schema([*fields, ("task_state_bundle", pa.binary())])


def swebench_instance_columns() -> list[str]:
    return ["instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement", *LIST_COLUMNS,
            "version", "environment_setup_commit", "created_at", "hints_text"]  # fmt: skip


def hf_row(task: ExportTask) -> dict[str, Any]:
    """One row: the SWE-bench instance of ``task`` (sealed base commit, gold patch) plus repogym's fields."""
    with tempfile.TemporaryDirectory(prefix="repogym-hf-") as tmp:
        bundle = Path(tmp) / "task.bundle"
        base, gold = seal(task.rec, task.src, bundle=bundle)
        data = bundle.read_bytes()
    row = swebench_instance(task.rec, task.row.description, base, gold)
    row.update(
        task_id=task.rec.task_id,
        strategy=task.row.strategy,
        difficulty=task.row.difficulty,
        subject=str(task.row.candidate.get("subject", "")),
        validator=task.rec.validator,
        task_state_bundle=data,
    )
    return row


def dataset_card(state: StateDir, tasks: list[ExportTask], name: str) -> str:
    """README.md: the YAML header the Hub reads, then counts, yield and provenance in words."""
    s = summarize(state)
    lines = ["---", "configs:", "- config_name: default", "  data_files:", "  - split: test", f"    path: {DATA_FILE}"]
    lines += ["tags:", "- code", "- swe-bench", "- repogym", "---", "", f"# {name}", ""]
    lines += [f"{len(tasks)} coding tasks made by repogym {__version__}, each verified by three LLM-free checks: the "
              "task state passes its suite, the hidden tests (test_patch) fail on it, and the gold patch makes them "
              "pass without breaking any other test.", ""]  # fmt: skip
    lines += _counts(s) + [""] + _provenance(state, tasks) + [""] + _usage()
    return "\n".join(lines) + "\n"


def _counts(s: dict[str, Any]) -> list[str]:
    out = ["## Counts", "", "| strategy | candidates | validated | checked | pass all checks | yield |"]
    out.append("|---|---|---|---|---|---|")
    for name, c in [*s["by_strategy"].items(), ("total", s["total"])]:
        n = [c.get(k, 0) for k in ("candidates", "validated", "checked", "passed")]
        pct = f"{n[3] / n[0]:.0%}" if n[0] else "-"
        out.append(f"| {name} | {' | '.join(map(str, n))} | {pct} |")
    reasons = [f"- {k}: {n}" for k, n in s["rejections"].items()]
    return out + (["", "Candidates rejected, by reason:", "", *reasons] if reasons else [])


def _provenance(state: StateDir, tasks: list[ExportTask]) -> list[str]:
    repos = sorted({(t.rec.repo, t.src.commit_sha) for t in tasks})
    out = ["## Provenance", ""] + [f"- repository `{r}` at commit `{c}`" for r, c in repos]
    env = state.env
    command = env.get("test_command") or env.get("run_command")
    out.append(f"- environment: {env.get('backend', '?')}, test command `{command}`")
    out.append(f"- exported {datetime.date.today().isoformat()} from the state dir `{state.path.name}`")
    return out


def _usage() -> list[str]:
    return [
        "## Use",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("parquet", data_files="{DATA_FILE}", split="train")',
        "```",
        "",
        "`base_commit` is the one commit of the repository in `task_state_bundle` (write it to a file, then "
        "`git clone task.bundle repo`): the task state, with no history. Apply `test_patch` to grade; a task is "
        "resolved when every FAIL_TO_PASS test passes and no PASS_TO_PASS test fails.",
    ]
