"""Task yield and throughput: the per-test coverage map, line-aimed synthesis, change-aware validation and check 2,
combined candidates and issue-style descriptions; real git, real bwrap sandboxes, a real scripted HTTP server."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tempfile
import textwrap
from pathlib import Path

import pytest
from conftest import EXAMPLE, make_git_repo, run_cli

from repogym import baserun, validate
from repogym.check import check_task, touched_test_files
from repogym.describe import forbidden_names, named
from repogym.environment import EnvSpec
from repogym.project.imports import importers
from repogym.records import TaskRecord, ValidatedRecord
from repogym.repo import RepoSource, changed_files, open_repo, temp_working_copy
from repogym.sandbox.bwrap import bwrap_available
from repogym.scripted_server import ScriptedServer
from repogym.synth import procedural
from repogym.synth.coverage import CoverageMap, coverage_map
from repogym.taskset import difficulty
from repogym.workspace import WARM_PREFIX, close_warm

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")

SHOP = {
    "pyproject.toml": """
        [project]
        name = "shop"
        version = "0.1.0"
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [tool.setuptools]
        packages = ["shop"]
        """,
    "shop/__init__.py": "",
    "shop/cart.py": """
        TAX = 10


        def subtotal(prices):
            total = 0
            for price in prices:
                total += price
            return total


        def with_tax(amount):
            if amount < 0:
                raise ValueError("negative amount")
            return amount + amount * TAX // 100


        def discount(amount, percent=10):
            cut = amount * percent // 100
            return amount - cut


        def audit(prices):
            seen = []
            for price in prices:
                if price > 1000:
                    seen.append(price)
            return seen
        """,
    "tests/test_cart.py": """
        import pytest
        from shop.cart import discount, subtotal, with_tax

        def test_subtotal():
            assert subtotal([1, 2, 3]) == 6

        def test_subtotal_empty():
            assert subtotal([]) == 0

        def test_with_tax():
            assert with_tax(200) == 220

        def test_with_tax_rejects_negative():
            with pytest.raises(ValueError):
                with_tax(-1)

        def test_discount_default():
            assert discount(200) == 180

        def test_discount_half():
            assert discount(200, 50) == 100
        """,
    "tests/test_cli.py": """
        import subprocess
        import sys

        CODE = "from shop.cart import discount; assert discount(100) == 90"

        def test_discount_in_a_process():
            assert subprocess.run([sys.executable, "-c", CODE]).returncode == 0

        def test_discount_in_an_isolated_process():
            assert subprocess.run([sys.executable, "-I", "-c", CODE]).returncode == 0
        """,
}


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[RepoSource, EnvSpec]:
    root = tmp_path_factory.mktemp("shop")
    for name, text in SHOP.items():
        (root / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / name).write_text(textwrap.dedent(text).lstrip())
    src = open_repo(make_git_repo(root / "src", root / "shop"))
    return src, baserun.prepare_with_base(src, "bwrap")


def test_coverage_map_records_which_test_runs_which_line(shop: tuple[RepoSource, EnvSpec]) -> None:
    src, spec = shop
    cov = coverage_map(src, spec)
    assert cov is not None
    text = textwrap.dedent(SHOP["shop/cart.py"]).lstrip()
    assert sorted(cov.tests) == sorted([*(f"tests/test_cart.py::{t}" for t in _tests()), CLI_TEST, ISOLATED_TEST])
    assert [cov.tests[i] for i in cov.opaque] == [ISOLATED_TEST], "its process ignores PYTHONPATH: unseen, opaque"
    cut = {"shop/cart.py": [_line(text, "cut = amount * percent // 100")]}
    assert CLI_TEST in cov.covering(cut), "the process it started was traced for it"
    raise_line = _line(text, 'raise ValueError("negative amount")')
    assert cov.covering({"shop/cart.py": [raise_line]}) == ["tests/test_cart.py::test_with_tax_rejects_negative"]
    loop_body = _line(text, "total += price")
    assert cov.covering({"shop/cart.py": [loop_body]}) == ["tests/test_cart.py::test_subtotal"]
    audit_lines = range(_line(text, "seen = []"), _line(text, "return seen") + 1)
    assert not cov.covered("shop/cart.py") & set(audit_lines), "no test calls audit()"
    assert cov.at_import({"shop/cart.py": [_line(text, "TAX = 10")]}), "a module body runs at import"
    assert not cov.at_import({"shop/cart.py": [loop_body]})
    assert len(cov.seconds) == len(cov.tests)
    again = coverage_map(src, spec.model_copy(update={"venv": "/nonexistent"}))  # from the store: no run
    assert again is not None and again.to_json() == cov.to_json()


CLI_TEST = "tests/test_cli.py::test_discount_in_a_process"
ISOLATED_TEST = "tests/test_cli.py::test_discount_in_an_isolated_process"


def _tests() -> list[str]:
    return [
        "test_subtotal",
        "test_subtotal_empty",
        "test_with_tax",
        "test_with_tax_rejects_negative",
        "test_discount_default",
        "test_discount_half",
    ]


def _synth(src: RepoSource, cov: CoverageMap | None, n: int, seed: int) -> list[TaskRecord]:
    with temp_working_copy(src) as wc:
        return procedural.synthesize(src, wc, [], num_candidates=n, seed=seed, avoid=set(), coverage=cov)


def test_no_candidate_on_uncovered_lines(shop: tuple[RepoSource, EnvSpec]) -> None:
    src, spec = shop
    cov = coverage_map(src, spec)
    assert cov is not None
    aimed, blind = _synth(src, cov, 500, 0), _synth(src, None, 500, 0)
    assert any(r.changed_symbols == ["audit"] for r in blind), "without a map, audit() is a target"
    assert aimed and not any(r.changed_symbols == ["audit"] for r in aimed)
    covered = cov.covered("shop/cart.py")
    for r in aimed:
        assert set(r.lines["shop/cart.py"]) & covered, r.subject
        assert r.covering_tests is not None and 1 <= r.covering_tests <= 0.5 * len(cov.tests), r.subject
        assert len(cov.covering(r.lines)) == r.covering_tests


def test_selection_spreads_over_functions_before_repeating_one(shop: tuple[RepoSource, EnvSpec]) -> None:
    src, spec = shop
    picked = _synth(src, coverage_map(src, spec), 3, 3)
    assert len({r.changed_symbols[0] for r in picked}) == 3


def _validate_both(
    src: RepoSource, spec: EnvSpec, cov: CoverageMap, tasks: list[TaskRecord]
) -> dict[str, tuple[ValidatedRecord | str, ValidatedRecord | str]]:
    base = validate.Baseline(spec)
    out = {}
    for t in tasks:
        pair = []
        for c in (cov, None):
            try:
                pair.append(validate.validate_auto(t, src, spec, base, base.timeout(), coverage=c))
            except validate.Rejected as e:
                pair.append(f"rejected: {e}")
        out[t.task_id] = (pair[0], pair[1])
    return out


def test_change_aware_validation_and_check_2_on_a_small_project(shop: tuple[RepoSource, EnvSpec]) -> None:
    src, spec = shop
    cov = coverage_map(src, spec)
    assert cov is not None
    both = _validate_both(src, spec, cov, _synth(src, cov, 8, 1))
    kept = [sel for sel, full in both.values() if isinstance(sel, ValidatedRecord)]
    assert kept, both
    for sel, full in both.values():
        assert isinstance(sel, str) == isinstance(full, str), (sel, full)
        if isinstance(sel, ValidatedRecord) and isinstance(full, ValidatedRecord):
            assert (sel.FAIL_TO_PASS, sel.PASS_TO_PASS) == (full.FAIL_TO_PASS, full.PASS_TO_PASS)
            assert sel.src_diff == full.src_diff and sel.tests_diff == full.tests_diff
            assert "selected test(s) ran" in sel.log
    rec = next(r for r in kept if not any("test_cli" in t for t in r.FAIL_TO_PASS))
    files = touched_test_files(rec)
    assert files == ["tests/test_cart.py"] == changed_files(rec.tests_diff)
    header = rec.tests_diff.splitlines()[:4]  # task state (a/) -> base (b/), as every diff reads
    assert header[0] == "diff --git a/tests/test_cart.py b/tests/test_cart.py" and header[2:] == [
        "--- a/tests/test_cart.py",
        "+++ b/tests/test_cart.py",
    ]
    quick = check_task(rec, src, spec, select=True, parallel=True)
    whole = check_task(rec, src, spec, select=False)
    assert quick.ok and whole.ok, (quick.reason, whole.reason)
    assert (quick.FAIL_TO_PASS, quick.PASS_TO_PASS) == (whole.FAIL_TO_PASS, whole.PASS_TO_PASS)
    ran = {c.name: c.failed_tests + c.passed_tests for c in quick.checks}
    assert all(t.startswith("tests.test_cart::") for t in ran["tests_fail"])
    # Only repogym's own code runs in a kept copy: a task an agent validated (its tests) is checked cold.
    kept_copies = Path(tempfile.gettempdir()).glob
    for validator, warm_copies in (("builtin", False), ("auto", True)):
        result = check_task(rec.model_copy(update={"validator": validator}), src, spec, warm=True)
        assert result.ok and bool(list(kept_copies(f"{WARM_PREFIX}{os.getpid()}-*"))) == warm_copies, validator
        close_warm()


def test_opaque_tests_run_with_every_change(shop: tuple[RepoSource, EnvSpec]) -> None:
    """A test whose process the tracer cannot see (isolated: it ignores PYTHONPATH) is selected for every change
    (without that, FAIL_TO_PASS would miss it and the task state would fail it); one whose process reported its
    lines is selected like any test."""
    src, spec = shop
    cov = coverage_map(src, spec)
    assert cov is not None
    text = textwrap.dedent(SHOP["shop/cart.py"]).lstrip()
    cut = {"shop/cart.py": [_line(text, "cut = amount * percent // 100")]}
    assert ISOLATED_TEST not in cov.covering(cut) and ISOLATED_TEST in cov.selection(cut)
    subtotal = {"shop/cart.py": [_line(text, "total += price")]}
    assert CLI_TEST not in cov.selection(subtotal) and ISOLATED_TEST in cov.selection(subtotal)
    task = next(t for t in _synth(src, cov, 40, 0) if t.changed_symbols == ["discount"] and "percent" in t.patches)
    base = validate.Baseline(spec)
    full = validate.validate_auto(task, src, spec, base, base.timeout())
    for test in (CLI_TEST, ISOLATED_TEST):
        assert test.replace("/", ".").replace(".py::", "::") in full.FAIL_TO_PASS
    sel = validate.validate_auto(task, src, spec, base, base.timeout(), coverage=cov)
    assert (sel.FAIL_TO_PASS, sel.PASS_TO_PASS) == (full.FAIL_TO_PASS, full.PASS_TO_PASS)
    assert sel.tests_diff == full.tests_diff
    blind = dataclasses.replace(cov, opaque=[])
    missed = validate.validate_auto(task, src, spec, base, base.timeout(), coverage=blind)
    assert missed.FAIL_TO_PASS != full.FAIL_TO_PASS, "the map without opaque tests misses it: the test can fail"


@pytest.mark.slow
def test_change_aware_validation_matches_no_select_on_every_demo_task(tmp_path: Path) -> None:
    src = open_repo(make_git_repo(EXAMPLE, tmp_path / "scheme_interpreter"))
    spec = baserun.prepare_with_base(src, "bwrap")
    cov = coverage_map(src, spec)
    assert cov is not None
    with temp_working_copy(src) as wc:
        tasks = procedural.synthesize(src, wc, ["scheme/*.py"], num_candidates=40, seed=0, avoid=set(), coverage=cov)
    both = _validate_both(src, spec, cov, tasks)
    validated = 0
    for tid, (sel, full) in both.items():
        if isinstance(full, ValidatedRecord):
            assert isinstance(sel, ValidatedRecord), (tid, sel)
            assert (sel.FAIL_TO_PASS, sel.PASS_TO_PASS) == (full.FAIL_TO_PASS, full.PASS_TO_PASS), tid
            validated += 1
        else:
            assert isinstance(sel, str), (tid, full)
    assert validated >= 30


def _shop_repo(tmp_path: Path) -> Path:
    for name, text in SHOP.items():
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_text(textwrap.dedent(text).lstrip())
    return make_git_repo(tmp_path / "src", tmp_path / "shop")


@pytest.mark.slow
def test_combine_makes_checked_tasks_with_several_changes(tmp_path: Path) -> None:
    repo = make_git_repo(EXAMPLE, tmp_path / "scheme_interpreter")
    state = tmp_path / "state"
    r = run_cli(
        "workflow", str(repo), "scheme/*.py", "--state-dir", str(state), "--num-candidates", "16",
        "--combine", "3", "--workers", "2",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    tasks = {t["task_id"]: t for t in map(json.loads, (state / "tasks.jsonl").open())}
    validated = {v["task_id"]: v for v in map(json.loads, (state / "validated_tasks.jsonl").open())}
    checked = [c for c in map(json.loads, (state / "check_results.jsonl").open()) if c["ok"]]
    combined = [c for c in checked if tasks[c["task_id"]]["strategy"] == "combine"]
    assert combined, "at least one combined task passes every check"
    for c in combined:
        task = tasks[c["task_id"]]
        assert task["changes"] >= 2 and len(task["members"]) == task["changes"]
        assert validated[c["task_id"]]["changes"] == task["changes"]
        union = set().union(*(validated[m]["FAIL_TO_PASS"] for m in task["members"]))
        assert set(validated[c["task_id"]]["FAIL_TO_PASS"]) == union
        assert set(c["FAIL_TO_PASS"]) == union
    made = sum(t["strategy"] == "combine" for t in tasks.values())
    assert 1 <= made <= 3
    r = run_cli("workflow", str(repo), "scheme/*.py", "--state-dir", str(state), "--num-candidates", "16",
                "--combine", "3")  # fmt: skip
    again = [t for t in map(json.loads, (state / "tasks.jsonl").open()) if t["strategy"] == "combine"]
    assert r.returncode == 0 and len(again) == made, "a rerun makes no new combination"


FUNCTIONS = "subtotal, with_tax, discount and audit"


def _issue(request: dict) -> str:
    """The first answer names the shop's functions (refused), the retry does not."""
    retried = any(m["role"] == "assistant" for m in request["messages"])
    if not retried:
        return f"Checkout totals are wrong\n\nI think {FUNCTIONS} are broken."
    return "Checkout totals are wrong\n\nAfter upgrading, my cart total is off. The failing tests show it."


