"""Warm pytest runs: a sandbox session whose server has imported pytest forks each run. Real bwrap sandboxes, a real
virtualenv, real git; every run is compared with a cold run of the same working copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import make_git_repo

from repogym import baserun, bytecode_cache
from repogym.environment import EnvSpec, open_env_sandbox, run_tests
from repogym.errors import RepogymError
from repogym.repo import RepoSource, diff, git, open_repo, temp_working_copy, working_copy
from repogym.sandbox import open_sandbox
from repogym.sandbox.bwrap import bwrap_available
from repogym.workspace import WARM_PREFIX, Tracked, Workspace, close_warm, kept_warm, open_ahead, workspace

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")

FILES = {
    "pyproject.toml": """
        [project]
        name = "calc"
        version = "0.1.0"
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [tool.setuptools]
        packages = ["calc"]
        """,
    "calc/__init__.py": "",
    "calc/ops.py": """
        def add(a, b):
            return a + b


        def spin():
            import os
            if os.environ.get("CALC_SPIN"):
                while True:
                    pass
            return 1
        """,
    "tests/test_ops.py": """
        import os
        import subprocess
        import sys
        import tempfile

        from calc.ops import add, spin

        def test_add():
            assert add(2, 3) == 5

        def test_spin():
            assert spin() == 1

        def test_litter():
            open("left-behind.txt", "w").write("x")
            open(os.path.join(tempfile.gettempdir(), "left-in-tmp"), "w").write("x")
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

        def test_environment():
            assert os.environ.get("VIRTUAL_ENV") and sys.argv
        """,
    "tests/test_words.py": """
        import pytest

        WORDS = list({"ant", "bee", "cat", "dog", "eel", "fox"})  # in an order the hash seed decides

        @pytest.mark.parametrize("word, box", [(w, [w]) for w in WORDS])
        def test_word(word, box):  # ids: ant-box0, bee-box1, ...: which word gets which number is the seed's
            assert box == [word]
        """,
}


PROCESSES = "import os; print([open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc') if p.isdigit()])"


@pytest.fixture(scope="module")
def calc(tmp_path_factory: pytest.TempPathFactory) -> tuple[RepoSource, EnvSpec]:
    root = tmp_path_factory.mktemp("calc")
    for name, text in FILES.items():
        (root / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / name).write_text(textwrap.dedent(text).lstrip())
    src = open_repo(make_git_repo(root / "src", root / "calc"))
    return src, baserun.prepare_with_base(src, "bwrap")


def test_a_warm_run_sees_each_change_and_matches_a_cold_run(calc: tuple[RepoSource, EnvSpec]) -> None:
    src, spec = calc
    with workspace(src, spec, warm=True) as ws:
        first = ws.run(60)
        assert ws.sandbox is not None and ws.sandbox._session is not None and ws.sandbox._session.warm_pytest
        cold = _cold(spec, ws.wc)
        assert first.outcomes == cold.outcomes and set(first.passed) == set(cold.passed) and first.exit_code == 0
        ops = ws.wc / "calc" / "ops.py"
        ops.write_text(ops.read_text().replace("return a + b", "return a - b"))
        second = ws.run(60, ["tests/test_ops.py::test_add"])
        assert second.failed == ["tests.test_ops::test_add"], "the child imported the changed module anew"
        assert "assert -1 == 5" in second.output
        assert second.outcomes == _cold(spec, ws.wc, ["tests/test_ops.py::test_add"]).outcomes
    close_warm()


def test_pipeline_runs_report_failures_natively_and_grades_as_pytest_does(calc: tuple[RepoSource, EnvSpec]) -> None:
    """Validation's and the checks' runs (warm or cold) report a failure in Python's format, which does not parse
    the test's module; an agent's grade (a Workspace of its own) keeps pytest's, with the test's source."""
    src, spec = calc
    for warm in (True, False):
        with workspace(src, spec, warm=warm) as ws:
            ops = ws.wc / "calc" / "ops.py"
            ops.write_text(ops.read_text().replace("return a + b", "return a - b"))
            add, test_id = ["tests/test_ops.py::test_add"], "tests.test_ops::test_add"
            message = ws.run(60, add).messages[test_id]
            assert "Traceback (most recent call last)" in message and "assert -1 == 5" in message
            graded = Workspace(spec, ws.wc).run(60, add).messages[test_id]
            assert "Traceback (most recent call last)" not in graded and "def test_add():" in graded
    close_warm()


def test_the_next_candidate_finds_nothing_of_the_last(calc: tuple[RepoSource, EnvSpec]) -> None:
    """A file a test left in the working copy or /tmp, a change, a process it started: all gone at the reset."""
    src, spec = calc
    with workspace(src, spec, warm=True) as ws:
        ops = ws.wc / "calc" / "ops.py"
        ops.write_text(ops.read_text().replace("return a + b", "return a * b"))
        ws.run(60, ["tests/test_ops.py::test_litter"])
        assert (ws.wc / "left-behind.txt").exists() and ws.sandbox is not None
        assert (ws.sandbox.tmp_dir / "left-in-tmp").exists()
    with workspace(src, spec, warm=True) as again:
        assert again.wc == ws.wc, "the same kept working copy"
        assert not (again.wc / "left-behind.txt").exists() and not (again.sandbox.tmp_dir / "left-in-tmp").exists()
        assert "return a + b" in (again.wc / "calc" / "ops.py").read_text()
        procs = again.sandbox.exec(["python3", "-c", PROCESSES], timeout_s=30).stdout
        assert "python3" in procs and "time.sleep(600)" not in procs, "the process a test started was killed"
        assert again.run(60).exit_code == 0
    close_warm()


def test_a_looping_run_times_out_and_the_server_serves_the_next(calc: tuple[RepoSource, EnvSpec]) -> None:
    src, spec = calc
    with workspace(src, spec, warm=True) as ws:
        spun = run_tests(spec.model_copy(update={"test_env": {**spec.test_env, "CALC_SPIN": "1"}}), ws.sandbox, 3)
        assert spun.timed_out
        after = ws.run(60, ["tests/test_ops.py::test_add"])
        assert after.passed == ["tests.test_ops::test_add"] and not after.timed_out
    close_warm()


CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--calc-flag", default="from-conftest")
"""
CONFIG_TEST = """
import os

import pytest


def test_config(request):
    config = request.config
    assert config.getoption("--calc-flag") == "from-conftest"
    assert str(config.invocation_params.dir) == os.getcwd()
    assert any(a.startswith("--junitxml=") for a in config.invocation_params.args)
    assert os.environ.get("PYTEST_VERSION") == pytest.__version__
"""


