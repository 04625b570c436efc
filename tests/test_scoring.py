"""Rewards: binary agrees with eval's `resolved`; partial credit is the product of the two shares."""

from __future__ import annotations

import pytest

from repogym.scoring import reward, split_outcomes

P2P = ["t::a", "t::b", "t::c", "t::d"]


def test_binary_is_one_only_when_resolved() -> None:
    assert reward({"t::x": "passed", "t::y": "passed"}, P2P, [], "binary") == 1.0
    assert reward({"t::x": "passed", "t::y": "failed"}, P2P, [], "binary") == 0.0
    assert reward({"t::x": "passed"}, P2P, ["t::a"], "binary") == 0.0
    assert reward({"t::x": "passed"}, P2P, []) == 1.0, "binary is the default"


def test_partial_credit_multiplies_the_shares() -> None:
    assert reward({"t::x": "passed", "t::y": "failed"}, P2P, [], "partial") == 0.5
    assert reward({"t::x": "passed", "t::y": "missing"}, P2P, ["t::a"], "partial") == 0.5 * 0.75
    assert reward({"t::x": "passed"}, P2P, P2P, "partial") == 0.0, "breaking every other test earns nothing"
    assert reward({"t::x": "passed"}, [], [], "partial") == 1.0, "no PASS_TO_PASS test: only FAIL_TO_PASS counts"
    assert reward({"t::x": "failed"}, P2P, [], "partial") == 0.0


def test_a_task_without_fail_to_pass_earns_nothing_and_bad_modes_are_refused() -> None:
    assert reward({}, P2P, [], "partial") == 0.0 and reward({}, P2P, [], "binary") == 0.0
    with pytest.raises(ValueError, match="binary, partial"):
        reward({"t::x": "passed"}, P2P, [], "half")


def test_split_outcomes_counts_missing_and_skipped_tests_as_failed() -> None:
    outcomes = {"t::x": "passed", "t::a": "passed", "t::b": "skipped", "t::c": "failed"}
    f2p, p2p_failed = split_outcomes(outcomes, ["t::x", "t::y"], P2P)
    assert f2p == {"t::x": "passed", "t::y": "missing"} and p2p_failed == ["t::b", "t::c", "t::d"]
    assert reward(f2p, P2P, p2p_failed, "partial") == 0.5 * 0.25
