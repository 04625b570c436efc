from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import EXAMPLE, ROOT, git, make_git_repo, run_cli

from repogym import environment
from repogym.errors import RepogymError
from repogym.sandbox.bwrap import bwrap_available

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


COV_PROJECT = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "covered"
        version = "1.2.3"
        dependencies = []

        [project.optional-dependencies]
        test = ["pytest"]

        [tool.setuptools]
        packages = ["covered"]

        [tool.pytest.ini_options]
        addopts = "--cov=covered --cov-report=term"
        """,
    "covered/__init__.py": """
        from importlib.metadata import version

        def double(x):
            return 2 * x

        __version__ = version("covered")
        """,
    "tests/test_covered.py": """
        from importlib.metadata import version

        import covered

        def test_double():
            assert covered.double(21) == 42

        def test_reads_its_own_installed_version():
            assert version("covered") == "1.2.3" == covered.__version__
        """,
}


def test_detect_finds_test_dependencies_everywhere(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pyproject.toml": """
                [project]
                name = "x"
                version = "0"
                [project.optional-dependencies]
                tests = ["pytest-mock"]
                [dependency-groups]
                lint = ["ruff"]
                dev = ["hypothesis", {include-group = "lint"}]
                [tool.pytest.ini_options]
                addopts = ["-n", "2", "--timeout=30"]
                """,
            "requirements-test.txt": "responses\n",
            "requirements-dev.txt": "freezegun\n",
            "tox.ini": "[testenv]\ndeps =\n    pytest-asyncio\n    -r requirements.txt\n    {posargs}\n",
            "tests/test_x.py": "def test_x():\n    pass\n",
        },
    )
    spec = environment.detect(tmp_path, "x", test_deps=["pytest-randomly"])
    assert spec.project_extras == ["tests"]
    assert spec.requirements == ["requirements-test.txt"], "a test requirement file is preferred to the dev one"
    for dep in (
        "pytest",
        "hypothesis",
        "ruff",
        "pytest-asyncio",
        "pytest-xdist",
        "pytest-timeout",
        "pytest-randomly",
        "responses",
    ):
        assert dep in spec.test_deps, dep


def test_cov_in_addopts_needs_pytest_cov(tmp_path: Path) -> None:
    spec = environment.detect(_write(tmp_path, COV_PROJECT), "covered")
    assert spec.project_extras == ["test"] and "pytest-cov" in spec.test_deps
    assert any("--cov" in n for n in spec.notes)


def test_repo_without_tests_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, {"pyproject.toml": "[project]\nname='x'\nversion='0'\n", "x.py": "X = 1\n"})
    with pytest.raises(RepogymError, match="no tests found.*--test-command"):
        environment.detect(tmp_path, "x")
    r = run_cli("env", "detect", str(tmp_path))
    assert r.returncode == 2 and "no tests found" in r.stderr


@needs_bwrap
def test_build_then_test_project_with_cov_and_metadata(tmp_path: Path) -> None:
    repo = make_git_repo(_write(tmp_path / "src", COV_PROJECT), tmp_path / "covered")
    build = run_cli("env", "build", str(repo))
    assert build.returncode == 0, build.stderr
    r = run_cli("env", "test", str(repo), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["outcomes"] == {
        "tests.test_covered::test_double": "passed",
        "tests.test_covered::test_reads_its_own_installed_version": "passed",
    }
    again = run_cli("env", "build", str(repo))
    assert "environment exists" in again.stderr, "the venv is cached by the dependency files"


@needs_bwrap
def test_failing_suite_exits_1_with_per_test_outcomes(tmp_path: Path) -> None:
    repo = make_git_repo(EXAMPLE, tmp_path / "scheme_interpreter")
    path = repo / "scheme" / "builtins.py"
    path.write_text(path.read_text().replace("return sum(args)", "return sum(args) + 1"))
    git(repo, "commit", "-qam", "break add")
    r = run_cli("env", "test", str(repo), "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["outcomes"]["tests.test_evaluator::test_addition"] == "failed"
    assert out["outcomes"]["tests.test_reader::test_tokenize_simple"] == "passed"


def test_custom_test_command_without_junit_falls_back_to_exit_code(tmp_path: Path) -> None:
    _write(tmp_path, {"check.sh": "exit 0\n"})
    repo = make_git_repo(tmp_path, tmp_path.parent / "nojunit")
    r = run_cli("env", "test", str(repo), "--backend", "process", "--test-command", "sh check.sh", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"] == "exit-code" and "no JUnit XML" in out["note"]


@needs_bwrap
@pytest.mark.podman
def test_bwrap_and_podman_agree_on_the_example(tmp_path: Path, base_image: str) -> None:
    dockerfile = ROOT / "examples" / "dockerfiles" / "scheme_interpreter.Dockerfile"
    build = run_cli("env", "build", str(EXAMPLE), "--backend", "podman", "--dockerfile", str(dockerfile))
    assert build.returncode == 0, build.stderr
    results = {}
    for backend in ("bwrap", "podman"):
        r = run_cli("env", "test", str(EXAMPLE), "--backend", backend, "--json")
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        results[backend] = json.loads(r.stdout)["outcomes"]
    assert results["bwrap"] == results["podman"]
    assert len(results["bwrap"]) >= 60 and set(results["bwrap"].values()) == {"passed"}


def test_process_backend_tests_the_working_copy_not_the_installed_base(tmp_path: Path) -> None:
    import warnings

    from repogym.repo import open_repo, temp_working_copy

    warnings.simplefilter("ignore")
    src = open_repo(make_git_repo(EXAMPLE, tmp_path / "scheme_interpreter"))
    spec = environment.prepare(src, "process")
    with temp_working_copy(src) as wc:
        path = wc / "scheme" / "builtins.py"
        path.write_text(path.read_text().replace("return sum(args)", "return sum(args) + 1"))
        with environment.open_env_sandbox(spec, wc) as sb:
            run = environment.run_tests(spec, sb)
    assert run.outcomes["tests.test_evaluator::test_addition"] == "failed"
    assert run.outcomes["tests.test_reader::test_tokenize_simple"] == "passed"


def test_pytest_config_is_read_in_pytests_order(tmp_path: Path) -> None:
    from repogym.project import pytest_config

    _write(
        tmp_path,
        {
            "setup.cfg": "[tool:pytest]\naddopts = --timeout=5\n",
            "tox.ini": "[pytest]\naddopts = -n 2\n",
            "pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['t']\naddopts = '-p xdist'\n",
        },
    )
    assert pytest_config.read(tmp_path).path == "pyproject.toml"
    assert pytest_config.read(tmp_path).plugins_in_addopts() == ["xdist"]
    (tmp_path / ".pytest.ini").write_text("[pytest]\naddopts = --cov=x -pno:cacheprovider -p pytest_mock\n")
    hidden = pytest_config.read(tmp_path)
    assert hidden.path == ".pytest.ini" and hidden.plugins_in_addopts() == ["pytest_mock"]
    (tmp_path / "pytest.ini").write_text("")  # pytest.ini wins even when empty
    assert pytest_config.read(tmp_path).path == "pytest.ini" and pytest_config.read(tmp_path).addopts == []
    (tmp_path / "pytest.ini").unlink()
    (tmp_path / ".pytest.ini").unlink()
    (tmp_path / "pyproject.toml").write_text("[tool.pytest]\nrequired_plugins = ['pytest-mock>=3']\n")
    assert pytest_config.read(tmp_path).required_plugins == ["pytest-mock>=3"]


def test_hidden_pytest_ini_plugins_become_test_deps(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            ".pytest.ini": "[pytest]\naddopts = --cov=x --cov-branch -p pytest_mock\n"
            "required_plugins = pytest-timeout\n",
            "tests/test_x.py": "def test_x():\n    pass\n",
        },
    )
    spec = environment.detect(tmp_path, "x")
    for dep in ("pytest-cov", "pytest-mock", "pytest-timeout"):
        assert dep in spec.test_deps, dep


def test_tox_deps_are_read_as_tox_reads_them(tmp_path: Path) -> None:
    import sys

    here = f"py3{sys.version_info.minor}"
    _write(
        tmp_path,
        {
            "tox.ini": f"""
                [base]
                deps = attrs
                [testenv]
                deps =
                    pytest
                    coverage: coverage
                    {here}: only-here
                    py{{27,35}}: only-old
                    !{here}: not-here
                    -r{{toxinidir}}/req/test.txt
                    {{[base]deps}}
                    mock; python_version < "3"
                extras = tests
                """,
            "req/test.txt": "-r more.txt\nhypothesis\n",
            "req/more.txt": "freezegun  # a comment\n",
            "tests/test_x.py": "def test_x():\n    pass\n",
        },
    )
    spec = environment.detect(tmp_path, "x")
    assert spec.project_extras == ["tests"]
    for dep in ("pytest", "only-here", "hypothesis", "freezegun", "attrs"):
        assert dep in spec.test_deps, dep
    for dep in ("coverage", "only-old", "not-here"):
        assert dep not in spec.test_deps, dep
    assert not any(d.startswith("mock") for d in spec.test_deps), "markers are evaluated for this Python"


def test_requirement_folders_and_nox_sessions(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "requirements/testing.txt": "-e .[extra]\nresponses\n",
            "requirements/docs.txt": "sphinx\n",
            "noxfile.py": "import nox\n\n@nox.session\ndef tests(session):\n"
            "    session.install('pytest-httpserver', '-r', 'dev-requirements.txt')\n",
            "dev-requirements.txt": "trustme\n",
            "tests/test_x.py": "def test_x():\n    pass\n",
        },
    )
    spec = environment.detect(tmp_path, "x")
    assert "requirements/testing.txt" in spec.requirements and "requirements/docs.txt" not in spec.requirements
    for dep in ("responses", "pytest-httpserver", "trustme"):
        assert dep in spec.test_deps, dep
    assert "sphinx" not in spec.test_deps and spec.project_extras == ["extra"]


def test_suites_named_test_py_are_collected(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/tests.py": "import unittest\n"})
    spec = environment.detect(tmp_path, "x")
    assert "python_files=" in spec.run_command and "tests.py" in spec.run_command
    assert spec.test_command == f"{spec.run_command} {spec.junit_args}"


def test_vcs_version_gets_a_pretend_version_from_git_describe(tmp_path: Path) -> None:
    _write(
        tmp_path / "src",
        {
            "pyproject.toml": "[build-system]\nrequires = ['hatchling', 'hatch-vcs']\n[project]\nname = 'my.pkg'\n",
            "tests/test_x.py": "def test_x():\n    pass\n",
        },
    )
    repo = make_git_repo(tmp_path / "src", tmp_path / "repo")
    git(repo, "tag", "v3.1.4")
    spec = environment.detect(repo, "x")
    assert spec.test_env["SETUPTOOLS_SCM_PRETEND_VERSION"] == "3.1.4"
    assert spec.test_env["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_MY_PKG"] == "3.1.4"
    assert any("hatch-vcs" in n for n in spec.notes)


def test_podman_without_dockerfile_gets_a_generated_one(tmp_path: Path) -> None:
    _write(tmp_path, COV_PROJECT)
    r = run_cli("env", "detect", str(tmp_path), "--backend", "podman")
    assert r.returncode == 0, r.stderr
    dockerfile = json.loads(r.stdout)["dockerfile"]
    assert dockerfile.startswith("# Generated by repogym") and "FROM localhost/repogym-base:bookworm" in dockerfile
    assert "pytest-cov" in dockerfile and "setuptools>=61" in dockerfile and "'.[test]'" in dockerfile


def test_test_ids_map_to_their_source(tmp_path: Path) -> None:
    from repogym.validate import test_location

    _write(tmp_path, {"tests/sub/test_a.py": "", "test/test_b.py": ""})
    assert test_location(tmp_path, "tests.sub.test_a.TestK.Inner::test_x[a::b c/[d]]") == (
        "tests/sub/test_a.py",
        ["TestK", "Inner"],
        "test_x",
    )
    assert test_location(tmp_path, "test.test_b::test_y[1-2]") == ("test/test_b.py", [], "test_y")


def test_base_facts_exclude_flaky_and_time_stamped_ids() -> None:
    from repogym.baserun import facts
    from repogym.testresults import TestRun

    first = TestRun(outcomes={"t::a": "passed", "t::b": "failed", "t::c": "passed", "t::d[10:45:02]": "passed"})
    second = TestRun(outcomes={"t::a": "passed", "t::b": "failed", "t::c": "failed", "t::d[10:45:09]": "passed"})
    base = facts(first, second, {})
    assert base.passed == ["t::a"] and base.known_failures == {"t::b": "failed"}
    assert base.flaky == ["t::c", "t::d[10:45:02]", "t::d[10:45:09]"]
    assert base.usable({"t::a", "t::b", "t::d[11:00:00]", "t::new"}) == {"t::a", "t::new"}