def test_runs_from_the_servers_made_config_behave_as_pytest_main(calc: tuple[RepoSource, EnvSpec]) -> None:
    """After its first run the server makes pytest's config once and forks each run from it: a conftest's options,
    the run's own arguments, folder and PYTEST_VERSION are as pytest.main gives them, and a conftest that does not
    import, or an argument pytest does not know, fails as it does in a cold run."""
    src, spec = calc
    with workspace(src, spec, warm=True) as ws:
        (ws.wc / "tests" / "conftest.py").write_text(CONFTEST)
        (ws.wc / "tests" / "test_config.py").write_text(CONFIG_TEST)
        for _ in range(3):  # the first run makes the config, the next start from it
            run = ws.run(60, ["tests/test_config.py"])
            assert run.passed == ["tests.test_config::test_config"], run.output[-2000:]
        (ws.wc / "tests" / "conftest.py").write_text("import no_such_module\n")
        warm, cold = ws.run(60, ["tests/test_config.py"]), _cold(spec, ws.wc, ["tests/test_config.py"])
        assert warm.exit_code == cold.exit_code == 4
        assert "ImportError while loading conftest" in warm.output and "no_such_module" in warm.output
        (ws.wc / "tests" / "conftest.py").unlink()
        assert ws.sandbox is not None
        for _ in range(2):
            unknown = ws.sandbox.run_pytest(["-p", "no:cacheprovider", "--no-such-option"], env=spec.test_env)
            assert unknown is not None and unknown.exit_code == 4 and "unrecognized arguments" in unknown.stderr
        assert ws.run(60, ["tests/test_ops.py::test_add"]).passed == ["tests.test_ops::test_add"]
    close_warm()


MADE_CONFIG = """
import os, sys
from repogym.sandbox import session_server as server

args = ["-p", "no:cacheprovider", "-q", "-p", "no:randomly"]
server.preconfigure(args)
made = server.PRECONFIGS[server.excluded_plugins(args)]
assert made is not None, "this pytest gets a made config"
os.chdir(sys.argv[1])
print("exit", server.preconfigured_main(made, [*args, "test_made.py"]))
"""


