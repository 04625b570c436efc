"""The SWE environment: repogym's own verified tasks (a `repogym workflow` state dir) as RL items.

Each rollout gets a sealed working copy (the task state, no history) in its own sandbox; the reward is graded by
`grading` on a fresh copy (the rollout's diff, test files and infrastructure left out, plus tests.diff): 1.0 when
every FAIL_TO_PASS test passes and no PASS_TO_PASS test fails, else 0.0; or, with ``reward="partial"``, the share
of FAIL_TO_PASS tests passing times the share of PASS_TO_PASS tests still passing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repogym.agents.loop import Trajectory
from repogym.agents.tools import ALL_TOOLS
from repogym.environment import EnvSpec, open_env_sandbox
from repogym.errors import RepogymError
from repogym.evaluate import SYSTEM, prompt
from repogym.grading import grade_solution
from repogym.records import CheckRecord, ValidatedRecord, load_records
from repogym.repo import RepoSource, open_repo, sealed_copy
from repogym.rl.envs.base import Environment
from repogym.sandbox.base import Sandbox
from repogym.sandbox.limits import Limits
from repogym.scoring import MODES, reward


class SweEnv(Environment):
    name = "swe"
    tools = ALL_TOOLS

    def __init__(
        self,
        state_dir: Path,
        seed: int = 0,
        suite_timeout_s: float = 900.0,
        reward: str = "binary",
        limits: Limits | None = None,
    ) -> None:
        super().__init__(seed)
        if reward not in MODES:
            raise RepogymError(f"unknown reward {reward!r}; choose one of: {', '.join(MODES)}")
        self.reward_mode, self.limits = reward, limits
        spec_file = state_dir / "env.json"
        if not spec_file.exists():
            raise RepogymError(f"{state_dir}: not a workflow state dir (no env.json); run `repogym workflow` first")
        self.spec = EnvSpec.model_validate_json(spec_file.read_text())
        validated, _ = load_records(state_dir / "validated_tasks.jsonl", ValidatedRecord)
        checks, _ = load_records(state_dir / "check_results.jsonl", CheckRecord)
        ok = {c.task_id: c for c in checks if c.ok}
        self.tasks = [
            v.model_copy(
                update={"FAIL_TO_PASS": ok[v.task_id].FAIL_TO_PASS, "PASS_TO_PASS": ok[v.task_id].PASS_TO_PASS}
            )
            for v in validated
            if v.task_id in ok
        ]
        if not self.tasks:
            raise RepogymError(f"{state_dir}: no task passed its checks; nothing to train on")
        self.sources: dict[str, RepoSource] = {}
        self.suite_timeout_s = suite_timeout_s

    def _source(self, rec: ValidatedRecord) -> RepoSource:
        key = f"{rec.repo}@{rec.commit_sha}"
        if key not in self.sources:
            self.sources[key] = open_repo(rec.repo, rec.commit_sha)
        return self.sources[key]

    def items(self, split: str) -> list[dict[str, Any]]:
        return [
            {"id": t.task_id, "record": t}
            for k, t in enumerate(self.tasks)
            if (k % 5 == 4) == (split == "eval") or len(self.tasks) < 5
        ]

    def prompt(self, item: dict[str, Any]) -> tuple[str, str]:
        rec: ValidatedRecord = item["record"]
        return SYSTEM, prompt(rec.task_description, self.spec, no_exec=False)

    def prepare(self, item: dict[str, Any], repo_dir: Path) -> None:
        rec: ValidatedRecord = item["record"]
        sealed_copy(self._source(rec), rec.src_diff, repo_dir)

    def make_sandbox(self, repo_dir: Path) -> Sandbox:
        return open_env_sandbox(self.spec, repo_dir, self.limits, session=True)

    def reward(self, item: dict[str, Any], traj: Trajectory, sandbox: Sandbox) -> tuple[float, dict[str, Any]]:
        rec: ValidatedRecord = item["record"]
        g = grade_solution(self._source(rec), self.spec, rec, sandbox.repo_dir, self.suite_timeout_s)
        if g.error:
            raise RepogymError(g.error)
        info = {"fail_to_pass": g.fail_to_pass, "pass_to_pass_failed": g.pass_to_pass_failed, "dropped": g.dropped}
        score = reward(g.fail_to_pass, rec.PASS_TO_PASS or [], g.pass_to_pass_failed, self.reward_mode)
        return score, info