def test_issue_style_descriptions_never_name_the_changed_function(tmp_path: Path) -> None:
    repo = _shop_repo(tmp_path)
    state = tmp_path / "state"
    with ScriptedServer(_issue) as server:
        r = run_cli(
            "workflow", str(repo), "--state-dir", str(state), "--num-candidates", "4", "--strategy", "procedural",
            "--model", "openai/writer", "--api-base", server.url, "--describe", "issue",
        )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    tasks = {t["task_id"]: t for t in map(json.loads, (state / "tasks.jsonl").open())}
    validated = list(map(json.loads, (state / "validated_tasks.jsonl").open()))
    assert validated
    for v in validated:
        symbols = tasks[v["task_id"]]["changed_symbols"]
        assert v["description_style"] == "issue"
        assert v["task_description"].startswith("Checkout totals are wrong")
        assert named(v["task_description"], forbidden_names(symbols)) is None
        usage = v["description_usage"]
        assert usage["calls"] == 2 and usage["model"] == "openai/writer"
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    sent = "\n".join(m["content"] for req in server.requests for m in req["messages"])
    assert "tests.test_cart::test_" in sent, "the model saw the failing tests"
    assert "<<<<<<< SEARCH" not in sent and "diff --git" not in sent, "never the diff"


def test_issue_style_without_a_model_or_with_a_dead_endpoint_stops_with_one_message(tmp_path: Path) -> None:
    repo = _shop_repo(tmp_path)
    r = run_cli("workflow", str(repo), "--state-dir", str(tmp_path / "a"), "--describe", "issue")
    assert r.returncode != 0 and "--describe issue needs --model" in r.stderr
    assert not (tmp_path / "a").exists(), "refused before any work"
    r = run_cli("workflow", str(repo), "--state-dir", str(tmp_path / "b"), "--describe", "novel")
    assert r.returncode != 0 and "choose template or issue" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    state = tmp_path / "c"
    r = run_cli(
        "workflow", str(repo), "--state-dir", str(state), "--num-candidates", "2", "--strategy", "procedural",
        "--model", "openai/writer", "--api-base", url, "--describe", "issue", "--max-retries", "0",
    )  # fmt: skip
    assert r.returncode != 0 and url in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr
    for name in ("validated_tasks.jsonl", "rejected_tasks.jsonl"):
        path = state / name
        assert not path.exists() or not path.read_text().strip(), "nothing decided while the model was away"