def test_the_server_makes_pytests_config_for_this_pytest(tmp_path: Path) -> None:
    """The config a warm child starts from is made for the pytest repogym runs on (the sandbox test above cannot
    tell a made config from pytest.main), and a run from it passes and fails as pytest.main's would."""
    (tmp_path / "test_made.py").write_text(
        "import os\n\ndef test_args(request):\n    assert 'test_made.py' in request.config.invocation_params.args\n"
        "    assert str(request.config.invocation_params.dir) == os.getcwd()\n\ndef test_fails():\n    assert 0\n"
    )
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run([sys.executable, "-c", MADE_CONFIG, str(tmp_path)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "1 failed, 1 passed" in out.stdout and out.stdout.rstrip().endswith("exit 1"), out.stdout


def test_a_server_that_imported_the_project_is_not_warm(tmp_path: Path) -> None:
    """When importing pytest imports a file of the working copy (the project is pytest, or pluggy), a forked
    run would test the modules as first imported: the server says so and runs stay cold."""
    pytest_home = str(Path(pytest.__file__).parent.parent)
    check = "import sys; from repogym.sandbox.session_server import warm_pytest; print(warm_pytest(sys.argv[1]))"
    for repo, warm in ((pytest_home, "False"), (str(tmp_path), "True")):  # a process of its own: it rehearses
        out = subprocess.run([sys.executable, "-c", check, repo], capture_output=True, text=True, check=True)
        assert out.stdout == f"{warm}\n" and not out.stderr


def _cold(spec: EnvSpec, wc: Path, select: list[str] | None = None):  # noqa: ANN202 - a TestRun
    with open_env_sandbox(spec, wc) as sb:
        return run_tests(spec, sb, 60, select=select)


def test_warm_runs_in_a_podman_container(base_image: str, tmp_path: Path) -> None:
    """The same server in a container: the image's python3 imports pytest once; each run sees the change."""
    wc = tmp_path / "wc"
    (wc / "tests").mkdir(parents=True)
    (wc / "mod.py").write_text("def f():\n    return 1\n")
    (wc / "tests" / "test_mod.py").write_text("from mod import f\n\ndef test_f():\n    assert f() == 1\n")
    args = ["-q", "-p", "no:cacheprovider", "--rootdir=.", "tests"]
    # As every test run of repogym's: no bytecode cache, whose mtime check would miss a same-size edit this fast.
    with open_sandbox("podman", wc, image=base_image, env={"PYTHONDONTWRITEBYTECODE": "1"}) as sb:
        sb.warm_pytest("python3")
        first = sb.run_pytest(args, timeout_s=120)
        assert first is not None and first.exit_code == 0 and "1 passed" in first.stdout
        assert sb._session is not None and sb._session.warm_pytest
        (wc / "mod.py").write_text("def f():\n    return 2\n")
        second = sb.run_pytest(args, timeout_s=120)
        assert second is not None and second.exit_code == 1 and "assert 2 == 1" in second.stdout
        cold = sb.exec(["python3", "-m", "pytest", *args], timeout_s=120)
        assert cold.exit_code == second.exit_code


def test_warm_runs_cache_bytecode_yet_never_run_an_old_version(calc: tuple[RepoSource, EnvSpec]) -> None:
    """Same-size versions of a source module and of a test module with the same mtime (validation writes them
    within a second): Python's and pytest's caches would take each for the last. Every run sees the version on
    disk, like a cold run; the compiled modules stay in the copy's __pycache__ through a reset, and out of diffs."""
    src, spec = calc
    with workspace(src, spec, warm=True) as ws:
        assert ws.sandbox is not None
        ops, test = ws.wc / "calc" / "ops.py", ws.wc / "tests" / "test_ops.py"
        ops_text, test_text, when = ops.read_text(), test.read_text(), time.time_ns()
        seen = []
        for op, expected in (("+", "5"), ("-", "5"), ("*", "5"), ("*", "6"), ("+", "5")):
            ops.write_text(ops_text.replace("return a + b", f"return a {op} b"))
            test.write_text(test_text.replace("add(2, 3) == 5", f"add(2, 3) == {expected}"))
            for path in (ops, test):
                os.utime(path, ns=(when, when))
            run = ws.run(60, ["tests/test_ops.py::test_add"])
            assert run.outcomes == _cold(spec, ws.wc, ["tests/test_ops.py::test_add"]).outcomes
            seen.append((run.failed, run.messages.get("tests.test_ops::test_add", "")))
        failing = ["tests.test_ops::test_add"]
        assert [failed for failed, _ in seen] == [[], failing, failing, [], []]
        assert "-1 == 5" in seen[1][1] and "6 == 5" in seen[2][1]
        assert list(ws.wc.glob("calc/__pycache__/ops.*.pyc")) and list(ws.wc.glob("tests/__pycache__/*pytest*.pyc"))
        assert diff(ws.wc, src.commit_sha) == "", "the cache is never part of a diff"
    with workspace(src, spec, warm=True) as again:
        assert list(again.wc.glob("calc/__pycache__/ops.*.pyc")), "a reset keeps the cache"
    close_warm()


def test_a_reset_keeps_only_the_bytecode_of_files_that_are_left(
    calc: tuple[RepoSource, EnvSpec], tmp_path: Path
) -> None:
    """A folder a test made, kept by its bytecode alone, would be a namespace package in the next candidate's runs;
    compiled files of sources that are gone are dropped; a `__pycache__` link is removed, never followed."""
    src, spec = calc
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.cpython-311.pyc").write_bytes(b"x")
    with workspace(src, spec, warm=True) as ws:
        assert ws.bytecode and ws.run(60, ["tests/test_ops.py::test_add"]).passed
        (ws.wc / "gen" / "__pycache__").mkdir(parents=True)
        (ws.wc / "gen" / "mod.py").write_text("X = 1\n")
        (ws.wc / "gen" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"x")
        (ws.wc / "calc" / "__pycache__" / "gone.cpython-311.pyc").write_bytes(b"x")
        (ws.wc / "calc" / "linked").mkdir()
        (ws.wc / "calc" / "linked" / "__pycache__").symlink_to(outside)
    with workspace(src, spec, warm=True) as again:
        assert not (again.wc / "gen").exists() and not (again.wc / "calc" / "linked").exists()
        assert not (again.wc / "calc" / "__pycache__" / "gone.cpython-311.pyc").exists()
        assert list(again.wc.glob("calc/__pycache__/ops.*.pyc")), "the bytecode of files that are left stays"
        assert (outside / "keep.cpython-311.pyc").exists()
    close_warm()


def test_a_reset_cleans_as_git_clean_does(tmp_path: Path) -> None:
    """The reset's clean, without a git process, and the prune after it leave exactly what `git clean -ffdx -e
    __pycache__` and the prune leave: untracked and ignored files, folders, links and a repository a test made go;
    tracked files, the folders that hold them and their `__pycache__` stay; a link out of the copy is removed, not
    followed."""
    (tmp_path / "src" / "pkg" / "data").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "mod.py").write_text("X = 1\n")
    (tmp_path / "src" / "pkg" / "data" / "table.csv").write_text("a,b\n")
    (tmp_path / "src" / ".gitignore").write_text("*.log\nbuild/\n")
    repo = make_git_repo(tmp_path / "src", tmp_path / "repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (repo / "left.txt").write_text("x")
    (repo / "run.log").write_text("x")
    (repo / "build" / "lib").mkdir(parents=True)
    (repo / "build" / "lib" / "out.o").write_text("x")
    (repo / "pkg" / "data" / "new.csv").write_text("x")
    (repo / "pkg" / "__pycache__").mkdir()
    (repo / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"x")
    (repo / "pkg" / "gen" / "__pycache__").mkdir(parents=True)
    (repo / "pkg" / "gen" / "x.py").write_text("")
    (repo / "pkg" / "link").symlink_to(outside)
    (repo / "pkg" / "data" / "nested").mkdir()
    git(["init", "-q"], cwd=repo / "pkg" / "data" / "nested")
    head = git(["rev-parse", "HEAD"], cwd=repo).strip()  # a submodule: its folder is the commit's, left alone
    git(["update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib"], cwd=repo)
    git(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "submodule"], cwd=repo)
    (repo / "vendor" / "lib").mkdir(parents=True)
    (repo / "vendor" / "lib" / "code.c").write_text("x")
    twin = tmp_path / "twin"
    shutil.copytree(repo, twin, symlinks=True)

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.relative_to(root).parts[:1]}

    Tracked(git(["ls-files", "-s", "-z"], cwd=repo)).clean(repo, "__pycache__")
    git(["clean", "-q", "-ff", "-d", "-x", "-e", "__pycache__"], cwd=twin)
    for root in (repo, twin):
        bytecode_cache.prune(root)
    assert files(repo) == files(twin)
    assert {"pkg/mod.py", "pkg/data/table.csv", "pkg/__pycache__/mod.cpython-311.pyc", "vendor/lib/code.c"} <= files(
        repo
    )
    gone = {"left.txt", "run.log", "build", "pkg/data/new.csv", "pkg/link", "pkg/data/nested", "pkg/gen"}
    assert not gone & files(repo)
    assert (outside / "precious.txt").read_text() == "keep me"
    Tracked(git(["ls-files", "-s", "-z"], cwd=repo)).clean(repo)
    assert "pkg/__pycache__" not in files(repo) and "pkg/mod.py" in files(repo)


