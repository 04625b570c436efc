"""The procedural workflow on every repository of the corpus (../shared/data/repos/*.git.tar.gz), with no flag
but the repository, run as a user runs it: one table of environment build time, base run, candidates, validated
and checked tasks, yield, seconds and the top rejection reasons; and one of throughput, change-aware (the
default) against `--no-select` (and, with `--before REF`, the workflow of an earlier commit), each run paying
for its own base run and coverage map.

    python benchmarks/corpus.py [--candidates 12] [--workers 2] [--backend bwrap] [--repos NAME ...] [--before REF]
                                [--no-compare]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workflow_runs import ROOT, Run, forget_runs, source_tree, workflow

from repogym.records import read_jsonl

CORPUS = ROOT.parent / "shared" / "data" / "repos"
COLUMNS = (
    "repository",
    "env s",
    "base passed",
    "known failing",
    "ignored modules",
    "candidates",
    "validated",
    "checked",
    "yield",
    "seconds",
    "top rejection reasons",
)
RATES = (
    "repository",
    "yield",
    "yield, --no-select",
    "validation cand/min",
    "--no-select",
    "ratio",
    "checks tasks/min",
    "--no-select",
    "ratio",
    "check 2 s/task",
    "--no-select",
    "before",
    "ratio to before",
    "checked/min",
    "--no-select",
    "ratio",
    "before",
    "ratio to before",
)


def reason_kind(reason: str) -> str:
    """A rejection reason without its particulars (test ids, counts), so that alike reasons count together."""
    head = re.split(r"[:(]", reason, maxsplit=1)[0]
    return re.sub(r"\d+", "N", head).strip()[:70]


def top_reasons(state: Path, n: int = 2) -> str:
    counts: Counter[str] = Counter()
    for name, key in (("rejected_tasks.jsonl", "reason"), ("check_results.jsonl", "reason")):
        path = state / name
        for _, obj in read_jsonl(path) if path.exists() else []:
            if isinstance(obj, dict) and obj.get(key):
                counts[reason_kind(str(obj[key]))] += 1
    return "; ".join(f"{k} ({v})" for k, v in counts.most_common(n)) or "-"


def runs_of(tarball: Path, args: argparse.Namespace, before: Path | None) -> dict[str, Run | str]:
    """The repository's workflow runs by label; a run that fails is its error's first line."""
    name = tarball.name.removesuffix(".git.tar.gz")
    common = ["--num-candidates", str(args.candidates), "--workers", str(args.workers), "--backend", args.backend]
    plan = [("now", ROOT / "src", [])] + ([] if args.no_compare else [("no-select", ROOT / "src", ["--no-select"])])
    if before is not None:
        plan.insert(0, ("before", before, []))
    out: dict[str, Run | str] = {}
    for label, tree, extra in plan:
        forget_runs(name)
        try:
            out[label] = workflow(label, tree, str(tarball), args.out / f"{name}-{args.backend}-{label}",
                                  [*common, *extra])  # fmt: skip
        except RuntimeError as e:
            out[label] = str(e).splitlines()[0][:120]
    return out


def summary_row(name: str, run: Run | str, state: Path) -> list[str]:
    if isinstance(run, str):
        return [name, "-", "-", "-", "-", "-", "-", "0", "0%", "-", f"failed: {run}"]
    s = run.summary
    return [
        name,
        f"{s.get('env_seconds', 0):.0f}",
        str(s.get("base_passed", "-")),
        str(s.get("known_failures", 0) + s.get("flaky", 0)),
        str(len(s.get("ignored_modules", []))),
        str(run.candidates),
        str(run.validated),
        str(run.checked),
        f"{run.yield_:.0%}",
        f"{run.seconds:.0f}",
        top_reasons(state),
    ]


def rate_row(name: str, runs: dict[str, Run | str]) -> list[str]:
    now, full, before = runs.get("now"), runs.get("no-select"), runs.get("before")
    if not isinstance(now, Run) or not isinstance(full, Run):
        return [name, *["-"] * (len(RATES) - 1)]
    v = [r.stage_rate("validation", r.candidates) or 0.0 for r in (now, full)]
    c = [r.stage_rate("checks", r.validated) or 0.0 for r in (now, full)]
    c2 = [r.check_seconds("tests_fail") or 0.0 if isinstance(r, Run) else 0.0 for r in (now, full, before)]
    w = [r.per_minute if isinstance(r, Run) else 0.0 for r in (now, full, before)]
    return [
        name, f"{now.yield_:.0%}", f"{full.yield_:.0%}",
        f"{v[0]:.1f}", f"{v[1]:.1f}", ratio(v[0], v[1]),
        f"{c[0]:.1f}", f"{c[1]:.1f}", ratio(c[0], c[1]),
        f"{c2[0]:.2f}", f"{c2[1]:.2f}", f"{c2[2]:.2f}", ratio(c2[2], c2[0]),
        f"{w[0]:.1f}", f"{w[1]:.1f}", ratio(w[0], w[1]), f"{w[2]:.1f}", ratio(w[0], w[2]),
    ]  # fmt: skip


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def total(runs: list[Run | str]) -> tuple[int, int, float]:
    """(candidates, checked, seconds) over the runs that finished."""
    done = [r for r in runs if isinstance(r, Run)]
    return sum(r.candidates for r in done), sum(r.checked for r in done), sum(r.seconds for r in done)


def markdown(rows: list[list[str]], columns: tuple[str, ...] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default="bwrap")
    parser.add_argument("--repos", nargs="*", help="Names to run (default: every tarball of the corpus).")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "corpus")
    parser.add_argument("--before", help="Also run the workflow of this earlier commit (e.g. cc8ec0d).")
    parser.add_argument("--no-compare", action="store_true", help="Skip the --no-select runs (half the time).")
    args = parser.parse_args()
    tarballs = sorted(args.corpus.glob("*.git.tar.gz"))
    if args.repos:
        tarballs = [t for t in tarballs if t.name.removesuffix(".git.tar.gz") in args.repos]
    if not tarballs:
        raise SystemExit(f"{args.corpus}: no *.git.tar.gz repositories (give --corpus DIR)")
    with source_tree(args.before) if args.before else _no_tree() as before:
        results = {t.name.removesuffix(".git.tar.gz"): runs_of(t, args, before) for t in tarballs}
    rows, rates = [], []
    for name, runs in results.items():
        rows.append(summary_row(name, runs["now"], args.out / f"{name}-{args.backend}-now"))
        rates.append(rate_row(name, runs))
        print(f"{name}: {rows[-1][7]} checked of {rows[-1][5]} candidates", flush=True)
    print(f"\n{args.backend}, {args.candidates} candidates per repository, --workers {args.workers}\n")
    print(markdown(rows))
    print()
    print(markdown(rates, RATES))
    print()
    for label in ("before", "no-select", "now"):
        cands, checked, secs = total([r[label] for r in results.values() if label in r])
        if cands:
            print(f"{label}: {checked} of {cands} candidates checked ({checked / cands:.0%}) in {secs:.0f} s: "
                  f"{60 * checked / secs:.1f} checked tasks/min")  # fmt: skip


@contextmanager
def _no_tree() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
