"""What a sandbox costs: `true` and the example project's test suite under process, bwrap and podman, each with
a new sandbox per command and with a session (one long-lived sandbox serving every command).

Prints medians and the ratio of each to `process` (no isolation). podman is included when it works and the
example image exists (`repogym env build examples/scheme_interpreter --backend podman --dockerfile ...`).

    python benchmarks/sandbox_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

from _common import median_seconds, print_ratios

from repogym import environment
from repogym.repo import open_repo, temp_working_copy
from repogym.sandbox.podman import default_image_name, image_exists

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "scheme_interpreter"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    src = open_repo(EXAMPLE)
    backends = ["process", "bwrap"]
    if shutil.which("podman") and image_exists("podman", default_image_name(src.name)):
        backends.append("podman")
    else:
        print("podman skipped: build the example image first (see README)", file=sys.stderr)
    rows: dict[str, dict[str, float]] = {"true": {}, "test suite": {}}
    columns = [(b, False) for b in backends] + [(b, True) for b in backends if b != "process"]
    for backend, session in columns:
        spec = environment.prepare(src, backend)
        column = f"{backend} session" if session else backend
        with temp_working_copy(src) as wc, environment.open_env_sandbox(spec, wc, session=session) as sb:
            sb.exec("true")  # a session starts on its first command; the steady state is what a rollout pays
            rows["true"][column] = median_seconds(lambda sb=sb: sb.exec("true"), args.runs)
            suite_runs = max(3, args.runs // 4)
            run = environment.run_tests(spec, sb)
            assert run.all_passed, f"{backend}: the example suite must pass ({run.note})"
            rows["test suite"][column] = median_seconds(
                lambda sb=sb, spec=spec: environment.run_tests(spec, sb), suite_runs
            )
    print_ratios(f"sandbox overhead, median of {args.runs} runs", rows, "process")


if __name__ == "__main__":
    main()
