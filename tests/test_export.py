"""Exports of a real state dir: SWE-bench instances (sealed), Hugging Face parquet, Harbor task folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE, make_git_repo, run_cli

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
