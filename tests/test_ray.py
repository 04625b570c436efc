"""The Ray executor on a real two-node Ray cluster on 127.0.0.1: same records as local, dead workers retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from test_eval import ORIGINAL
from test_eval import task as task  # the module-scoped task fixture, shared

from repogym.executor import InfrastructureFailure, LocalExecutor, RayExecutor
from repogym.sandbox.bwrap import bwrap_available
from repogym.scripted_server import ScriptedServer, ToolCall

# Every Ray address on loopback (read when Ray is imported): the test cluster, the CLI runs and their workers.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="Ray is not installed (make ray-deps)")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")]
MARKERS = Path(os.environ.get("TMPDIR", "/tmp")) / f"repogym-ray-markers-{os.getpid()}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two Ray nodes on this machine."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    c.wait_for_nodes()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the units below live in this test module
    yield c.address
    ray.shutdown()
    c.shutdown()


def square_on_a_node(n: int) -> tuple[int, str]:
    marker = MARKERS / str(n)
    if n == 2 and not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("died once")
        os._exit(1)  # the worker dies mid-unit, the first time only
    if n == 3:
        os._exit(1)  # dies every time
    return n * n, ray.get_runtime_context().get_node_id()


def test_units_run_on_both_nodes_and_a_dead_worker_is_retried(cluster: str) -> None:
    out: dict[int, object] = {}
    RayExecutor(2, cluster, max_retries=2).run(square_on_a_node, range(8), out.__setitem__)
    assert sorted(out) == list(range(8)), "every unit has exactly one result"
    assert {n: r[0] for n, r in out.items() if isinstance(r, tuple)} == {n: n * n for n in range(8) if n != 3}
    assert isinstance(out[3], InfrastructureFailure) and "WorkerCrashedError after 2 retries" in str(out[3])
    assert len({r[1] for r in out.values() if isinstance(r, tuple)}) == 2, "both nodes ran units"


def test_local_and_ray_executors_agree(cluster: str) -> None:
    local: dict[int, object] = {}
    LocalExecutor(2).run(lambda n: n * 3, range(6), local.__setitem__)
    remote: dict[int, object] = {}
    RayExecutor(2, cluster).run(lambda n: n * 3, range(6), remote.__setitem__)
    assert local == remote == {n: n * 3 for n in range(6)}


def honest_agent(req: dict) -> ToolCall:
    """The same two steps in every rollout, whatever the interleaving: write the fix, then submit."""
    first = len(req["messages"]) <= 2
    return ToolCall("write_file", {"path": "scheme/builtins.py", "content": ORIGINAL}) if first else ToolCall("submit")


def _eval(validated: Path, out: Path, server: ScriptedServer, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "repogym", "eval", "--validated", str(validated), "--model", "openai/boa",
         "--api-base", server.url, "--output-dir", str(out), "--attempts", "3", "--workers", "2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip


def _records(out: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    keys = ("task_id", "attempt", "resolved", "stop_reason", "turns", "fail_to_pass", "pass_to_pass_failed", "patch")
    return sorted(tuple(json.dumps(r[k], sort_keys=True) for k in keys) for r in rows)


def test_eval_on_ray_gives_the_records_of_local_even_when_a_worker_is_killed(
    cluster: str, task: tuple[Path, Path], tmp_path: Path
) -> None:
    _, validated = task
    with ScriptedServer(honest_agent) as server:
        local = _eval(validated, tmp_path / "local", server)
        assert local.wait(timeout=600) == 0, local.stdout and local.stdout.read()
        on_ray = _eval(validated, tmp_path / "ray", server, "--executor", "ray", "--ray-address", cluster)
        killed = _kill_one_worker_running("ray::apply", deadline=time.monotonic() + 120)
        assert on_ray.wait(timeout=900) == 0, on_ray.stdout and on_ray.stdout.read()
    assert killed, "no Ray worker was seen running an attempt"
    assert _records(tmp_path / "ray") == _records(tmp_path / "local")
    assert [r[2] for r in _records(tmp_path / "ray")] == ["true"] * 3, "every attempt resolved, exactly once"


def _kill_one_worker_running(title: str, deadline: float) -> bool:
    """SIGKILL the first process whose title shows it running ``title`` (a Ray worker in a unit)."""
    while time.monotonic() < deadline:
        ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
        for line in ps.splitlines():
            pid, _, args = line.strip().partition(" ")
            if args.startswith(title):
                os.kill(int(pid), 9)
                return True
        time.sleep(0.05)
    return False


def test_check_on_ray_gives_the_records_of_local(cluster: str, task: tuple[Path, Path], tmp_path: Path) -> None:
    _, validated = task
    outs = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--ray-address", cluster])):
        outs[name] = tmp_path / f"{name}.jsonl"
        r = subprocess.run(
            [sys.executable, "-m", "repogym", "check", str(validated), "--output", str(outs[name]), *extra],
            capture_output=True, text=True, cwd=ROOT, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr

    def verdicts(path: Path) -> list[tuple]:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return [(r["task_id"], r["ok"], r["reason"], r["FAIL_TO_PASS"], r["PASS_TO_PASS"]) for r in rows]

    assert verdicts(outs["ray"]) == verdicts(outs["local"]) and verdicts(outs["local"])[0][1] is True
