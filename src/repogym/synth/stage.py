"""The synthesis stage, one function for every caller (the workflow and `repogym synth`), strategies by name."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from repogym.environment import EnvSpec
from repogym.errors import RepogymError
from repogym.records import TaskRecord
from repogym.repo import RepoSource, temp_working_copy
from repogym.synth import combine, feature_removal, procedural
from repogym.synth.coverage import coverage_map


@dataclass
class SynthRequest:
    """What to synthesize: from which repository and files, how many, and what each strategy needs."""

    src: RepoSource
    patterns: list[str]
    num_candidates: int
    seed: int = 0
    avoid: list[str] = field(default_factory=list)
    first_index: int = 0
    spec: EnvSpec | None = None  # procedural: the built environment, whose coverage run aims the changes
    max_share: float = 0.5  # procedural: the largest share of the suite a changed line may be run by
    timeout_s: float = 900.0
    model: feature_removal.FeatureRemovalConfig | None = None  # feature_removal: the model and its options
    singles: list[TaskRecord] = field(default_factory=list)  # combine: validated single-change candidates
    log: Callable[[str], None] = lambda _m: None


def _procedural(req: SynthRequest, wc: Path) -> list[TaskRecord]:
    if req.spec is None:
        raise RepogymError("the procedural strategy needs the built environment (its coverage run aims the changes)")
    cov = coverage_map(req.src, req.spec, req.timeout_s, wc)
    if cov is None:
        req.log("coverage map unavailable (not a pytest suite, or the probe failed): every function is a target")
    else:
        req.log(f"coverage map: {len(cov.tests)} tests, {sum(len(v) for v in cov.lines.values())} lines executed")
    return procedural.synthesize(
        req.src, wc, req.patterns, num_candidates=req.num_candidates, seed=req.seed, avoid=set(req.avoid),
        coverage=cov, first_index=req.first_index, max_share=req.max_share,
    )  # fmt: skip


def _feature_removal(req: SynthRequest, wc: Path) -> list[TaskRecord]:
    if req.model is None:
        raise RepogymError("the feature_removal strategy needs --model provider/name")
    cfg = req.model.model_copy(update={"num_candidates": req.num_candidates, "avoid": [*req.model.avoid, *req.avoid]})
    return asyncio.run(
        feature_removal.synthesize(req.src, wc, req.patterns, cfg, first_index=req.first_index, log=req.log)
    )


def _combine(req: SynthRequest, wc: Path) -> list[TaskRecord]:
    singles = [t for t in req.singles if t.changes == 1]
    if len(singles) < 2:
        raise RepogymError(
            "the combine strategy needs at least two validated single-change candidates (tasks.jsonl and "
            "validated_tasks.jsonl of a state directory): validate procedural candidates first"
        )
    return combine.combine(
        req.src, wc, singles, num_candidates=req.num_candidates, seed=req.seed, first_index=req.first_index,
        avoid=set(req.avoid),
    )  # fmt: skip


STRATEGIES: dict[str, Callable[[SynthRequest, Path], list[TaskRecord]]] = {
    "procedural": _procedural,
    "feature_removal": _feature_removal,
    "combine": _combine,
}


def synthesize(strategy: str, req: SynthRequest) -> list[TaskRecord]:
    """Up to ``req.num_candidates`` candidates by the named strategy, in a fresh working copy at the base."""
    if strategy not in STRATEGIES:
        raise RepogymError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    with temp_working_copy(req.src) as wc:
        return STRATEGIES[strategy](req, wc)
