"""The reward of one graded attempt: binary (resolved or not) or partial credit, from per-test outcomes.

Partial credit is (share of FAIL_TO_PASS tests passing) x (share of PASS_TO_PASS tests still passing), as
Hugging Face's Repo2RLEnv scores: a fix that makes half the target tests pass without breaking anything earns 0.5,
one that breaks every other test earns 0. This module imports nothing but the standard library, because the
Harbor export ships it beside each task's verifier, where repogym is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MODES = ("binary", "partial")


def split_outcomes(
    outcomes: Mapping[str, str], fail_to_pass: Sequence[str], pass_to_pass: Sequence[str]
) -> tuple[dict[str, str], list[str]]:
    """(outcome of each FAIL_TO_PASS test, PASS_TO_PASS tests that failed or went missing) from a suite run."""
    f2p = {t: outcomes.get(t, "missing") for t in fail_to_pass}
    return f2p, [t for t in pass_to_pass if outcomes.get(t) != "passed"]


def reward(
    fail_to_pass_outcomes: Mapping[str, str],
    pass_to_pass: Sequence[str],
    pass_to_pass_failed: Sequence[str],
    mode: str = "binary",
) -> float:
    """1.0 or 0.0 (``binary``: every FAIL_TO_PASS passes and no PASS_TO_PASS fails), or the product of the two
    shares (``partial``). A task with no FAIL_TO_PASS test earns 0: there is nothing to fix, so nothing to credit.
    Raises ValueError for an unknown mode."""
    if mode not in MODES:
        raise ValueError(f"unknown reward mode {mode!r}; choose one of: {', '.join(MODES)}")
    if not fail_to_pass_outcomes:
        return 0.0
    f2p_share = sum(v == "passed" for v in fail_to_pass_outcomes.values()) / len(fail_to_pass_outcomes)
    failed = set(pass_to_pass_failed) & set(pass_to_pass)
    p2p_share = 1.0 - len(failed) / len(set(pass_to_pass)) if pass_to_pass else 1.0
    if mode == "binary":
        return 1.0 if f2p_share == 1.0 and not failed else 0.0
    return f2p_share * p2p_share
