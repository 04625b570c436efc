"""The procedural workflow on every repository of the corpus (../shared/data/repos/*.git.tar.gz), with no flag
but the repository: one table of environment build time, base run, candidates, validated and checked tasks,
yield, seconds and the top rejection reasons.

    python benchmarks/corpus.py [--candidates 12] [--workers 2] [--backend bwrap] [--repos NAME ...]
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from pathlib import Path

from repogym.errors import RepogymError
from repogym.records import read_jsonl
from repogym.workflow import Workflow, WorkflowConfig

ROOT = Path(__file__).resolve().parents[1]
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


def run_one(tarball: Path, args: argparse.Namespace) -> list[str]:
    name = tarball.name.removesuffix(".git.tar.gz")
    state = args.out / f"{name}-{args.backend}"
    cfg = WorkflowConfig(
        repo=str(tarball),
        state_dir=state,
        num_candidates=args.candidates,
        workers=args.workers,
        backend=args.backend,
        force_fresh=True,
    )
    start = time.monotonic()
    try:
        s = Workflow(cfg).run()
    except RepogymError as e:
        first = str(e).splitlines()[0][:90]
        return [name, "-", "-", "-", "-", "-", "-", "0", "0%", f"{time.monotonic() - start:.0f}", f"refused: {first}"]
    return [
        name,
        f"{s.env_seconds:.0f}",
        str(s.base_passed),
        str(s.known_failures + s.flaky),
        str(len(s.ignored_modules)),
        str(s.candidates),
        str(s.validated),
        str(s.passed),
        f"{s.passed / s.candidates:.0%}" if s.candidates else "0%",
        f"{time.monotonic() - start:.0f}",
        top_reasons(state),
    ]


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
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
    args = parser.parse_args()
    tarballs = sorted(args.corpus.glob("*.git.tar.gz"))
    if args.repos:
        tarballs = [t for t in tarballs if t.name.removesuffix(".git.tar.gz") in args.repos]
    if not tarballs:
        raise SystemExit(f"{args.corpus}: no *.git.tar.gz repositories (give --corpus DIR)")
    rows = []
    for t in tarballs:
        rows.append(run_one(t, args))
        print(f"{rows[-1][0]}: {rows[-1][7]} checked of {rows[-1][5]} candidates", flush=True)
    total = sum(int(r[7]) for r in rows)
    cands = sum(int(r[5]) for r in rows if r[5].isdigit())
    print(
        f"\n{args.backend}, {args.candidates} candidates per repository, --workers {args.workers}: "
        f"{sum(int(r[7]) > 0 for r in rows)} of {len(rows)} repositories give checked tasks, "
        f"{total} of {cands} candidates ({total / max(cands, 1):.0%})\n"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
