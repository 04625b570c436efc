"""Scale-out: validation and check throughput on the example, local threads vs Ray (one node, two nodes).

All on this machine, so expect parity (2 cores either way); what it measures is Ray's overhead per unit, and the
per-unit costs from which the README estimates what N machines give. Ray nodes are started on 127.0.0.1.

    python benchmarks/scale.py [--candidates N] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only; read when Ray is imported

from rich.console import Console
from rich.table import Table

from repogym import baserun, validate
from repogym.check import check_many
from repogym.executor import Executor, LocalExecutor, RayExecutor
from repogym.records import ValidatedRecord
from repogym.repo import open_repo, temp_working_copy
from repogym.resolve import Resolver
from repogym.synth.coverage import coverage_map
from repogym.synth.procedural import synthesize

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "scheme_interpreter"


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_stages(
    executor: Executor[Any, Any] | None, workers: int, tasks: list[Any], src: Any, spec: Any, coverage: Any
) -> dict:
    """(validation seconds, checks seconds, validated) with one executor (None: local threads)."""
    out = Path(tempfile.mkdtemp(prefix="repogym-scale-"))
    validator = validate.CandidateValidator(src, spec, coverage=coverage)
    v_s = timed(lambda: validate.validate_many(tasks, validator, out / "v.jsonl", out / "r.jsonl", workers=workers,
                                               executor=executor))  # fmt: skip
    validated = [ValidatedRecord.model_validate_json(line) for line in (out / "v.jsonl").read_text().splitlines()]
    done: list[Any] = []
    c_s = timed(lambda: check_many(validated, Resolver("bwrap", spec=spec), workers=workers, timeout_s=300, reruns=0,
                                   on_done=done.append, executor=executor))  # fmt: skip
    return {"validate_s": v_s, "check_s": c_s, "validated": len(validated), "checked_ok": sum(r.ok for r in done)}


def ray_overhead(executor: RayExecutor[Any, Any], n: int = 200) -> float:
    """Seconds per trivial unit through Ray (submit, run, return), against a direct call."""
    return timed(lambda: executor.run(abs, range(n), lambda _u, _r: None)) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    src = open_repo(EXAMPLE)
    spec = baserun.prepare_with_base(src, "bwrap")
    coverage = coverage_map(src, spec)
    with temp_working_copy(src) as wc:
        tasks = synthesize(src, wc, ["scheme/*.py"], num_candidates=args.candidates, seed=0, avoid=set(),
                           coverage=coverage)  # fmt: skip
    rows = {"local": run_stages(LocalExecutor(args.workers), args.workers, tasks, src, spec, coverage)}
    for nodes in (1, 2):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2 // nodes, "node_ip_address": "127.0.0.1"})
        if nodes == 2:
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        executor: RayExecutor[Any, Any] = RayExecutor(args.workers, cluster.address)
        rows[f"ray, {nodes} node(s)"] = run_stages(executor, args.workers, tasks, src, spec, coverage)
        rows[f"ray, {nodes} node(s)"]["unit_overhead_ms"] = 1000 * ray_overhead(executor)
        ray.shutdown()
        cluster.shutdown()
    show(rows, len(tasks))


def show(rows: dict[str, dict], candidates: int) -> None:
    table = Table(title=f"scale-out on the example ({candidates} candidates, 2 cores)")
    for col in ("executor", "validated", "candidates/min", "vs local", "checked ok", "tasks/min", "vs local",
                "Ray overhead/unit"):  # fmt: skip
        table.add_column(col, justify="right")
    base = rows["local"]
    for name, r in rows.items():
        cpm, tpm = 60 * candidates / r["validate_s"], 60 * r["validated"] / r["check_s"]
        bcpm, btpm = 60 * candidates / base["validate_s"], 60 * base["validated"] / base["check_s"]
        over = f"{r['unit_overhead_ms']:.1f} ms" if "unit_overhead_ms" in r else "-"
        table.add_row(name, str(r["validated"]), f"{cpm:.1f}", f"{cpm / bcpm:.2f}x", str(r["checked_ok"]),
                      f"{tpm:.1f}", f"{tpm / btpm:.2f}x", over)  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
