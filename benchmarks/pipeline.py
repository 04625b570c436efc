"""Pipeline throughput on the example project, change-aware (the default) against `--no-select` (and against
`--no-select --no-warm`, a fresh interpreter per run), in one run:
synthesis, validation yield and candidates per minute, checks per minute, and the whole workflow's checked tasks
per minute (with `--before REF` also that of an earlier commit, run the same way). Validation and the checks run
each way `--repeat` times, taking turns, and their medians are reported: on a shared 2-core machine one run's time
moves by 10 % or more from one minute to the next.

    python benchmarks/pipeline.py [--candidates 40] [--workers 2] [--repeat 3] [--before REF]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import TypeVar

from rich.console import Console
from rich.table import Table
from workflow_runs import ROOT, Run, forget_runs, source_tree, workflow

from repogym import baserun, validate
from repogym.check import check_many
from repogym.environment import EnvSpec
from repogym.records import CheckRecord, RejectedRecord, TaskRecord, ValidatedRecord
from repogym.repo import RepoSource, open_repo, temp_working_copy
from repogym.synth.coverage import coverage_map
from repogym.synth.procedural import synthesize
from repogym.workspace import kept_warm, open_ahead

EXAMPLE = ROOT / "examples" / "scheme_interpreter"
PATTERNS = ["scheme/*.py"]


Verdict = ValidatedRecord | RejectedRecord
OPENING: list[float] = []  # seconds to open the warm workers' sandboxes, before each warm validation


def validate_all(
    tasks: list[TaskRecord], validator: validate.CandidateValidator, workers: int
) -> tuple[float, list[Verdict]]:
    """The stage as the workflow runs it: warm, its workers' sandboxes were opened while the coverage map ran
    (their opening time is reported apart, in OPENING)."""
    out = Path(tempfile.mkdtemp(prefix="repogym-bench-"))
    with kept_warm():
        if validator.warm:
            start = time.perf_counter()
            for thread in open_ahead(validator.src, validator.spec, workers):
                thread.join()
            OPENING.append(time.perf_counter() - start)
        start = time.perf_counter()
        verdicts = validate.validate_many(tasks, validator, out / "v.jsonl", out / "r.jsonl", workers=workers)
        return time.perf_counter() - start, verdicts


def check_all(
    records: list[ValidatedRecord], src: RepoSource, spec: EnvSpec, workers: int, select: bool, warm: bool = True
) -> tuple[float, list[CheckRecord]]:
    results: list[CheckRecord] = []
    start = time.perf_counter()
    check_many(records, lambda _r: (src, spec), workers=workers, timeout_s=validate.Baseline(spec).timeout(),
               reruns=0, on_done=results.append, select=select, warm=warm)  # fmt: skip
    return time.perf_counter() - start, results


T = TypeVar("T")


def medians(repeat: int, ways: dict[str, Callable[[], tuple[float, list[T]]]]) -> dict[str, tuple[float, list[T]]]:
    """Each way's median time over ``repeat`` runs, the ways taking turns, and its first run's results."""
    runs: dict[str, list[tuple[float, list[T]]]] = {name: [] for name in ways}
    for _ in range(repeat):
        for name, way in ways.items():
            runs[name].append(way())
    return {name: (median(t for t, _ in done), done[0][1]) for name, done in runs.items()}


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=lambda v: max(1, int(v)), default=3, help="Runs of each stage, each way.")
    parser.add_argument("--before", help="Also run the whole workflow of this earlier commit (e.g. cc8ec0d).")
    args = parser.parse_args()
    console = Console(width=130)
    src = open_repo(EXAMPLE)
    forget_runs(src.name)
    spec = baserun.prepare_with_base(src, "bwrap")

    start = time.perf_counter()
    coverage = coverage_map(src, spec)
    cov_s = time.perf_counter() - start
    start = time.perf_counter()
    with temp_working_copy(src) as wc:
        tasks = synthesize(src, wc, PATTERNS, num_candidates=args.candidates, seed=0, avoid=set(), coverage=coverage)
    synth_s = time.perf_counter() - start

    validations = medians(args.repeat, {
        "sel": lambda: validate_all(tasks, validate.CandidateValidator(src, spec, coverage=coverage), args.workers),
        "full": lambda: validate_all(tasks, validate.CandidateValidator(src, spec), args.workers),
        "cold": lambda: validate_all(tasks, validate.CandidateValidator(src, spec, warm=False), args.workers),
    })  # fmt: skip
    (sel_s, sel), (full_s, full), (cold_s, _) = validations.values()
    kept = sorted((v for v in sel if isinstance(v, ValidatedRecord)), key=lambda v: v.task_id)
    lists = {v.task_id: (v.FAIL_TO_PASS, v.PASS_TO_PASS) for v in full if isinstance(v, ValidatedRecord)}
    same = sum(lists.get(v.task_id) == (v.FAIL_TO_PASS, v.PASS_TO_PASS) for v in kept)
    checks = medians(args.repeat, {
        "sel": lambda: check_all(kept, src, spec, args.workers, select=True),
        "full": lambda: check_all(kept, src, spec, args.workers, select=False),
        "cold": lambda: check_all(kept, src, spec, args.workers, select=False, warm=False),
    })  # fmt: skip
    (chk_sel_s, chk_sel), (chk_full_s, chk_full), (chk_cold_s, chk_cold) = checks.values()

    per_kind(console, tasks, sel)
    console.print(
        f"coverage map: {len(coverage.tests) if coverage else 0} tests in {cov_s:.1f}s; synthesis: {len(tasks)} "
        f"candidates in {synth_s:.1f}s; change-aware and --no-select agree on FAIL_TO_PASS/PASS_TO_PASS of "
        f"{same} of {len(kept)} validated tasks; validation and checks: medians of {args.repeat} runs each way; "
        f"warm validation starts with its {args.workers} workers' sandboxes open, as in the workflow, where they "
        f"open while the coverage map runs (opening took {median(OPENING):.2f}s, not in the stage's time)"
    )
    t = Table("stage", "change-aware", "--no-select", "ratio", "--no-select --no-warm", "ratio",
              title="validation and checks, same candidates")  # fmt: skip
    n_full = sum(isinstance(v, ValidatedRecord) for v in full)
    t.add_row("validated", f"{len(kept)} of {len(tasks)}", f"{n_full} of {len(tasks)}", "", "", "")
    t.add_row("validation, candidates/min", *rates(len(tasks), sel_s, full_s, cold_s))
    t.add_row("checks, tasks/min", *rates(len(kept), chk_sel_s, chk_full_s, chk_cold_s))
    c2 = [mean_check(c, "tests_fail") for c in (chk_sel, chk_full, chk_cold)]
    t.add_row("check 2, seconds per task", f"{c2[0]:.2f}", f"{c2[1]:.2f}", ratio(c2[1], c2[0]), f"{c2[2]:.2f}",
              ratio(c2[2], c2[0]))  # fmt: skip
    t.add_row("pass all checks", *(str(sum(r.ok for r in c)) for c in (chk_sel, chk_full)), "",
              str(sum(r.ok for r in chk_cold)), "")  # fmt: skip
    console.print(t)

    whole(console, args)


def rates(n: int, new_s: float, full_s: float, cold_s: float) -> list[str]:
    """Per minute: change-aware, --no-select and its ratio, --no-select --no-warm and its ratio."""
    return [f"{60 * n / new_s:.1f}", f"{60 * n / full_s:.1f}", ratio(full_s, new_s), f"{60 * n / cold_s:.1f}",
            ratio(cold_s, new_s)]  # fmt: skip


def mean_check(results: list[CheckRecord], name: str) -> float:
    secs = [c.seconds for r in results for c in r.checks if c.name == name]
    return sum(secs) / len(secs) if secs else 0.0


def per_kind(console: Console, tasks: list[TaskRecord], verdicts: list[Verdict]) -> None:
    tried, valid = Counter(t.strategy for t in tasks), Counter[str]()
    strategy = {t.task_id: t.strategy for t in tasks}
    for v in verdicts:
        if not isinstance(v, RejectedRecord):
            valid[strategy[v.task_id]] += 1
    table = Table("transform", "candidates", "validated", "yield", title="validation yield per transform")
    for strat in sorted(tried):
        table.add_row(strat, str(tried[strat]), str(valid[strat]), f"{valid[strat] / tried[strat]:.0%}")
    console.print(table)


def whole(console: Console, args: argparse.Namespace) -> None:
    """The whole workflow, as `make demo` runs it, each paying for its own base run and coverage map."""
    common = [*PATTERNS, "--num-candidates", str(args.candidates), "--workers", str(args.workers)]
    runs: list[Run] = []
    out = Path(tempfile.mkdtemp(prefix="repogym-bench-wf-"))
    if args.before:
        with source_tree(args.before) as tree:
            forget_runs(EXAMPLE.name)
            runs.append(workflow(f"before ({args.before})", tree, str(EXAMPLE), out / "before", common))
    for label, extra in (("change-aware", []), ("--no-select", ["--no-select"]), ("--no-warm", ["--no-warm"])):
        forget_runs(EXAMPLE.name)
        runs.append(workflow(label, ROOT / "src", str(EXAMPLE), out / label.strip("-"), [*common, *extra]))
    first = runs[0]
    t = Table("workflow", "candidates", "checked", "yield", "seconds", "checked/min", f"vs {first.label}",
              title="whole workflow (`repogym workflow`, fresh state, own base run and coverage map)")  # fmt: skip
    for r in runs:
        t.add_row(r.label, str(r.candidates), str(r.checked), f"{r.yield_:.0%}", f"{r.seconds:.1f}",
                  f"{r.per_minute:.1f}", ratio(r.per_minute, first.per_minute))  # fmt: skip
    console.print(t)


if __name__ == "__main__":
    main()
