"""The resumable Build-A-Bench pipeline over a state directory: environment, synthesis, validation, checks.

Every stage appends one record per task and skips the ids it already has, so a killed or interrupted run
continues where it stopped. State files: tasks.jsonl, validated_tasks.jsonl, rejected_tasks.jsonl (candidates
validation turned down, with the reason), check_results.jsonl, env.json and workflow.log.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from repogym import baserun, validate
from repogym.agents.external import AGENTS, ExternalAgentConfig, external_agent
from repogym.agents.loop import AgentConfig
from repogym.check import check_many
from repogym.env_agent import build_with_agent
from repogym.environment import BaseRun, EnvSpec
from repogym.errors import RepogymError
from repogym.executor import make_executor
from repogym.llm import ModelConfig
from repogym.progress import stage
from repogym.records import (
    CheckRecord,
    RejectedRecord,
    TaskRecord,
    ValidatedRecord,
    append_record,
    existing_ids,
    load_records,
    next_task_number,
    read_jsonl,
    repair_torn_tail,
)
from repogym.repo import RepoSource, open_repo
from repogym.resolve import Resolver
from repogym.sandbox.podman import default_image_name, image_exists
from repogym.synth import feature_removal
from repogym.synth import stage as synth_stage
from repogym.synth.coverage import coverage_map
from repogym.synth.stage import SynthRequest
from repogym.validate import BuiltinRunner, ExternalRunner, IssueWriter
from repogym.workspace import kept_warm, open_ahead

STATE_FILES = (
    "tasks.jsonl",
    "validated_tasks.jsonl",
    "rejected_tasks.jsonl",
    "check_results.jsonl",
    "env.json",
    "workflow.log",
)


class WorkflowConfig(BaseModel):
    """Everything a workflow run depends on; written into workflow.log."""

    repo: str = Field(description="Repository: directory, tarball or git URL.")
    ref: str | None = Field(None, description="Branch, tag or commit.")
    patterns: list[str] = Field(
        default_factory=list, description="Globs of the source files (default: the project's importable modules)."
    )
    state_dir: Path = Field(description="Where the state files live.")
    num_candidates: int = Field(20, description="Candidates to synthesize in total.")
    strategy: str = Field("procedural", description="Synthesis strategy: procedural or feature_removal.")
    model: ModelConfig | None = Field(None, description="The model of feature_removal synthesis.")
    num_attempts: int = Field(3, description="feature_removal: answer + normalization attempts per candidate.")
    extra: str = Field("", description="feature_removal: extra instructions for the model.")
    agent: str = Field("auto", description="Validator: auto, builtin, codex, claude or mini-swe-agent.")
    agent_binary: str | None = Field(None, description="Path of an external agent's executable.")
    agent_max_turns: int = Field(60, description="builtin validator: model calls per task.")
    env_tips_path: Path | None = Field(None, description="Tips file of the environment agent (podman, no Dockerfile).")
    validate_tips_path: Path | None = Field(None, description="Tips file shown to the validation agent.")
    workers: int = Field(1, description="Parallel validations and checks.")
    backend: str = Field("bwrap", description="Sandbox backend.")
    dockerfile: Path | None = Field(None, description="podman/docker: Dockerfile of the environment image.")
    seed: int = Field(0, description="Seed of candidate selection.")
    timeout_s: float | None = Field(None, description="Timeout of one suite run (default: 10x the base run).")
    reruns: int = Field(0, description="Extra runs of checks 1 and 3 to detect flaky tasks.")
    max_fail_fraction: float = Field(0.5, description="Reject candidates that fail more of the suite than this.")
    force_fresh: bool = Field(False, description="Delete the state files and start over.")
    select: bool = Field(True, description="Change-aware validation and check 2 (off: the whole suite every time).")
    warm: bool = Field(True, description="Test runs fork from a server that has imported pytest (see workspace.py).")
    describe: str = Field("template", description="Task descriptions: template, or issue (written by --model).")
    combine: int = Field(0, description="Combined candidates (2-4 validated single changes each) to add.")
    executor: str = Field("local", description="Where validations and checks run: local threads or ray.")
    ray_address: str | None = Field(None, description="Ray cluster address (default: running cluster, else local).")


class Summary(BaseModel):
    env_seconds: float = 0.0
    stage_seconds: dict[str, float] = Field(
        default_factory=dict, description="Seconds this run spent in each stage (synthesis includes the coverage run)."
    )
    base_passed: int = 0
    known_failures: int = 0
    flaky: int = 0
    ignored_modules: list[str] = Field(default_factory=list)
    candidates: int
    validated: int
    rejected: int
    checked: int
    passed: int
    by_strategy: dict[str, dict[str, int]]
    state_dir: str


class Workflow:
    """One run of the pipeline; ``run`` may be called again on the same state dir to resume."""

    def __init__(self, cfg: WorkflowConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.state_dir
        self.path = {name: self.dir / name for name in STATE_FILES}
        self.timeout = cfg.timeout_s or 900.0
        self.env_seconds = 0.0
        self.stage_seconds: dict[str, float] = {}
        self.executor = make_executor(cfg.executor, cfg.workers, cfg.ray_address) if cfg.executor != "local" else None

    def log(self, msg: str) -> None:
        with self.path["workflow.log"].open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")

    def run(self) -> Summary:
        if self.cfg.force_fresh:
            for p in self.path.values():
                p.unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in self.path.values():
            if p.suffix == ".jsonl" and repair_torn_tail(p):
                self.log(f"dropped a torn last line of {p.name} (a killed run)")
        self.log(f"start {self.cfg.model_dump_json()}")
        src = open_repo(self.cfg.repo, self.cfg.ref, say=self.log)
        started = time.monotonic()
        spec = self.environment(src)
        self.env_seconds = time.monotonic() - started
        base = validate.Baseline(spec)
        self.timeout = self.cfg.timeout_s or base.timeout()
        with kept_warm():  # validation's warm copies serve checks 1-2 too
            if self.cfg.warm and self.executor is None and self.cfg.agent == "auto":
                open_ahead(src, spec, self.cfg.workers)  # while the coverage map and synthesis run
            self.timed("synthesis", lambda: self.synthesize(src, spec))
            self.timed("validation", lambda: self.validate(src, spec, base))
            if self.cfg.combine:
                self.timed("combine", lambda: self.combine(src))
                self.timed("validation", lambda: self.validate(src, spec, base))
            self.timed("checks", lambda: self.check(src, spec))
        summary = self.summary()
        self.log(f"done {summary.model_dump_json()}")
        return summary

    def timed(self, stage: str, fn: Callable[[], None]) -> None:
        started = time.monotonic()
        fn()
        self.stage_seconds[stage] = round(self.stage_seconds.get(stage, 0.0) + time.monotonic() - started, 2)

    def _external(self) -> ExternalAgentConfig:
        model = self.cfg.model.name if self.cfg.model else None
        api_base = self.cfg.model.base_url() if self.cfg.model else None
        return external_agent(self.cfg.agent, model, api_base, self.cfg.agent_binary)

    def environment(self, src: RepoSource) -> EnvSpec:
        image = default_image_name(src.name)
        wants_agent = self.cfg.backend == "podman" and self.cfg.dockerfile is None and self.cfg.agent in AGENTS
        if wants_agent and not image_exists("podman", image):
            # No Dockerfile and no image yet: the environment agent writes one (once; resume reuses the image).
            log = self.dir / "env_agent.log.jsonl"
            result = build_with_agent(src, self._external(), image, self.cfg.env_tips_path, log)
            self.log(f"environment agent built {image} ({result.image_id[:12]})")
            (self.dir / "Dockerfile").write_text(result.dockerfile)
        spec = baserun.prepare_with_base(
            src, self.cfg.backend, dockerfile=self.cfg.dockerfile, timeout_s=self.timeout, say=self.log
        )
        self.path["env.json"].write_text(spec.model_dump_json(indent=2))
        return spec

    def synthesize(self, src: RepoSource, spec: EnvSpec) -> None:
        have, _ = load_records(self.path["tasks.jsonl"], TaskRecord) if self.path["tasks.jsonl"].exists() else ([], [])
        need = self.cfg.num_candidates - len(have)
        if need <= 0:
            return
        model = (
            feature_removal.FeatureRemovalConfig(model=self.cfg.model, extra=self.cfg.extra,
                                                 num_attempts=self.cfg.num_attempts)
            if self.cfg.model else None
        )  # fmt: skip
        req = SynthRequest(
            src, self.cfg.patterns, need, seed=self.cfg.seed, avoid=[t.subject for t in have],
            first_index=next_task_number(t.task_id for t in have), spec=spec, timeout_s=self.timeout, model=model,
            log=self.log, max_share=self.cfg.max_fail_fraction,
        )  # fmt: skip
        new = synth_stage.synthesize(self.cfg.strategy, req)
        for rec in new:
            append_record(self.path["tasks.jsonl"], rec)
        self.log(f"synthesized {len(new)} candidates ({len(have)} already there)")

    def combine(self, src: RepoSource) -> None:
        """Combined candidates from the validated single changes, up to ``combine`` of them in all."""
        tasks, _ = load_records(self.path["tasks.jsonl"], TaskRecord)
        made = [t for t in tasks if t.strategy == "combine"]
        need = self.cfg.combine - len(made)
        if need <= 0:
            return
        validated = existing_ids(self.path["validated_tasks.jsonl"])
        singles = [t for t in tasks if t.task_id in validated and t.changes == 1]
        req = SynthRequest(
            src, self.cfg.patterns, need, seed=self.cfg.seed, avoid=[t.subject for t in made],
            first_index=next_task_number(t.task_id for t in tasks), log=self.log, singles=singles,
        )  # fmt: skip
        new = synth_stage.synthesize("combine", req)
        for rec in new:
            append_record(self.path["tasks.jsonl"], rec)
        self.log(f"combined {len(new)} candidates from {len(singles)} validated single changes")

    def validate(self, src: RepoSource, spec: EnvSpec, base: validate.Baseline) -> None:
        tasks, _ = load_records(self.path["tasks.jsonl"], TaskRecord) if self.path["tasks.jsonl"].exists() else ([], [])
        done = existing_ids(self.path["validated_tasks.jsonl"]) | existing_ids(self.path["rejected_tasks.jsonl"])
        todo = [t for t in tasks if t.task_id not in done]
        if not todo:
            return
        tips = self.cfg.validate_tips_path
        runner = self._validation_runner()
        coverage = coverage_map(src, spec, self.timeout) if self.cfg.select and runner is None else None
        validator = validate.CandidateValidator(
            src, spec, runner, tips.read_text() if tips and tips.exists() else "", self.timeout,
            self.cfg.max_fail_fraction, coverage, self._writer(), self.cfg.warm,
        )  # fmt: skip
        with stage("validating", len(todo)) as advance:

            def on_done(res: ValidatedRecord | RejectedRecord) -> None:
                if isinstance(res, RejectedRecord):
                    self.log(f"rejected {res.task_id}: {res.reason}")
                    return advance(f"{res.task_id}: rejected")
                advance(f"{res.task_id}: {len(res.FAIL_TO_PASS or [])} tests")

            validate.validate_many(
                todo, validator, self.path["validated_tasks.jsonl"], self.path["rejected_tasks.jsonl"],
                workers=self.cfg.workers, executor=self.executor, on_done=on_done,
            )  # fmt: skip

    def _writer(self) -> IssueWriter | None:
        if self.cfg.describe == "template":
            return None
        if self.cfg.model is None:
            raise RepogymError("--describe issue needs --model provider/name (the model writes the issue)")
        return IssueWriter(self.cfg.model)

    def _validation_runner(self) -> BuiltinRunner | ExternalRunner | None:
        if self.cfg.agent == "auto":
            return None
        if self.cfg.agent == "builtin":
            if self.cfg.model is None:
                raise RepogymError("--agent builtin needs --model provider/name")
            return BuiltinRunner(self.cfg.model, AgentConfig(max_turns=self.cfg.agent_max_turns))
        return ExternalRunner(self._external(), self.dir / "agent_logs")

    def check(self, src: RepoSource, spec: EnvSpec) -> None:
        if not self.path["validated_tasks.jsonl"].exists():
            return
        validated, _ = load_records(self.path["validated_tasks.jsonl"], ValidatedRecord)
        done = existing_ids(self.path["check_results.jsonl"])
        todo = [v for v in validated if v.task_id not in done]
        if not todo:
            return
        with stage("checking", len(todo)) as advance:

            def on_done(rec: CheckRecord) -> None:
                append_record(self.path["check_results.jsonl"], rec)
                advance(f"{rec.task_id}: {'ok' if rec.ok else 'failed'}")

            check_many(
                todo, Resolver(self.cfg.backend, self.cfg.repo, spec=spec), workers=self.cfg.workers,
                timeout_s=self.timeout, reruns=self.cfg.reruns, on_done=on_done, executor=self.executor,
                select=self.cfg.select, warm=self.cfg.warm,
            )  # fmt: skip

    def summary(self) -> Summary:
        def rows(name: str) -> list[dict[str, object]]:
            p = self.path[name]
            return [o for _, o in read_jsonl(p) if isinstance(o, dict)] if p.exists() else []

        tasks, validated, rejected, checks = (rows(n) for n in STATE_FILES[:4])
        strategy = {str(t["task_id"]): str(t.get("strategy", "")) for t in tasks}
        ok_ids = {str(c["task_id"]) for c in checks if c.get("ok")}
        by: dict[str, Counter[str]] = {}
        for strat in strategy.values():
            by.setdefault(strat, Counter())["candidates"] += 1
        for group, key in ((validated, "validated"), (checks, "checked")):
            for r in group:
                by.setdefault(strategy.get(str(r["task_id"]), "?"), Counter())[key] += 1
        for tid in ok_ids:
            by.setdefault(strategy.get(tid, "?"), Counter())["passed"] += 1
        base = self._base_facts()
        return Summary(
            env_seconds=round(self.env_seconds, 1),
            stage_seconds=self.stage_seconds,
            base_passed=len(base.passed),
            known_failures=len(base.known_failures),
            flaky=len(base.flaky),
            ignored_modules=sorted(base.ignored_modules),
            candidates=len(tasks),
            validated=len(validated),
            rejected=len(rejected),
            checked=len(checks),
            passed=len(ok_ids),
            by_strategy={k: dict(v) for k, v in sorted(by.items())},
            state_dir=str(self.dir),
        )

    def _base_facts(self) -> BaseRun:
        """The base run recorded in env.json (empty when there is none yet)."""
        env = self.path["env.json"]
        spec = EnvSpec.model_validate_json(env.read_text()) if env.exists() else None
        return spec.base if spec and spec.base else BaseRun()