def test_a_kept_copy_diffs_its_work_tree_as_staging_would(calc: tuple[RepoSource, EnvSpec]) -> None:
    """After a reset has listed the base's files, a kept copy's diff is the work tree's (one git process) while
    nothing new is there, the same text as staging everything and diffing; a new file is in it either way."""
    src, spec = calc
    with workspace(src, spec, warm=True):
        pass
    with workspace(src, spec, warm=True) as ws:
        assert ws._tracked.get(src.commit_sha) is not None, "the reset listed the base's files"
        ops = ws.wc / "calc" / "ops.py"
        ops.write_text(ops.read_text().replace("return a + b", "return a - b"))
        (ws.wc / "tests" / "test_words.py").unlink()
        ws.run(60, ["tests/test_ops.py::test_add"])  # bytecode, which no diff has
        worktree = ws.diff(src.commit_sha)
        assert "return a - b" in worktree and "deleted file mode" in worktree and "__pycache__" not in worktree
        assert not git(["diff", "--cached", "--name-only"], cwd=ws.wc), "the work tree's diff: nothing staged"
        (ws.wc / "calc" / "new.py").write_text("NEW = 1\n")
        assert "calc/new.py" in ws.diff(src.commit_sha)
        (ws.wc / "calc" / "new.py").unlink()
        (ws.wc / "tests" / "test_words.py").mkdir()  # a tracked file become a folder: its files are new
        (ws.wc / "tests" / "test_words.py" / "data.txt").write_text("x\n")
        assert "tests/test_words.py/data.txt" in ws.diff(src.commit_sha)
        shutil.rmtree(ws.wc / "tests" / "test_words.py")
        assert ws.diff(src.commit_sha) == worktree == diff(ws.wc, src.commit_sha)
    close_warm()


