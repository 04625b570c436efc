"""Scored items and groups for RL trainers (the Atropos ScoredDataGroup shape), group-relative advantages,
and filters that say what they dropped and why."""

from __future__ import annotations

import statistics
from typing import Any

from pydantic import BaseModel, Field


class ScoredItem(BaseModel):
    """One rollout, scored. ``tokens``/``masks``/``inference_logprobs`` are None in OpenAI mode."""

    score: float
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tokens: list[int] | None = None
    masks: list[int] | None = None
    inference_logprobs: list[float] | None = None
    ref_logprobs: list[float] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class ScoredGroup(BaseModel):
    """N rollouts of one item; field names as Atropos' /scored_data expects them."""

    tokens: list[list[int]] | None
    masks: list[list[int]] | None
    scores: list[float]
    advantages: list[list[float]] | None = None
    ref_logprobs: list[list[float]] | None = None
    inference_logprobs: list[list[float]] | None = None
    messages: list[list[dict[str, Any]]] | None = None
    group_overrides: dict[str, Any] | None = None
    overrides: list[dict[str, Any]] | None = None
    env_id: int | None = None
    mode: str = Field("managed", description="managed: token ids and masks; openai: messages and scores only.")
    meta: dict[str, Any] = Field(default_factory=dict)

    def trainer_payload(self) -> dict[str, Any]:
        """The JSON body for an Atropos trajectory API (our own fields left out)."""
        return self.model_dump(exclude={"mode", "meta"}, exclude_none=True) | {
            "tokens": self.tokens or [],
            "masks": self.masks or [],
        }


def advantages(scores: list[float], normalize_std: bool = False, eps: float = 1e-6) -> list[float]:
    """Group-relative advantages: score minus the group mean, optionally divided by the group's std."""
    mean = statistics.fmean(scores)
    centred = [s - mean for s in scores]
    if normalize_std and len(scores) > 1:
        std = statistics.pstdev(scores)
        return [c / (std + eps) for c in centred]
    return centred


def build_group(
    items: list[ScoredItem], normalize_std: bool = False, meta: dict[str, Any] | None = None
) -> ScoredGroup:
    """A group from its scored rollouts; per-token advantages follow each item's mask."""
    managed = all(i.tokens is not None for i in items)
    adv = advantages([i.score for i in items], normalize_std)
    return ScoredGroup(
        tokens=[i.tokens for i in items if i.tokens is not None] if managed else None,
        masks=[i.masks for i in items if i.masks is not None] if managed else None,
        scores=[i.score for i in items],
        advantages=[[a] * len(i.tokens or []) for a, i in zip(adv, items, strict=True)] if managed else None,
        inference_logprobs=[i.inference_logprobs or [] for i in items] if managed else None,
        ref_logprobs=[i.ref_logprobs for i in items if i.ref_logprobs] or None,
        messages=[i.messages for i in items],
        mode="managed" if managed else "openai",
        meta={**(meta or {}), "item_meta": [i.meta for i in items], "group_advantages": adv},
    )


def filter_groups(
    groups: list[ScoredGroup], drop_equal_scores: bool = True, max_tokens: int | None = None
) -> tuple[list[ScoredGroup], list[str]]:
    """Keep groups a trainer can learn from; returns (kept, one reason per dropped group or rollout)."""
    kept: list[ScoredGroup] = []
    dropped: list[str] = []
    for k, g in enumerate(groups):
        if max_tokens is not None and g.tokens is not None:
            long = [i for i, t in enumerate(g.tokens) if len(t) > max_tokens]
            if long:
                dropped.append(f"group {k}: {len(long)} rollout(s) longer than {max_tokens} tokens; group dropped")
                continue
        if drop_equal_scores and len(g.scores) > 1 and len(set(g.scores)) == 1:
            dropped.append(f"group {k}: every rollout scored {g.scores[0]} (no learning signal)")
            continue
        kept.append(g)
    return kept, dropped
