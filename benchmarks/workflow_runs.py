"""Whole-workflow runs for the benchmarks, as a user runs them (`repogym workflow` in a subprocess), of this tree
or of an earlier commit (a git worktree of it, on the same interpreter and caches): the honest end-to-end rate
that no pre-screening can game, checked tasks per minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repogym.repo import cache_dir

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    """One workflow run: counts from its state files, its wall time, and its stages' seconds (when it says)."""

    label: str
    candidates: int
    validated: int
    checked: int
    seconds: float
    summary: dict[str, Any]  # the workflow's own summary (workflow.log's last `done` line)
    state: Path

    def check_seconds(self, name: str) -> float | None:
        """Mean seconds of check ``name`` (tests_fail: check 2) over the run's checked tasks."""
        secs = [c["seconds"] for r in lines(self.state / "check_results.jsonl") for c in r.get("checks", [])
                if isinstance(c, dict) and c.get("name") == name and c.get("seconds")]  # fmt: skip
        return sum(secs) / len(secs) if secs else None

    @property
    def stages(self) -> dict[str, float]:
        return dict(self.summary.get("stage_seconds") or {})

    @property
    def yield_(self) -> float:
        return self.checked / self.candidates if self.candidates else 0.0

    @property
    def per_minute(self) -> float:
        return 60 * self.checked / self.seconds if self.seconds else 0.0

    def stage_rate(self, stage: str, count: int) -> float | None:
        """``count`` units per minute of ``stage``, when the run timed its stages."""
        s = self.stages.get(stage)
        return 60 * count / s if s else None


@contextmanager
def source_tree(ref: str | None) -> Iterator[Path]:
    """This tree's src/, or that of commit ``ref`` (a temporary worktree)."""
    if ref is None:
        yield ROOT / "src"
        return
    with tempfile.TemporaryDirectory(prefix="repogym-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), ref], check=True)
        try:
            yield tree / "src"
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def forget_runs(name: str) -> None:
    """Drop the stored base runs and coverage maps of repository ``name``: the next run records its own (built
    environments stay: every run reuses them alike)."""
    for kind in ("bases", "coverage"):
        for path in (cache_dir() / kind).glob(f"*{name}*"):
            path.unlink()


def workflow(label: str, src_dir: Path, repo: str, state: Path, args: list[str]) -> Run:
    """Run `repogym workflow REPO --state-dir STATE ARGS` with ``src_dir`` first on the path, from a fresh state
    dir (call ``forget_runs`` first for a run that pays for its base run and coverage map)."""
    env = {**os.environ, "PYTHONPATH": str(src_dir)}
    cmd = [sys.executable, "-m", "repogym", "workflow", repo, "--state-dir", str(state), "--force-fresh", *args]
    start = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"{label}: workflow failed ({r.returncode}): {r.stderr[-2000:]}")
    done = [line for line in (state / "workflow.log").read_text().splitlines() if " done {" in line]
    return Run(
        label=label,
        candidates=len(lines(state / "tasks.jsonl")),
        validated=len(lines(state / "validated_tasks.jsonl")),
        checked=sum(bool(c.get("ok")) for c in lines(state / "check_results.jsonl")),
        seconds=seconds,
        summary=json.loads(done[-1].split(" done ", 1)[1]) if done else {},
        state=state,
    )