def test_a_repository_that_tracks_bytecode_gets_no_cache(tmp_path: Path) -> None:
    """Runs would rewrite tracked compiled files, and src.diff would carry them."""
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "mod.py").write_text("X = 1\n")
    repo = make_git_repo(tmp_path / "src", tmp_path / "repo")
    assert bytecode_cache.usable(repo)
    (repo / "pkg" / "__pycache__").mkdir()
    (repo / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"x")
    git(["add", "-f", "pkg/__pycache__/mod.cpython-311.pyc"], cwd=repo)
    git(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "pyc"], cwd=repo)
    assert not bytecode_cache.usable(repo)


def test_a_reset_restores_an_edit_that_git_stat_data_cannot_see(calc: tuple[RepoSource, EnvSpec]) -> None:
    """An edit of the same size whose timestamps match what git's index recorded (a change made within one tick
    of the file system's clock) looks unchanged to `git reset --hard`; the reset must still restore it."""
    src, spec = calc
    with workspace(src, spec, warm=True) as ws:
        git(["config", "core.trustctime", "false"], cwd=ws.wc)  # ctime ticks like mtime; only mtime can be set
        time.sleep(1.1)
        git(["update-index", "--refresh"], cwd=ws.wc)  # an index written after the files: its entries are trusted
        ops = ws.wc / "calc" / "ops.py"
        before = ops.stat()
        ops.write_text(ops.read_text().replace("return a + b", "return a - b"))
        os.utime(ops, ns=(before.st_atime_ns, before.st_mtime_ns))
    with workspace(src, spec, warm=True) as again:
        assert "return a + b" in (again.wc / "calc" / "ops.py").read_text()
    close_warm()


