"""Reward of one Harbor trial of a repogym task: read the suite's JUnit XML, write the reward to stdout.

Shipped into each exported task's tests/ folder beside repogym's own ``testresults`` and ``scoring`` modules
(standard library only), so the verifier grades exactly as ``repogym eval`` does, without repogym installed.
Usage: python3 grade.py JUNIT_XML TESTS_JSON  (TESTS_JSON: FAIL_TO_PASS, PASS_TO_PASS, reward mode)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from repogym_scoring import reward, split_outcomes
from repogym_testresults import parse_junit


def main(junit: Path, tests: Path) -> float:
    spec = json.loads(tests.read_text())
    try:  # no report, or a torn one, when the suite crashed or timed out: nothing passed
        outcomes = parse_junit(junit.read_text())
    except (OSError, ValueError):
        outcomes = {}
    f2p, p2p_failed = split_outcomes(outcomes, spec["FAIL_TO_PASS"], spec["PASS_TO_PASS"])
    score = reward(f2p, spec["PASS_TO_PASS"], p2p_failed, spec["reward"])
    details = {"reward": score, "mode": spec["reward"], "fail_to_pass": f2p, "pass_to_pass_failed": p2p_failed}
    print(json.dumps(details, indent=1), file=sys.stderr)
    return score


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), Path(sys.argv[2])))
