"""Pipeline throughput on the example project: synthesis rate, validation yield per transform, and check
throughput with 1 and 2 workers (ratio).

    python benchmarks/pipeline.py [--candidates N]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from repogym import environment, validate
from repogym.check import check_many
from repogym.records import CheckRecord, ValidatedRecord
from repogym.repo import open_repo, temp_working_copy
from repogym.synth.coverage import executed_functions
from repogym.synth.procedural import synthesize

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "scheme_interpreter"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=40)
    args = parser.parse_args()
    console = Console(width=120)
    src = open_repo(EXAMPLE)
    spec = environment.prepare(src, "bwrap")
    base = validate.baseline(src, spec)

    start = time.perf_counter()
    with temp_working_copy(src) as wc:
        with environment.open_env_sandbox(spec, wc) as sb:
            executed = executed_functions(spec, sb)
        tasks = synthesize(
            src, wc, ["scheme/*.py"], num_candidates=args.candidates, seed=0, avoid=set(), executed=executed
        )
    synth_s = time.perf_counter() - start

    start = time.perf_counter()
    kept: list[ValidatedRecord] = []
    tried: Counter[str] = Counter()
    valid: Counter[str] = Counter()
    for t in tasks:
        tried[t.strategy] += 1
        try:
            kept.append(validate.validate_auto(t, src, spec, base, base.timeout()))
            valid[t.strategy] += 1
        except validate.Rejected:
            pass
    validate_s = time.perf_counter() - start

    timings: dict[int, float] = {}
    passed: dict[int, int] = {}
    for workers in (1, 2):
        results: list[CheckRecord] = []
        start = time.perf_counter()
        check_many(
            kept, lambda _r: (src, spec), workers=workers, timeout_s=base.timeout(), reruns=0, on_done=results.append
        )
        timings[workers] = time.perf_counter() - start
        passed[workers] = sum(r.ok for r in results)

    table = Table("transform", "candidates", "validated", "yield", title="validation yield per transform")
    for strat in sorted(tried):
        table.add_row(strat, str(tried[strat]), str(valid[strat]), f"{valid[strat] / tried[strat]:.0%}")
    table.add_row("total", str(len(tasks)), str(len(kept)), f"{len(kept) / max(1, len(tasks)):.0%}", style="bold")
    console.print(table)
    console.print(f"synthesis: {len(tasks)} candidates in {synth_s:.1f}s = {60 * len(tasks) / synth_s:.0f} per minute")
    console.print(f"validation: {len(tasks)} candidates in {validate_s:.1f}s = {60 * len(tasks) / validate_s:.1f}/min")
    t = Table("workers", "tasks", "pass all checks", "seconds", "tasks/min", "speed-up vs 1", title="check throughput")
    for w in (1, 2):
        rate = 60 * len(kept) / timings[w]
        t.add_row(
            str(w),
            str(len(kept)),
            str(passed[w]),
            f"{timings[w]:.1f}",
            f"{rate:.1f}",
            f"{timings[1] / timings[w]:.2f}x",
        )
    console.print(t)


if __name__ == "__main__":
    main()