def test_a_dead_process_warm_copy_is_removed_by_the_next(calc: tuple[RepoSource, EnvSpec]) -> None:
    """A Ray worker killed without running atexit leaves its warm working copy: the next warm workspace sweeps it."""
    src, spec = calc
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = Path(tempfile.gettempdir()) / f"{WARM_PREFIX}{gone.pid}-x"
    mine = Path(tempfile.mkdtemp(prefix=f"{WARM_PREFIX}{os.getpid()}-"))
    (orphan / "wc").mkdir(parents=True)
    with workspace(src, spec, warm=True) as ws:
        assert ws.wc.parent.name.startswith(f"{WARM_PREFIX}{os.getpid()}-")
    assert not orphan.exists() and mine.exists(), "only a dead owner's copy goes"
    shutil.rmtree(mine)
    close_warm()


def test_a_virtualenv_under_tmp_stays_mounted_across_resets(calc: tuple[RepoSource, EnvSpec]) -> None:
    """The sandbox binds a virtualenv that lives under /tmp into its private /tmp; emptying that /tmp between
    candidates must not remove the mount point (the next run would find no interpreter's packages)."""
    src, spec = calc
    assert spec.venv is not None
    under_tmp = Path(tempfile.mkdtemp()) / "venv"
    shutil.copytree(spec.venv, under_tmp, symlinks=True)
    moved = spec.model_copy(update={"venv": str(under_tmp)})
    close_warm()
    try:
        for _ in range(2):
            with workspace(src, moved, warm=True) as ws:
                run = ws.run(60, ["tests/test_ops.py::test_add"])
                assert run.passed == ["tests.test_ops::test_add"], run.output[-2000:]
    finally:
        close_warm()
        shutil.rmtree(under_tmp.parent)


def _src_diff(src: RepoSource, old: str, new: str) -> str:
    """A src.diff that replaces ``old`` with ``new`` in calc/ops.py."""
    with temp_working_copy(src) as wc:
        ops = wc / "calc" / "ops.py"
        ops.write_text(ops.read_text().replace(old, new))
        return diff(wc)


def test_a_kept_sealed_copy_holds_only_the_last_task_state(calc: tuple[RepoSource, EnvSpec]) -> None:
    """Check 3's warm copy, sealed anew for each task: one commit, no object of the base or of the task before,
    nothing a test left, and the runs see the new state."""
    src, spec = calc
    first = _src_diff(src, "return a + b", "return a - b")
    second = _src_diff(src, "return 1", "return 2")
    base_blob = git(["rev-parse", f"{src.commit_sha}:calc/ops.py"], cwd=src.git_dir).strip()
    with workspace(src, spec, warm=True, sealed=first) as ws:
        first_blob = git(["rev-parse", "HEAD:calc/ops.py"], cwd=ws.wc).strip()
        run = ws.run(60, ["tests/test_ops.py::test_add", "tests/test_ops.py::test_litter"])
        assert run.failed == ["tests.test_ops::test_add"] and (ws.wc / "left-behind.txt").exists()
    with workspace(src, spec, warm=True, sealed=second) as again:
        assert again.wc == ws.wc, "the same kept copy"
        assert git(["rev-list", "--all"], cwd=again.wc).split() == [git(["rev-parse", "HEAD"], cwd=again.wc).strip()]
        for blob in (base_blob, first_blob):
            assert not _has(again.wc, blob)
        assert not (again.wc / ".git" / "logs").exists() and not (again.wc / "left-behind.txt").exists()
        assert again.sandbox is not None and not (again.sandbox.tmp_dir / "left-in-tmp").exists()
        assert "return a + b" in (again.wc / "calc" / "ops.py").read_text()
        assert again.run(60).failed == ["tests.test_ops::test_spin"]
    close_warm()


