"""Real suites are messy: each class of mess is a small repository built here, and the workflow must still
produce checked tasks from it (no flag but the repository) and exclude what it must. The slow test runs the
workflow on two repositories of the corpus (../shared/data/repos)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, git, make_git_repo, run_cli

from repogym import baserun
from repogym.repo import open_repo
from repogym.sandbox.bwrap import bwrap_available

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")
CORPUS = ROOT.parent / "shared" / "data" / "repos"

PYPROJECT = """
    [build-system]
    requires = ["setuptools>=61"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "calc"
    version = "1.0.0"

    [tool.setuptools]
    packages = ["calc"]
"""
CALC = """
    def add(a, b):
        return a + b

    def clamp(x, lo, hi):
        if x < lo:
            return lo
        if x > hi:
            return hi
        return x

    def total(xs):
        out = 0
        for x in xs:
            out += x
        return out

    def sign(x):
        if x > 0:
            return 1
        if x < 0:
            return -1
        return 0

    def scale(xs, k):
        return [k * x for x in xs]
"""
TESTS = """
    import calc

    def test_add():
        assert calc.add(2, 3) == 5

    def test_clamp_low():
        assert calc.clamp(-5, 0, 10) == 0

    def test_clamp_high():
        assert calc.clamp(50, 0, 10) == 10

    def test_clamp_inside():
        assert calc.clamp(5, 0, 10) == 5

    def test_total():
        assert calc.total([1, 2, 3]) == 6

    def test_sign():
        assert [calc.sign(x) for x in (-3, 0, 4)] == [-1, 0, 1]

    def test_scale():
        assert calc.scale([1, 2], 3) == [3, 6]
"""


def _project(root: Path, extra: dict[str, str], pyproject: str = PYPROJECT) -> Path:
    files = {"pyproject.toml": pyproject, "calc/__init__.py": CALC, "tests/test_calc.py": TESTS, **extra}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def _workflow(repo: Path, state: Path, *flags: str) -> dict[str, object]:
    """`repogym workflow REPO` (with no other flag but where the state goes); returns env.json."""
    r = run_cli("workflow", str(repo), "--state-dir", str(state), "--num-candidates", "8", *flags, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    checked = [json.loads(line) for line in (state / "check_results.jsonl").read_text().splitlines()]
    assert any(c["ok"] for c in checked), r.stdout[-3000:]
    return json.loads((state / "env.json").read_text())


def _tests_in_tasks(state: Path) -> set[str]:
    """Every FAIL_TO_PASS and PASS_TO_PASS test of the validated and checked tasks."""
    out: set[str] = set()
    for name in ("validated_tasks.jsonl", "check_results.jsonl"):
        for line in (state / name).read_text().splitlines():
            rec = json.loads(line)
            out |= set(rec.get("FAIL_TO_PASS") or []) | set(rec.get("PASS_TO_PASS") or [])
    return out


def _repo(tmp_path: Path, extra: dict[str, str], pyproject: str = PYPROJECT) -> Path:
    return make_git_repo(_project(tmp_path / "src", extra, pyproject), tmp_path / "calc")


@needs_bwrap
def test_hidden_pytest_ini_with_plugin_addopts(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {".pytest.ini": "[pytest]\naddopts = -p pytest_cov --cov=calc --cov-branch\n"})
    env = _workflow(repo, tmp_path / "state")
    assert "pytest-cov" in env["test_deps"]  # type: ignore[operator]
    assert "pytest configuration: .pytest.ini" in env["notes"]  # type: ignore[operator]


@needs_bwrap
def test_failing_base_test_is_a_known_failure_never_a_task_test(tmp_path: Path) -> None:
    broken = "import calc\n\ndef test_known_bug():\n    assert calc.add(2, 2) == 5\n"
    repo = _repo(tmp_path, {"tests/test_broken.py": broken})
    env = _workflow(repo, tmp_path / "state")
    assert env["base"]["known_failures"] == {"tests.test_broken::test_known_bug": "failed"}  # type: ignore[index]
    assert "tests.test_broken::test_known_bug" not in _tests_in_tasks(tmp_path / "state")


@needs_bwrap
def test_module_that_fails_to_collect_is_ignored(tmp_path: Path) -> None:
    optional = "import calc\n\nraise ImportError('needs an optional dependency')\n\ndef test_never():\n    pass\n"
    repo = _repo(tmp_path, {"tests/test_optional.py": optional})
    env = _workflow(repo, tmp_path / "state")
    ignored = env["base"]["ignored_modules"]  # type: ignore[index]
    assert list(ignored) == ["tests/test_optional.py"] and "optional dependency" in ignored["tests/test_optional.py"]
    assert "--ignore=tests/test_optional.py" in str(env["run_command"])
    assert not any("test_optional" in t for t in _tests_in_tasks(tmp_path / "state"))


VCS_PYPROJECT = """
    [build-system]
    requires = ["setuptools>=64", "setuptools-scm>=8"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "calc"
    dynamic = ["version"]

    [tool.setuptools]
    packages = ["calc"]

    [tool.setuptools_scm]
    version_file = "calc/_version.py"
"""


@needs_bwrap
def test_version_from_git_tags_builds_and_matches(tmp_path: Path) -> None:
    version_test = (
        "from importlib.metadata import version\n\nimport calc\nfrom calc._version import version as v\n\n"
        "def test_version():\n    assert v == version('calc') == '2.3.0'\n"
    )
    repo = _repo(
        tmp_path,
        {"tests/test_version.py": version_test, ".gitignore": "calc/_version.py\n"},
        VCS_PYPROJECT,
    )
    git(repo, "tag", "v2.3.0")
    env = _workflow(repo, tmp_path / "state")
    assert "tests.test_version::test_version" in env["base"]["passed"]  # type: ignore[index]
    assert env["overlay"] == ["calc/_version.py"]


@needs_bwrap
def test_unresolved_test_import_is_installed_by_its_distribution(tmp_path: Path) -> None:
    yaml_test = "import yaml\n\ndef test_yaml():\n    assert yaml.safe_load('a: 1') == {'a': 1}\n"
    repo = _repo(tmp_path, {"tests/test_yaml.py": yaml_test})
    env = _workflow(repo, tmp_path / "state")
    assert "tests import yaml: installed PyYAML" in env["notes"]  # type: ignore[operator]
    assert "tests.test_yaml::test_yaml" in env["base"]["passed"]  # type: ignore[index]


def test_flaky_base_test_is_excluded(tmp_path: Path) -> None:
    # The process backend lets the test keep a counter on the host: it fails on its first run only.
    counter = tmp_path / "runs"
    flaky = (
        f"from pathlib import Path\n\nCOUNTER = Path({str(counter)!r})\n\ndef test_sometimes():\n"
        "    first = not COUNTER.exists()\n    COUNTER.write_text('x')\n    assert not first\n"
    )
    repo = _repo(tmp_path, {"tests/test_flaky.py": flaky})
    env = _workflow(repo, tmp_path / "state", "--backend", "process")
    assert env["base"]["flaky"] == ["tests.test_flaky::test_sometimes"]  # type: ignore[index]
    assert "tests.test_flaky::test_sometimes" not in _tests_in_tasks(tmp_path / "state")


SHAPES = {
    "tests/base.py": """
        import calc

        class SignChecks:
            def test_sign_positive(self):
                assert calc.sign(4) == 1

            def test_sign_negative(self):
                assert calc.sign(-4) == -1
    """,
    "tests/test_shapes.py": """
        import pytest

        import calc
        from tests.base import SignChecks

        class TestSign(SignChecks):
            pass

        @pytest.mark.parametrize("xs, want", [([1, 2], 3), (["a::b", " [x]/y"], "a::b [x]/y")])
        def test_total_param(xs, want):
            assert calc.total(xs) == want if isinstance(want, int) else "".join(xs) == want

        class TestClamp:
            def test_clamp_edges(self):
                assert calc.clamp(0, 0, 1) == 0 and calc.clamp(1, 0, 1) == 1
    """,
    "tests/test_reuse.py": """
        from tests.test_shapes import TestClamp  # a test class imported by another module
    """,
    "tests/__init__.py": "",
}


@needs_bwrap
def test_inherited_parametrized_and_imported_tests_become_tasks(tmp_path: Path) -> None:
    repo = _repo(tmp_path, SHAPES)
    state = tmp_path / "state"
    _workflow(repo, state, "--num-candidates", "12")
    validated = [json.loads(line) for line in (state / "validated_tasks.jsonl").read_text().splitlines()]
    rejected = (state / "rejected_tasks.jsonl").read_text()
    assert "cannot find every failing test" not in rejected
    shaped = [v for v in validated if any("TestSign" in t or "[" in t or "TestClamp" in t for t in v["FAIL_TO_PASS"])]
    assert shaped, "a task whose failing tests are inherited, parametrized or imported elsewhere"


@pytest.mark.slow
@needs_bwrap
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the corpus is not here ({CORPUS})")
@pytest.mark.parametrize("name", ["cachetools", "pluggy"])
def test_corpus_repository_gives_checked_tasks(tmp_path: Path, name: str) -> None:
    env = _workflow(CORPUS / f"{name}.git.tar.gz", tmp_path / "state")
    assert env["base"]["passed"]  # type: ignore[index]


@needs_bwrap
def test_no_passing_test_is_refused_in_the_runners_words(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "tests").mkdir(parents=True)
    (src / "tests" / "test_only.py").write_text("def test_only():\n    assert 'spam' == 'eggs'\n")
    repo = make_git_repo(src, tmp_path / "hopeless")
    r = run_cli("workflow", str(repo), "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 2
    assert "no test passes at the base commit" in r.stderr and "AssertionError" in r.stderr, r.stderr
    assert "--test-deps" in r.stderr and "--test-command" in r.stderr
    assert not (tmp_path / "state" / "tasks.jsonl").exists()


def test_property_based_tests_draw_the_same_examples_in_every_run(tmp_path: Path) -> None:
    """A hypothesis test draws new examples each run unless seeded: the base run's two runs (and every later one)
    must draw the same, or a test that fails for rare inputs flips between known failure and PASS_TO_PASS."""
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    prop = f"""
        import os
        from pathlib import Path

        from hypothesis import given, settings, strategies as st

        import calc

        @settings(max_examples=30, database=None)
        @given(st.integers(), st.integers())
        def test_add_commutes(a, b):
            with (Path({str(drawn)!r}) / str(os.getpid())).open("a") as f:
                f.write(f"{{a}} {{b}}\\n")
            assert calc.add(a, b) == calc.add(b, a)
    """
    repo = _repo(tmp_path, {"tests/test_prop.py": prop})
    spec = baserun.prepare_with_base(open_repo(repo), "process")  # the process backend: it writes to the host
    assert "--hypothesis-seed=0" in spec.test_env["PYTEST_ADDOPTS"]
    assert any("property-based tests draw with a fixed seed" in n for n in spec.notes)
    runs = [p.read_text() for p in drawn.iterdir()]
    assert len(runs) == 2 and runs[0] == runs[1] and len(runs[0].splitlines()) >= 10, runs
