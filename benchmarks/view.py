"""`repogym view` on a synthetic state dir of 5,000 tasks: report size, build time, load and filter time in Chromium.

The tasks are shaped like the demo's (diffs of a few hunks, 3 FAIL_TO_PASS and 200 PASS_TO_PASS tests, checks
with timings), plus an eval run of 500 attempts with 12-message trajectories. Load time is from navigation start
to the end of the page's script (the list built and filtered once), read from the page's own clock.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from repogym.records import append_record
from repogym.view import build_report

N_TASKS = 5_000
N_ATTEMPTS = 500
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
STRATEGIES = ["procedural:invert_if", "procedural:change_constant", "procedural:remove_loop", "feature_removal"]
REASONS = ["no test fails with the change: the changed code is not covered", "78 of 96 tests fail: breaks all"]


def _diff(path: str, n: int, rng: random.Random) -> str:
    lines = [f"diff --git a/{path} b/{path}", "index 1111111..2222222 100644", f"--- a/{path}", f"+++ b/{path}"]
    for h in range(n):
        lines.append(f"@@ -{10 * h + 1},7 +{10 * h + 1},7 @@ def f{h}(x):")
        lines += [f"     value = compute(x, {rng.randint(0, 99)})", "     if value is None:", "         return 0"]
        lines += [f"-    return value + {h}", f"+    return value - {h}  # changed", "     # trailing context", ""]
    return "\n".join(lines) + "\n"


def _write_state(state: Path, rng: random.Random) -> None:
    for i in range(N_TASKS):
        for name, record in _task_records(i, rng):
            append_record(state / f"{name}.jsonl", record)


def _task_records(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """The records of one synthetic task: a third rejected, one in eleven of the rest failing check 3."""
    tid, strategy, repo = f"synthetic/{i}", rng.choice(STRATEGIES), f"/repos/project{i % 7}"
    task = {"task_id": tid, "repo": repo, "strategy": strategy, "subject": f"change {i}"}
    out = [("tasks", {**task, "task_description": f"Restore behaviour {i}. " * 8})]
    if i % 3 == 0:
        return [*out, ("rejected_tasks", {"task_id": tid, "strategy": strategy, "reason": rng.choice(REASONS)})]
    tests = {
        "FAIL_TO_PASS": [f"tests.test_feature::test_{i}_{k}" for k in range(3)],
        "PASS_TO_PASS": [f"tests.test_mod{j % 9}::test_case_{j}" for j in range(200)],
    }
    src = _diff(f"pkg/mod{i % 40}.py", rng.randint(1, 4), rng) + _diff("tests/test_feature.py", 2, rng)
    validated = {"task_id": tid, "repo": repo, "src.diff": src, "tests.diff": _diff("tests/test_feature.py", 2, rng)}
    ok = i % 11 != 1
    checks = [
        {"name": n, "ok": ok or n != "gold_passes", "seconds": 1.5, "failed_tests": tests["FAIL_TO_PASS"][:1]}
        for n in ("task_state", "tests_fail", "gold_passes")
    ]
    reason = "" if ok else "FAIL_TO_PASS test(s) still fail with the gold patch"
    check = {"task_id": tid, "ok": ok, "checks": checks, "reason": reason, **tests}
    return [*out, ("validated_tasks", {**validated, **tests}), ("check_results", check)]


def _write_eval(out: Path, rng: random.Random) -> None:
    for n in range(N_ATTEMPTS):
        traj = out / "trajectories" / f"synthetic__{n * 3 + 1}__0.json"
        traj.parent.mkdir(parents=True, exist_ok=True)
        messages: list[dict[str, Any]] = [{"role": "system", "content": "You are"}, {"role": "user", "content": "Fix"}]
        for t in range(5):
            args = json.dumps({"command": f"pytest -k {t}"})
            messages.append(
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "bash", "arguments": args}}]}
            )
            messages.append({"role": "tool", "content": "x" * rng.randint(200, 3000)})
        traj.write_text(json.dumps({"messages": messages, "stop_reason": "submitted"}))
        result = {"task_id": f"synthetic/{n * 3 + 1}", "attempt": 0, "resolved": n % 2 == 0, "turns": 6}
        append_record(out / "results.jsonl", {**result, "stop_reason": "submitted", "trajectory": str(traj)})


def _browser_times(report: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(report.as_uri())
        page.wait_for_function("() => window.repogymReady !== undefined")
        times = {"load_ms": page.evaluate("() => window.repogymReady")}
        times["filter_outcome_ms"] = page.evaluate(
            "() => { const t = performance.now(); document.getElementById('f-status').value = 'failed';"
            " filter(); return performance.now() - t; }"
        )
        times["search_first_ms"] = page.evaluate(
            "() => { const t = performance.now(); document.getElementById('q').value = 'test_4000_1';"
            " filter(); return performance.now() - t; }"
        )
        times["search_again_ms"] = page.evaluate(
            "() => { const t = performance.now(); document.getElementById('q').value = 'test_12';"
            " filter(); return performance.now() - t; }"
        )
        times["open_task_ms"] = page.evaluate(
            "() => { const t = performance.now(); show('synthetic/4'); return performance.now() - t; }"
        )
        browser.close()
    return times


def main() -> None:
    rng = random.Random(0)
    root = Path(tempfile.mkdtemp(prefix="repogym-view-bench-"))
    try:
        _write_state(root / "state", rng)
        _write_eval(root / "eval", rng)
        t = time.perf_counter()
        n = build_report(root / "state", [root / "eval"], root / "report.html")
        build_s = time.perf_counter() - t
        size = f"{n['bytes'] / 1e6:.1f} MB"
        print(f"{n['tasks']} tasks, {n['attempts']} attempts: report of {size} built in {build_s:.2f} s")
        for k, v in _browser_times(root / "report.html").items():
            print(f"  {k:20} {v:8.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