def _has(wc: Path, sha: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", sha], cwd=wc).returncode == 0


def test_every_run_has_the_same_hash_seed_cold_or_warm(calc: tuple[RepoSource, EnvSpec]) -> None:
    """Test ids built from a set's order are the same in every run: cold runs (each a new interpreter) and the
    warm server's children alike (a base run that saw other ids would call the grade's tests missing)."""
    src, spec = calc
    with workspace(src, spec, warm=True) as ws:
        warm = ws.run(60, ["tests/test_words.py"])
        colds = [_cold(spec, ws.wc, ["tests/test_words.py"]) for _ in range(3)]
    close_warm()
    assert len(warm.passed) == 6
    assert all(sorted(c.passed) == sorted(warm.passed) for c in colds), [warm.passed, *(c.passed for c in colds)]


def test_warm_copies_are_a_pool_opened_ahead_and_kept_across_stages(calc: tuple[RepoSource, EnvSpec]) -> None:
    """Copies opened ahead (the workflow opens validation's during the coverage map) have their servers running;
    a copy given back serves the next caller on any thread; a stage inside a kept scope leaves the copies open for
    the next stage, and the last scope out closes them."""
    src, spec = calc
    with kept_warm():
        for thread in open_ahead(src, spec, 2):
            thread.join()
        with workspace(src, spec, warm=True) as one, workspace(src, spec, warm=True) as two:
            assert one.wc != two.wc
            servers = set()
            for ws in (one, two):
                assert ws.sandbox is not None and ws.sandbox._session is not None, "its server started ahead"
                session = ws.sandbox._session
                assert session.alive, "it outlives the thread that started it (bwrap dies with its parent thread)"
                assert ws.run(60, ["tests/test_ops.py::test_add"]).exit_code == 0
                assert ws.sandbox._session is session and session.alive, "the same server ran it"
                servers.add(session.proc.pid)
            opened = {one.wc, two.wc}
        with kept_warm():  # a stage within the workflow
            other: list[Path] = []

            def stage() -> None:
                with workspace(src, spec, warm=True) as ws:
                    other.append(ws.wc)
                    assert ws.run(60, ["tests/test_ops.py::test_add"]).passed == ["tests.test_ops::test_add"]

            worker = threading.Thread(target=stage)
            worker.start()
            worker.join()
            assert other and other[0] in opened, "another thread's copy, reset, not a new one"
        with workspace(src, spec, warm=True) as ws:
            assert ws.sandbox is not None and ws.sandbox._session is not None
            assert ws.sandbox._session.proc.pid in servers, "the server outlived the stage's thread"
        assert all(wc.exists() for wc in opened), "the inner scope's end leaves them open"
    assert not any(wc.exists() for wc in opened), "the last scope out closes them"


def test_a_copy_in_use_when_the_pool_closes_is_closed_when_given_back(calc: tuple[RepoSource, EnvSpec]) -> None:
    src, spec = calc
    with workspace(src, spec, warm=True) as ws:
        assert ws.run(60, ["tests/test_ops.py::test_add"]).exit_code == 0
        close_warm()
        assert ws.wc.exists() and ws.sandbox is not None and not ws.sandbox.closed, "still in use"
    assert not ws.wc.exists() and ws.sandbox.closed
    with workspace(src, spec, warm=True) as again:
        assert again.wc != ws.wc
    close_warm()


def test_a_copy_that_cannot_open_ahead_leaves_the_error_to_the_stage(calc: tuple[RepoSource, EnvSpec]) -> None:
    """An environment whose interpreter is gone: opening ahead fails in the background without a word, and the
    stage that wants a copy does not wait for it forever; it opens its own and meets the error itself."""
    src, spec = calc
    broken = spec.model_copy(update={"venv": str(Path(tempfile.mkdtemp()) / "gone")})
    for thread in open_ahead(src, broken, 1):
        thread.join()
    with pytest.raises(RepogymError), workspace(src, broken, warm=True) as ws:
        ws.run(60)
    close_warm()


def _tree_repo(tmp_path: Path, attributes: str = "") -> RepoSource:
    """A repository with a module, a data file, an executable script and a link."""
    root = tmp_path / "tree-src"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "data.txt").write_text("abc\n")
    (root / "notes.txt").write_text("notes\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("pkg/data.txt")
    if attributes:
        (root / ".gitattributes").write_text(attributes)
    return open_repo(make_git_repo(root, tmp_path / "tree-repo"))


def _checkout(root: Path) -> dict[str, tuple[str, bytes]]:
    """Each tracked path's kind (link, executable or file) and content."""
    out = {}
    for rel in git(["ls-files"], cwd=root).splitlines():
        path = root / rel
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path).encode())
        else:
            out[rel] = ("exec" if os.access(path, os.X_OK) else "file", path.read_bytes())
    return out


