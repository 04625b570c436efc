"""Exports of a real state dir: SWE-bench instances (sealed), Hugging Face parquet, Harbor task folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE, ROOT, make_git_repo, run_cli

from repogym.repo import changed_files
from repogym.sandbox.bwrap import bwrap_available
from repogym.taskset import load_state

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")]


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflow state dir of the example project (procedural, no model) with at least three checked tasks."""
    root = tmp_path_factory.mktemp("export")
    repo = make_git_repo(EXAMPLE, root / "scheme_interpreter")
    state = root / "state"
    r = run_cli("workflow", str(repo), "scheme/*.py", "--state-dir", str(state), "--num-candidates", "12")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(load_state(state).checked_ok()) >= 3
    return state


@pytest.fixture(scope="module")
def swebench(state: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    out = tmp_path_factory.mktemp("swebench")
    validated = state / "validated_tasks.jsonl"
    args = ["--validated", str(validated), "--output", str(out / "i.jsonl"), "--git-dir", str(out / "repos")]
    r = run_cli("export", "swebench", *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in (out / "i.jsonl").read_text().splitlines()], out / "repos"


def test_the_text_gold_patch_is_what_git_applies(state: Path, tmp_path: Path) -> None:
    """taskset.gold_patch (text, for the viewer) restores exactly what `git apply -R --exclude` restores."""
    for row in load_state(state).checked_ok():
        wc = make_git_repo(EXAMPLE, tmp_path / row.task_id.replace("/", "_"))
        for patch in (row.src_diff, row.gold_patch):
            subprocess.run(["git", "apply"], cwd=wc, input=patch, text=True, check=True)
        changed = [f for f in changed_files(row.src_diff) if f not in changed_files(row.tests_diff)]
        assert changed and git(wc, "status", "--porcelain", "--", *changed).stdout == "", row.task_id


def test_swebench_export_ships_only_the_sealed_task_state(swebench: tuple[list[dict], Path]) -> None:
    instances, repos = swebench
    assert len(instances) >= 3
    for inst in instances:
        bare = repos / f"{inst['instance_id']}.git"
        assert git(bare, "rev-list", "--all").stdout.split() == [inst["base_commit"]], "one commit, no history"
        assert git(bare, "rev-list", "--parents", "-n1", inst["base_commit"]).stdout.split() == [inst["base_commit"]]
        objects = set(git(bare, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").stdout.split())
        for path in changed_files(inst["patch"]):
            base_blob = git(EXAMPLE, "hash-object", path).stdout.strip()  # the base version of a changed file
            assert base_blob not in objects, f"{bare} holds the base version of {path}"
        wc = bare.parent / f"{inst['instance_id']}-wc"
        git(bare.parent, "clone", "-q", str(bare), str(wc))
        for patch in (inst["patch"], inst["test_patch"]):
            subprocess.run(["git", "apply"], cwd=wc, input=patch, text=True, check=True)
        for path in changed_files(inst["patch"]):
            assert (wc / path).read_text() == (EXAMPLE / path).read_text(), "the gold patch restores the base"


def test_hf_export_round_trips_through_datasets(state: Path, swebench: tuple[list[dict], Path], tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets is not installed (pip install -e .[dev])")
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install 'repogym[hf]')")
    r = run_cli("export", "hf", str(state), str(tmp_path / "ds"))
    assert r.returncode == 0, r.stderr
    path = tmp_path / "ds" / "data" / "test-00000-of-00001.parquet"
    written = pq.read_table(path).to_pylist()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    loaded = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.to_list() == written
    instances = {i["instance_id"]: i for i in swebench[0]}
    assert sorted(r["instance_id"] for r in written) == sorted(instances)
    for row in written:
        inst = instances[row["instance_id"]]
        assert isinstance(row["FAIL_TO_PASS"], list) and row["FAIL_TO_PASS"] == inst["FAIL_TO_PASS"]
        assert row["PASS_TO_PASS"] == inst["PASS_TO_PASS"] and row["test_patch"] == inst["test_patch"]
        assert row["base_commit"] == inst["base_commit"], "the sealed commit is reproducible: same id everywhere"
        assert row["strategy"].startswith("procedural:") and row["difficulty"] in ("easy", "medium", "hard")
        bundle = tmp_path / "t.bundle"
        bundle.write_bytes(row["task_state_bundle"])
        wc = tmp_path / row["instance_id"]
        git(tmp_path, "clone", "-q", str(bundle), str(wc))
        assert git(wc, "rev-list", "--all").stdout.split() == [row["base_commit"]]
    card = (tmp_path / "ds" / "README.md").read_text()
    n = len(load_state(state).rows)
    assert f"| total | {n} |" in card and "path: data/test-00000-of-00001.parquet" in card
    assert f"{len(written)} coding tasks" in card and "## Provenance" in card


def test_hf_export_without_pyarrow_names_the_install_command(state: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "block" / "pyarrow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('pyarrow hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "block")}
    r = subprocess.run(
        [sys.executable, "-m", "repogym", "export", "hf", str(state), str(tmp_path / "ds")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert r.returncode == 2 and "pip install 'repogym[hf]'" in r.stderr
    assert not (tmp_path / "ds").exists()


HARBOR_PYTHON = os.environ.get("REPOGYM_HARBOR_PYTHON") or str(ROOT / ".venv-harbor" / "bin" / "python")
LOAD_WITH_HARBOR = """
import sys
from pathlib import Path
from harbor.models.task.task import Task
for d in sys.argv[1:]:
    t = Task(Path(d))
    assert Task.is_valid_dir(Path(d)), d
    print(t.name, t.config.environment.network_mode.value, t.config.metadata["repogym_task_id"], len(t.instruction))
"""


@pytest.fixture(scope="module")
def harbor(state: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("harbor")
    r = run_cli("export", "harbor", str(state), str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_harbor_folders_load_in_harbor_and_agree_with_swebench_ids(
    harbor: Path, swebench: tuple[list[dict], Path], state: Path
) -> None:
    dirs = sorted(harbor.iterdir())
    checked = {r.task_id for r in load_state(state).checked_ok()}
    checked_ids = {t.replace("/", "__") for t in checked}
    assert [d.name for d in dirs] == sorted(i["instance_id"] for i in swebench[0] if i["instance_id"] in checked_ids)
    for d in dirs:
        for f in ("instruction.md", "task.toml", "environment/Dockerfile", "tests/test.sh", "solution/solve.sh"):
            assert (d / f).is_file(), d / f
        assert os.access(d / "tests/test.sh", os.X_OK) and os.access(d / "solution/solve.sh", os.X_OK)
        bundle_commits = git(d, "bundle", "list-heads", "environment/task.bundle").stdout.split()[0::2]
        assert set(bundle_commits) == {next(i["base_commit"] for i in swebench[0] if i["instance_id"] == d.name)}
    if not Path(HARBOR_PYTHON).exists():
        pytest.skip(f"harbor needs a venv with Python >= 3.12 (make harbor-deps); no {HARBOR_PYTHON}")
    r = subprocess.run([HARBOR_PYTHON, "-c", LOAD_WITH_HARBOR, *map(str, dirs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert len(lines) == len(dirs) and all(" no-network " in line for line in lines)
    assert {line.split()[2] for line in lines} == checked
    lint = subprocess.run([str(Path(HARBOR_PYTHON).parent / "harbor"), "lint", "--json", *map(str, dirs)],
                          capture_output=True, text=True)  # fmt: skip
    rules = {f["rule"] for f in json.loads(lint.stdout)}
    assert rules <= {"unpinned-python-dependency"}, lint.stdout[-3000:]  # test deps as the environment recorded


def test_the_shipped_grader_gives_partial_credit_without_repogym(state: Path, tmp_path: Path) -> None:
    r = run_cli("export", "harbor", str(state), str(tmp_path / "h"), "--reward", "partial")
    assert r.returncode == 0, r.stderr
    task = sorted((tmp_path / "h").iterdir())[0]
    spec = json.loads((task / "tests/tests.json").read_text())
    assert spec["reward"] == "partial" and 'reward = "partial"' in (task / "task.toml").read_text()
    f2p, p2p = spec["FAIL_TO_PASS"], spec["PASS_TO_PASS"]
    passing = f2p[: (len(f2p) + 1) // 2] + p2p[1:]  # half the target tests fixed, one other test broken
    junit = tmp_path / "junit.xml"
    junit.write_text("<testsuite>" + "".join(_case(t, t in passing) for t in f2p + p2p) + "</testsuite>")
    # -S: no site-packages, so repogym itself cannot be imported; the task folder must carry what it needs.
    g = subprocess.run([sys.executable, "-S", str(task / "tests/grade.py"), str(junit), str(task / "tests/tests.json")],
                       capture_output=True, text=True)  # fmt: skip
    assert g.returncode == 0, g.stderr
    expected = ((len(f2p) + 1) // 2 / len(f2p)) * ((len(p2p) - 1) / len(p2p))
    assert float(g.stdout) == pytest.approx(expected) and 0 < expected < 1


def _case(test_id: str, passed: bool) -> str:
    module, _, name = test_id.rpartition("::")
    failure = "" if passed else "<failure message='no'/>"
    return f"<testcase classname='{module}' name='{name}'>{failure}</testcase>"


@pytest.mark.podman
def test_harbor_oracle_scores_one_and_no_op_zero_on_podman(state: Path, base_image: str, tmp_path: Path) -> None:
    """Each task's image built from its Dockerfile; the oracle and a no-op run in repogym's podman sandbox."""
    r = run_cli("export", "harbor", str(state), str(tmp_path / "h"), "--verify", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if ": oracle " in line]
    assert len(lines) == 3 and all(line.endswith("oracle 1.0, no-op 0.0") for line in lines), r.stdout


CONFTEST_CHEAT = """cat > conftest.py <<'EOF'
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
EOF
echo conftest.py >> .git/info/exclude
"""
SHADOW_CHEAT = """cat > pytest.py <<'EOF'
import json, os
tests = json.load(open("/tests/tests.json"))
cases = "".join(f"<testcase classname='{t.split('::')[0]}' name='{t.split('::')[1]}'/>"
                for t in tests["FAIL_TO_PASS"] + tests["PASS_TO_PASS"])
open(os.environ["REPOGYM_JUNIT"], "w").write(f"<testsuite>{cases}</testsuite>")
EOF
"""
CHEATS = {
    "a hidden conftest.py that reports every test passed": CONFTEST_CHEAT,
    "the same conftest.py, in plain sight": CONFTEST_CHEAT.replace("echo conftest.py >> .git/info/exclude", ""),
    "the test files emptied, and committed": "for f in tests/test_*.py; do : > $f; done && git commit -qam done",
    "a pytest.py that shadows pytest and reports every graded test passed": SHADOW_CHEAT,
}


@pytest.mark.podman
@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_harbor_verifier_gives_cheats_zero(state: Path, base_image: str, tmp_path: Path, cheat: str) -> None:
    """Each known cheat, run as the 'solution' of an exported task on podman, earns 0."""
    from repogym.export.harbor_run import run_trial

    r = run_cli("export", "harbor", str(state), str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    task = sorted((tmp_path / "h").iterdir())[0]
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\ncd /repo\n" + CHEATS[cheat])
    trial = run_trial(task, solve=True)
    assert trial.reward == 0.0, f"{cheat}: {trial.output}"


def test_exports_of_a_state_dir_without_env_json_say_what_is_missing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "check_results.jsonl").write_text(json.dumps({"task_id": "x/1", "ok": True}) + "\n")
    for fmt in ("harbor", "hf"):
        r = run_cli("export", fmt, str(state), str(tmp_path / fmt))
        assert r.returncode == 2 and "env.json: no such file" in r.stderr, r.stderr
