"""End to end: workflow, resume after SIGKILL, the checks' verdicts, validation, a second project."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import EXAMPLE, make_git_repo, run_cli

from repogym.sandbox.bwrap import bwrap_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed"),
]
NUM = 12


def _ids(path: Path) -> list[str]:
    """The ids of a state file ([] when there is none: no candidate was rejected, say)."""
    return (
        [json.loads(line)["task_id"] for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def _workflow_args(repo: Path, state: Path) -> list[str]:
    return ["workflow", str(repo), "scheme/*.py", "--state-dir", str(state), "--num-candidates", str(NUM)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One uninterrupted workflow run on a copy of the example project: (repo, state dir)."""
    root = tmp_path_factory.mktemp("demo")
    repo = make_git_repo(EXAMPLE, root / "scheme_interpreter")
    state = root / "state"
    r = run_cli(*_workflow_args(repo, state), "--workers", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "repogym workflow" in r.stdout and "total" in r.stdout
    return repo, state


def test_workflow_produces_verified_tasks(demo: tuple[Path, Path]) -> None:
    _, state = demo
    assert len(_ids(state / "tasks.jsonl")) == NUM
    checks = [json.loads(line) for line in (state / "check_results.jsonl").read_text().splitlines()]
    ok = [c for c in checks if c["ok"]]
    assert len(ok) >= 3
    validated = {json.loads(line)["task_id"]: json.loads(line) for line in (state / "validated_tasks.jsonl").open()}
    for c in ok:
        v = validated[c["task_id"]]
        assert v["src.diff"].startswith("diff --git") and v["tests.diff"].startswith("diff --git")
        assert set(c["FAIL_TO_PASS"]) == set(v["FAIL_TO_PASS"])
        assert [x["name"] for x in c["checks"]] == ["task_state", "tests_fail", "gold_passes"]
    rejected_path = state / "rejected_tasks.jsonl"  # none at all when every candidate validates
    rejected = [json.loads(line) for line in rejected_path.open()] if rejected_path.exists() else []
    assert len(rejected) + len(validated) == NUM
    assert all(r["reason"] for r in rejected)


def test_resume_after_sigkill_matches_uninterrupted_run(demo: tuple[Path, Path], tmp_path: Path) -> None:
    repo, ref_state = demo
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "repogym", *_workflow_args(repo, state), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    validated = state / "validated_tasks.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if validated.exists() and len(validated.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed mid-validation"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with validated.open("a") as f:
        f.write('{"task_id": "scheme_interpreter/torn", "repo": ')  # what a kill mid-write leaves
    assert not (state / "check_results.jsonl").exists()

    r = run_cli(*_workflow_args(repo, state), "--workers", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("tasks.jsonl", "validated_tasks.jsonl", "rejected_tasks.jsonl", "check_results.jsonl"):
        ids = _ids(state / name)
        assert len(ids) == len(set(ids)), f"duplicate records in {name}"
        assert "scheme_interpreter/torn" not in ids
    assert sorted(_ids(state / "check_results.jsonl")) == sorted(_ids(ref_state / "check_results.jsonl"))
    assert "dropped a torn last line of validated_tasks.jsonl" in (state / "workflow.log").read_text()


def _records(state: Path) -> list[dict]:
    checks = {json.loads(line)["task_id"]: json.loads(line)["ok"] for line in (state / "check_results.jsonl").open()}
    return [
        json.loads(line) for line in (state / "validated_tasks.jsonl").open() if checks[json.loads(line)["task_id"]]
    ]


def _new_test_diff(name: str, body: str) -> str:
    lines = textwrap.dedent(body).splitlines()
    hunk = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/tests/{name} b/tests/{name}\nnew file mode 100644\n--- /dev/null\n+++ b/tests/{name}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{hunk}"
    )


def test_check_gives_each_bad_task_its_reason(demo: tuple[Path, Path], tmp_path: Path) -> None:
    repo, state = demo
    good = _records(state)[0]
    # Build-A-Bench's own records carry only these fields.
    seed = {k: good[k] for k in ("task_id", "repo", "container", "src.diff", "tests.diff")}
    no_fail = {
        **seed,
        "task_id": "bad/no-fail",
        "tests.diff": _new_test_diff("test_extra.py", "def test_ok():\n    assert True"),
    }
    always_fails = _new_test_diff("test_never.py", "def test_never():\n    assert False")
    gold_fails = {**seed, "task_id": "bad/gold", "tests.diff": seed["tests.diff"] + always_fails}
    corrupt = {
        **seed,
        "task_id": "bad/corrupt",
        "src.diff": "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\nbroken\n",
    }
    missing = {k: v for k, v in seed.items() if k != "tests.diff"} | {"task_id": "bad/missing"}
    path = tmp_path / "validated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (seed, no_fail, gold_fails, missing, corrupt)))
    out = tmp_path / "checks.jsonl"

    r = run_cli("check", str(path), "--workers", "2", "--output", str(out), "--repo", str(repo))
    assert r.returncode == 1
    assert f"{path}:4: field 'tests.diff': field required" in r.stderr
    results = {c["task_id"]: c for c in map(json.loads, out.read_text().splitlines())}
    assert set(results) == {seed["task_id"], "bad/no-fail", "bad/gold", "bad/corrupt"}
    assert results[seed["task_id"]]["ok"] is True
    assert "tests.diff makes no test fail" in results["bad/no-fail"]["reason"]
    assert results["bad/gold"]["reason"].startswith("FAIL_TO_PASS test(s) still fail with the gold patch")
    assert "tests.test_never::test_never" in results["bad/gold"]["reason"]
    assert results["bad/corrupt"]["reason"].startswith("src.diff does not apply: ")
    assert "corrupt patch" in results["bad/corrupt"]["reason"]
    assert "1 of 4 task(s) pass all checks" in r.stdout

    again = run_cli("check", str(path), "--output", str(out), "--repo", str(repo))
    assert "4 already checked" in again.stdout and len(out.read_text().splitlines()) == 4


def test_check_3_names_a_pass_to_pass_regression_and_reruns_are_recorded(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    """A src.diff that adds a passing test outside tests.diff: the gold patch (reverse src.diff) deletes it, so a
    PASS_TO_PASS test goes missing in check 3, and that is the reason. A good task checked with --reruns 1 has its
    rerun of check 3 recorded and is not flaky."""
    repo, state = demo
    good = _records(state)[0]
    seed = {k: good[k] for k in ("task_id", "repo", "container", "src.diff", "tests.diff")}
    extra = _new_test_diff("test_only_in_task_state.py", "def test_here():\n    assert True")
    regress = {**seed, "task_id": "bad/p2p", "src.diff": seed["src.diff"] + extra}
    path = tmp_path / "validated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (seed, regress)))
    out = tmp_path / "checks.jsonl"
    r = run_cli("check", str(path), "--reruns", "1", "--output", str(out), "--repo", str(repo))
    assert r.returncode == 1, r.stdout + r.stderr
    results = {c["task_id"]: c for c in map(json.loads, out.read_text().splitlines())}
    reason = results["bad/p2p"]["reason"]
    assert reason.startswith("PASS_TO_PASS test(s) fail or are missing with the gold patch"), reason
    assert "tests.test_only_in_task_state::test_here" in reason
    ok = results[seed["task_id"]]
    assert ok["ok"] is True and ok["flaky"] is False
    assert [c["name"] for c in ok["checks"]] == ["task_state", "tests_fail", "gold_passes", "gold_passes_rerun1"]


def test_validate_from_input_json(demo: tuple[Path, Path], tmp_path: Path) -> None:
    repo, state = demo
    tasks = [json.loads(line) for line in (state / "tasks.jsonl").open()]
    rejected = set(_ids(state / "rejected_tasks.jsonl"))
    good = next(t for t in tasks if t["task_id"] not in rejected)
    out = tmp_path / "v.jsonl"
    r = run_cli(
        "validate",
        "--agent",
        "auto",
        "--input-json",
        "-",
        "--output",
        str(out),
        "--repo",
        str(repo),
        input=json.dumps(good) + "\n",
    )
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text())
    assert rec["task_id"] == good["task_id"] and rec["validator"] == "auto" and rec["FAIL_TO_PASS"]
    assert "tests such as" in rec["task_description"]

    doc = '"""Render Scheme values as Scheme source text."""\n'
    patch = f"### scheme/printer.py\n<<<<<<< SEARCH\n{doc}=======\n{doc.replace('Render', 'Print')}>>>>>>> REPLACE\n"
    noop = {**good, "task_id": "x/noop", "patches": patch}
    r = run_cli("validate", "--input-json", json.dumps(noop), "--output", str(out), "--repo", str(repo))
    assert r.returncode == 1 and "x/noop: rejected: no test fails with the change" in r.stdout

    r = run_cli("validate", "--input-json", "{not json", "--repo", str(repo))
    assert r.returncode == 2 and "--input-json: not a task record" in r.stderr


def test_validate_resumed_after_a_kill_decides_nothing_twice(demo: tuple[Path, Path], tmp_path: Path) -> None:
    """`repogym validate --workers 2` killed mid-way, then run again: every candidate is decided exactly once, and
    the second run only validates what the first had not decided (rejections included)."""
    repo, state = demo
    out, rejected = tmp_path / "validated.jsonl", tmp_path / "rejected_tasks.jsonl"
    args = [sys.executable, "-m", "repogym", "validate", "--tasks", str(state / "tasks.jsonl"), "--output", str(out),
            "--repo", str(repo), "--workers", "2"]  # fmt: skip
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(_decided(out, rejected)) < 3:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = _decided(out, rejected)
    assert 3 <= len(before) < NUM, "the first run must be killed mid-way"
    again = run_cli("validate", "--tasks", str(state / "tasks.jsonl"), "--output", str(out), "--repo", str(repo),
                    "--workers", "2")  # fmt: skip
    after = _decided(out, rejected)
    assert sorted(after) == sorted(set(after)) and len(after) == NUM, "each candidate decided exactly once"
    assert set(before) <= set(after), "what the first run decided stays as it was"
    announced = [line for line in again.stdout.splitlines() if ": validated" in line or ": rejected" in line]
    assert len(announced) == NUM - len(before), "the second run decided only the rest"


def _decided(*paths: Path) -> list[str]:
    return [tid for p in paths if p.exists() for tid in _ids(p)]


SECOND = {
    "pyproject.toml": """
        [project]
        name = "inventory"
        version = "0.1.0"
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [tool.setuptools]
        packages = ["inventory"]
        """,
    "inventory/__init__.py": "",
    "inventory/stock.py": """
        class Stock:
            def __init__(self):
                self.items = {}

            def add(self, name, qty):
                if qty <= 0:
                    raise ValueError("quantity must be positive")
                self.items[name] = self.items.get(name, 0) + qty
                return self.items[name]

            def remove(self, name, qty):
                have = self.items.get(name, 0)
                if qty > have:
                    raise KeyError(name)
                self.items[name] = have - qty
                if self.items[name] == 0:
                    del self.items[name]

            def total(self):
                count = 0
                for qty in self.items.values():
                    count += qty
                return count

        def restock_plan(stock, minimum):
            plan = {}
            for name, qty in sorted(stock.items.items()):
                if qty < minimum:
                    plan[name] = minimum - qty
            return plan
        """,
    "tests/test_stock.py": """
        import pytest
        from inventory.stock import Stock, restock_plan

        def make():
            s = Stock()
            s.add("apple", 3)
            s.add("pear", 10)
            return s

        def test_add_accumulates():
            s = make()
            assert s.add("apple", 2) == 5

        def test_add_rejects_zero():
            with pytest.raises(ValueError):
                Stock().add("x", 0)

        def test_remove_partial():
            s = make()
            s.remove("pear", 4)
            assert s.items["pear"] == 6

        def test_remove_all_deletes():
            s = make()
            s.remove("apple", 3)
            assert "apple" not in s.items

        def test_remove_too_many():
            with pytest.raises(KeyError):
                make().remove("apple", 4)

        def test_total():
            assert make().total() == 13

        def test_restock_plan():
            assert restock_plan(make(), 5) == {"apple": 2}

        def test_restock_plan_empty():
            assert restock_plan(make(), 1) == {}
        """,
}


def test_procedural_on_a_second_project(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name, text in SECOND.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(textwrap.dedent(text))
    repo = make_git_repo(src, tmp_path / "inventory")
    synth = run_cli("synth", str(repo), "inventory/*.py", "--num-candidates", "30", "--json")
    assert synth.returncode == 0, synth.stderr
    records = [json.loads(line) for line in synth.stdout.splitlines()]
    assert len({r["strategy"] for r in records}) >= 6
    assert all(r["task_id"].startswith("inventory/") and "<<<<<<< SEARCH" in r["patches"] for r in records)
    state = tmp_path / "state"
    r = run_cli("workflow", str(repo), "inventory/*.py", "--state-dir", str(state), "--num-candidates", "10")
    assert r.returncode == 0, r.stderr[-2000:]
    ok = [json.loads(line) for line in (state / "check_results.jsonl").open() if json.loads(line)["ok"]]
    assert len(ok) >= 2


def test_remove_tests_cuts_several_functions_of_one_file_by_position(tmp_path: Path) -> None:
    from repogym.validate import remove_tests

    text = (
        "import pytest\n\n\nclass TestK:\n    def test_a(self):\n        pass\n\n"
        "    def test_keep(self):\n        pass\n\n"
        "    def test_z(self):\n        pass\n\n\n@pytest.mark.parametrize('x', [1, 2])\ndef test_p(x):\n    pass\n\n\n"
        "class TestBase:\n    pass\n\n\nclass TestInherits(TestBase):\n    pass\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text(text)
    (tmp_path / "tests" / "test_b.py").write_text(text)
    ids = ["tests.test_a.TestK::test_z", "tests.test_a.TestK::test_a", "tests.test_a::test_p[1::a b]"]
    assert remove_tests(tmp_path, ids) == ["tests/test_a.py"]
    left = (tmp_path / "tests" / "test_a.py").read_text()
    assert "def test_keep" in left and "test_a(" not in left and "test_z" not in left and "test_p" not in left
    compile(left, "test_a.py", "exec")
    # A test that its class inherits cannot be cut out of that class: the whole module goes.
    assert remove_tests(tmp_path, ["tests.test_b.TestInherits::test_from_base"]) == ["tests/test_b.py"]
    assert not (tmp_path / "tests" / "test_b.py").exists()


def test_removing_every_test_of_a_class_leaves_a_class_that_compiles(tmp_path: Path) -> None:
    """A TestCase whose every test fails loses them all: its body becomes `pass`, so the module still collects
    (an empty body would be a syntax error, and the whole module would move into tests.diff)."""
    from repogym.validate import remove_tests

    text = (
        "from unittest import TestCase\n\n\nclass SumTests(TestCase):\n    def test_one(self):\n        pass\n\n"
        "    @staticmethod\n    def test_two():\n        pass\n\n\nclass KeptTests(TestCase):\n"
        "    def test_kept(self):\n        pass\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_sums.py").write_text(text)
    assert remove_tests(tmp_path, ["tests.test_sums.SumTests::test_one", "tests.test_sums.SumTests::test_two"]) == [
        "tests/test_sums.py"
    ]
    left = (tmp_path / "tests" / "test_sums.py").read_text()
    compile(left, "test_sums.py", "exec")
    assert "test_one" not in left and "test_two" not in left and "class SumTests(TestCase):\n    pass\n" in left
    assert "def test_kept" in left


def test_a_failing_text_doctest_moves_whole(tmp_path: Path) -> None:
    from repogym.validate import Rejected, remove_tests

    (tmp_path / "README.md").write_text(">>> 1 + 1\n2\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("def f():\n    '''>>> f()'''\n")
    assert remove_tests(tmp_path, ["pytest::README.md"]) == ["README.md"]
    assert not (tmp_path / "README.md").exists()
    with pytest.raises(Rejected, match="not a test module"):
        remove_tests(tmp_path, ["pkg.mod::pkg.mod.f"])