def test_combine_without_validated_candidates_says_what_to_do(tmp_path: Path) -> None:
    repo = _shop_repo(tmp_path)
    r = run_cli("synth", str(repo), "--strategy", "combine")
    assert r.returncode != 0 and "--from STATE_DIR" in r.stderr
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "tasks.jsonl").write_text("")
    r = run_cli("synth", str(repo), "--strategy", "combine", "--from", str(tmp_path / "state"))
    assert r.returncode != 0 and "at least two validated single-change candidates" in r.stderr


def test_difficulty_counts_the_changes_of_a_combined_task() -> None:
    gold = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
    assert [difficulty(gold, n) for n in (1, 2, 3, 4)] == ["easy", "medium", "hard", "hard"]


def test_importers_of_a_test_module_however_it_is_named(tmp_path: Path) -> None:
    files = {
        "tests/__init__.py": "",
        "tests/test_base.py": "class TestBase:\n    def test_x(self):\n        pass\n",
        "tests/test_relative.py": "from .test_base import TestBase\n\nclass TestMore(TestBase):\n    pass\n",
        "tests/test_absolute.py": "import tests.test_base\n",
        "tests/test_on_path.py": "from test_base import TestBase\n",
        "tests/test_other.py": "import os\nfrom .helpers import test_base_like\n",
        "tests/deep/test_up.py": "from ..test_base import TestBase\n",
        "src/test_not_a_test_dir.py": "import json\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = importers(tmp_path, ["tests/test_base.py"])
    assert found == [
        "tests/deep/test_up.py",
        "tests/test_absolute.py",
        "tests/test_on_path.py",
        "tests/test_relative.py",
    ]


def test_a_crlf_test_file_keeps_its_line_endings_and_the_task_checks(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for name, text in SHOP.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        body = textwrap.dedent(text).lstrip()
        (root / name).write_bytes((body.replace("\n", "\r\n") if name.startswith("tests/") else body).encode())
    src = open_repo(make_git_repo(root, tmp_path / "shop"))
    spec = baserun.prepare_with_base(src, "bwrap")
    cov = coverage_map(src, spec)
    tasks = [t for t in _synth(src, cov, 20, 0) if t.changed_symbols == ["subtotal"]]
    rec = validate.validate_auto(tasks[0], src, spec, validate.Baseline(spec), coverage=cov)
    assert "\r\n" in rec.tests_diff, "the hidden tests keep the file's CRLF"
    assert rec.src_diff.count("\n-") < 20, "only the removed test, not every line of the file"
    result = check_task(rec, src, spec)
    assert result.ok, result.reason


def test_the_task_state_runs_only_when_a_removal_can_reach_other_tests(tmp_path: Path) -> None:
    """Removing test functions that nothing else names changes no other test: no task-state run. A helper that
    another test calls, a base class, or a whole module gone: the task state must run."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text("def test_x():\n    assert 1\n\n\ndef test_y():\n    assert 2\n")
    failing = ["tests.test_a::test_y"]
    assert validate.remove_tests(tmp_path, failing) == ["tests/test_a.py"]
    assert validate._removal_is_local(tmp_path, ["tests/test_a.py"], failing)
    (tests / "test_b.py").write_text("def test_x():\n    test_y()\n\n\ndef test_y():\n    assert 2\n")
    failing = ["tests.test_b::test_y"]
    validate.remove_tests(tmp_path, failing)
    assert not validate._removal_is_local(tmp_path, ["tests/test_b.py"], failing), "test_x calls test_y"
    (tests / "test_b.py").unlink()
    assert not validate._removal_is_local(tmp_path, ["tests/test_b.py"], failing), "a whole module moved"