def test_a_reset_rewrites_only_the_files_that_changed_as_git_would(
    calc: tuple[RepoSource, EnvSpec], tmp_path: Path
) -> None:
    """After git's first reset, a kept copy's resets put back what changed without a git process: an edit of the
    same size with its times set back, a file become a folder, a lost executable bit, a link pointed elsewhere, a
    deleted file and a staged index. The copy is then what a fresh checkout is, git sees no change, and only the
    changed files were written."""
    src = _tree_repo(tmp_path)
    spec = calc[1].model_copy(update={"overlay": []})
    ws = Workspace(spec, working_copy(src, tmp_path / "copy" / "wc"))  # closing removes its parent
    fresh = _checkout(ws.wc)
    ws.reset(src.commit_sha)  # git's reset: from now on, the files are known
    ws.reset(src.commit_sha)  # checks every file's content once
    tree = ws._trees[src.commit_sha]
    assert tree.racy == set(), "nothing to write"
    mod = ws.wc / "pkg" / "mod.py"
    before = mod.stat()
    mod.write_text("X = 2\n")
    os.utime(mod, ns=(before.st_atime_ns, before.st_mtime_ns))
    (ws.wc / "pkg" / "data.txt").unlink()
    (ws.wc / "pkg" / "data.txt").mkdir()
    (ws.wc / "pkg" / "data.txt" / "inside").write_text("x")
    (ws.wc / "run.sh").chmod(0o644)
    (ws.wc / "link").unlink()
    (ws.wc / "link").symlink_to("notes.txt")
    (ws.wc / "notes.txt").unlink()
    (ws.wc / "new.txt").write_text("new")
    git(["add", "-A"], cwd=ws.wc)
    ws.reset(src.commit_sha)
    assert ws._trees[src.commit_sha] is tree, "no fallback to git's reset"
    assert tree.racy == {"pkg/mod.py", "pkg/data.txt", "run.sh", "link", "notes.txt"}, "only what changed"
    assert _checkout(ws.wc) == fresh and not (ws.wc / "new.txt").exists()
    assert git(["status", "--porcelain"], cwd=ws.wc) == ""
    assert git(["diff", "--cached", src.commit_sha], cwd=ws.wc) == "", "the index is the commit's again"
    git(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "moved"], cwd=ws.wc)
    ws.reset(src.commit_sha)
    assert git(["rev-parse", "HEAD"], cwd=ws.wc).strip() == src.commit_sha, "HEAD moved: git's reset"
    assert ws._trees[src.commit_sha] is not tree
    ws.reset(src.commit_sha)
    outside = tmp_path / "outside"
    shutil.move(ws.wc / "pkg", outside)  # the same files, inodes and all, now reached through a link
    (outside / "data.txt").write_text("abd\n")
    (ws.wc / "pkg").symlink_to(outside)
    ws.reset(src.commit_sha)
    assert _checkout(ws.wc) == fresh and not (ws.wc / "pkg").is_symlink(), "a folder again, by git's reset"
    assert (outside / "data.txt").read_text() == "abd\n", "nothing written through the link"
    ws.close()


def test_a_repository_with_attributes_is_reset_by_git(calc: tuple[RepoSource, EnvSpec], tmp_path: Path) -> None:
    """Where git converts what it checks out (line ends, filters), a blob is not the file: git resets."""
    src = _tree_repo(tmp_path, attributes="*.txt text eol=crlf\n")
    ws = Workspace(calc[1].model_copy(update={"overlay": []}), working_copy(src, tmp_path / "copy" / "wc"))
    (ws.wc / "notes.txt").write_text("changed\n")
    ws.reset(src.commit_sha)
    ws.reset(src.commit_sha)
    assert (ws.wc / "notes.txt").read_bytes() == b"notes\r\n" and not ws._trees
    ws.close()
    plain = _tree_repo(tmp_path / "plain")
    for setting in (["core.autocrlf", "true"], ["core.attributesFile", str(tmp_path / "attributes")]):
        other = Workspace(ws.spec, working_copy(plain, tmp_path / setting[0] / "wc"))
        git(["config", *setting], cwd=other.wc)
        other.reset(plain.commit_sha)
        assert not other._trees, setting
        other.close()
