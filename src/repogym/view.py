"""`repogym view`: one self-contained HTML report of a state dir and, optionally, eval runs on its tasks.

The page is a static file (inline CSS and JS, the data embedded as JSON, no network) so that it opens from
``file://``, can be mailed or attached to a pull request, and shows the same thing everywhere. The list is built
from the data once; a task's diffs and trajectories are rendered only when it is opened, so thousands of tasks
load quickly.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from repogym.errors import RepogymError
from repogym.records import read_jsonl
from repogym.taskset import StateDir, TaskRow, load_state, summarize

MAX_MESSAGE_CHARS = 20_000  # a tool result can be megabytes; the report keeps the start of each message
_PLACEHOLDER = "/*__REPOGYM_DATA__*/null"


def build_report(state_dir: Path, eval_dirs: list[Path], out: Path) -> dict[str, int]:
    """Write the report for ``state_dir`` (and ``eval_dirs``) to ``out``; returns what it holds, counted."""
    data = report_data(load_state(state_dir), eval_dirs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return {
        "tasks": len(data["tasks"]),
        "evals": len(data["evals"]),
        "attempts": _attempts(data),
        "bytes": out.stat().st_size,
    }


def _attempts(data: dict[str, Any]) -> int:
    return sum(len(e["attempts"]) for e in data["evals"])


def report_data(state: StateDir, eval_dirs: list[Path]) -> dict[str, Any]:
    """The JSON the page renders: summary, one entry per task (test lists as indices into ``tests``), eval runs."""
    names: dict[str, int] = {}  # test names are shared by many tasks: the page holds each one once
    tasks = [_task(r, names) for r in state.rows]
    return {
        "state_dir": str(state.path),
        "environment": {
            k: state.env.get(k) for k in ("repo_name", "backend", "test_command", "image") if k in state.env
        },
        "summary": summarize(state),
        "tests": list(names),
        "tasks": tasks,
        "evals": [_eval_run(d) for d in eval_dirs],
    }


def _task(r: TaskRow, names: dict[str, int]) -> dict[str, Any]:
    f2p, p2p = ([names.setdefault(t, len(names)) for t in tests] for tests in r.test_lists())
    check = r.check or {}
    return {
        "id": r.task_id,
        "repo": r.repo,
        "strategy": r.strategy,
        "status": r.status,
        "difficulty": r.difficulty if r.validated else "",
        "subject": str(r.candidate.get("subject", "")),
        "description": r.description,
        "src": r.src_diff,
        "tests": r.tests_diff,
        "gold": r.gold_patch if r.validated else "",
        "f2p": f2p,
        "p2p": p2p,
        "checks": check.get("checks", []),
        "flaky": bool(check.get("flaky")),
        "reason": str(check.get("reason") or (r.rejected or {}).get("reason", "")),
        "validator": str((r.validated or {}).get("validator", "")),
    }


def _eval_run(eval_dir: Path) -> dict[str, Any]:
    results = eval_dir / "results.jsonl"
    if not results.exists():
        raise RepogymError(f"{eval_dir}: no results.jsonl (make one with `repogym eval --output-dir {eval_dir}`)")
    rows = [o for _, o in read_jsonl(results) if isinstance(o, dict) and "task_id" in o]
    return {"label": eval_dir.name, "path": str(eval_dir), "attempts": [_attempt(eval_dir, o) for o in rows]}


def _attempt(eval_dir: Path, r: dict[str, Any]) -> dict[str, Any]:
    usage = r.get("usage") or {}
    return {
        "task_id": r["task_id"],
        "attempt": r.get("attempt", 0),
        "resolved": bool(r.get("resolved")),
        "stop_reason": r.get("stop_reason", ""),
        "turns": r.get("turns", 0),
        "cost": usage.get("cost_usd", "unknown"),
        "seconds": r.get("seconds", 0.0),
        "error": r.get("error"),
        "f2p": r.get("fail_to_pass", {}),
        "p2p_failed": r.get("pass_to_pass_failed", []),
        "patch": r.get("patch", ""),
        "dropped": r.get("dropped", []),
        "messages": _messages(eval_dir, str(r.get("trajectory") or "")),
    }


def _messages(eval_dir: Path, trajectory: str) -> list[dict[str, Any]]:
    """The conversation of a trajectory file, each message cut to MAX_MESSAGE_CHARS; [] when there is none."""
    if not trajectory:
        return []
    path = Path(trajectory)
    if not path.exists():  # an eval dir that was moved: its trajectories moved with it
        path = eval_dir / "trajectories" / path.name
    try:
        messages = json.loads(path.read_text(encoding="utf-8")).get("messages", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [_cut(m) for m in messages if isinstance(m, dict)]


def _cut(m: dict[str, Any]) -> dict[str, Any]:
    content = m.get("content")
    if not isinstance(content, str):
        content = "" if content is None else json.dumps(content, ensure_ascii=False)
    if len(content) > MAX_MESSAGE_CHARS:
        content = content[:MAX_MESSAGE_CHARS] + f"\n[... {len(content) - MAX_MESSAGE_CHARS} more characters]"
    calls = [c.get("function", c) for c in m.get("tool_calls") or [] if isinstance(c, dict)]
    return {"role": m.get("role", "?"), "content": content, "tool_calls": calls, "name": m.get("name")}


def render_html(data: dict[str, Any]) -> str:
    """The template with ``data`` embedded; ``</`` is escaped so no string in it can close the script."""
    template = resources.files("repogym").joinpath("view_template.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return template.replace(_PLACEHOLDER, payload.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
