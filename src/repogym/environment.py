"""How to run a repository's tests: detect an EnvSpec, build it (venv or image), and run the suite.

Detection reads what a person reads (project/: pytest's configuration, test dependencies, how the version is
derived); env_venv.py builds the virtualenv for bwrap/process, project/dockerfile.py the image for podman/docker
when no Dockerfile is given. Network is on while building and off while testing.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from repogym import env_venv
from repogym.errors import RepogymError
from repogym.project import deps, imports, plugins, pytest_config, vcs_version
from repogym.project import dockerfile as dockerfile_mod
from repogym.repo import RepoSource, temp_working_copy
from repogym.sandbox import Limits, Sandbox, open_sandbox
from repogym.sandbox.images import BASE_IMAGE
from repogym.sandbox.podman import default_image_name, image_exists
from repogym.testresults import TestRun, collection_errors, failure_messages, parse_junit

JUNIT_FILE = "repogym-junit.xml"
# pytest options in addopts that need a plugin, and the plugin that provides them.
ADDOPT_PLUGINS = {
    "--cov": "pytest-cov",
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--dist": "pytest-xdist",
    "--timeout": "pytest-timeout",
    "--benchmark": "pytest-benchmark",
    "--codspeed": "pytest-codspeed",
    "--hypothesis": "hypothesis",
    "--reruns": "pytest-rerunfailures",
    "--mypy": "pytest-mypy",
    "--doctest-plus": "pytest-doctestplus",
    "--randomly": "pytest-randomly",
    "--asyncio-mode": "pytest-asyncio",
    "--flake8": "pytest-flake8",
    "--ruff": "pytest-ruff",
}
# Keeps tests from writing caches into the working copy (they would show up in diffs).
# PYTHONHASHSEED: one hash seed for every run (cold runs, the warm server its children fork from, the base run and
# every grade), so that what depends on set order is the same in each: a parametrized test built from a set gets
# other ids under another seed (w3lib: `output182` in one run is `output185` in the next).
TEST_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONHASHSEED": "0"}
PYTEST = "python3 -m pytest -rA -p no:cacheprovider"
JUNIT_ARGS = '--junitxml="$REPOGYM_JUNIT"'


class BaseRun(BaseModel):
    """The suite at the base commit, as a fact: what passes, and what is excluded from every verdict."""

    passed: list[str] = Field(default_factory=list, description="Tests that passed in every base run.")
    known_failures: dict[str, str] = Field(default_factory=dict, description="Test id -> outcome at the base.")
    flaky: list[str] = Field(default_factory=list, description="Tests whose outcome differed between base runs.")
    ignored_modules: dict[str, str] = Field(default_factory=dict, description="Module -> why it cannot be collected.")
    in_source: list[str] = Field(
        default_factory=list, description="Doctests of source modules: part of the code a task changes, never judged."
    )
    seconds: float = Field(0.0, description="Duration of one base run.")

    def excluded(self) -> set[str]:
        """Tests that can never be FAIL_TO_PASS or PASS_TO_PASS, nor fail a check."""
        return set(self.known_failures) | set(self.flaky) | set(self.in_source)

    def usable(self, tests: set[str]) -> set[str]:
        """The tests that may be FAIL_TO_PASS or PASS_TO_PASS: those that passed in every base run, and new ones
        (added by tests.diff), unless a flaky test of the base has the same function (a parameter that holds the
        time gives a new id on every run)."""
        flaky_functions = {t.split("[", 1)[0] for t in self.flaky}
        seen = set(self.passed) | self.excluded()
        return {t for t in tests if t in self.passed or (t not in seen and t.split("[", 1)[0] not in flaky_functions)}


class EnvSpec(BaseModel):
    """How to build and run one repository's test suite."""

    repo_name: str = Field(description="Repository name (used for image and venv names).")
    backend: str = Field("bwrap", description="Sandbox backend: bwrap, podman, docker or process.")
    project_extras: list[str] = Field(default_factory=list, description="Optional-dependency groups to install.")
    installable: bool = Field(True, description="Whether the project itself can be pip-installed.")
    requirements: list[str] = Field(default_factory=list, description="Requirement files read, relative to the repo.")
    test_deps: list[str] = Field(default_factory=list, description="Extra packages for the tests.")
    setup_command: str = Field("", description="Run before the tests in every fresh sandbox.")
    run_command: str = Field(PYTEST, description="Runs the suite, as a person types it (no JUnit option).")
    junit_args: str = Field(JUNIT_ARGS, description="Appended to run_command to write JUnit XML to $REPOGYM_JUNIT.")
    pytest: bool = Field(True, description="Whether the suite runs under pytest (its options may be added).")
    pytest_args: list[str] = Field(default_factory=list, description="What run_command adds to plain pytest.")
    test_env: dict[str, str] = Field(default_factory=dict, description="Environment for the test command.")
    image: str | None = Field(None, description="Container image (podman/docker).")
    dockerfile: str | None = Field(None, description="Dockerfile the image is built from.")
    venv: str | None = Field(None, description="Virtualenv path (bwrap/process), set by build.")
    overlay: list[str] = Field(
        default_factory=list,
        description="Git-ignored files the build generated (a version file, say), copied into every working copy.",
    )
    base: BaseRun | None = Field(None, description="The base run, once recorded.")
    key: str = Field("", description="Hash of everything the environment depends on.")
    notes: list[str] = Field(default_factory=list, description="What detection found, in words.")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        """Records written before run_command existed keep their whole command (which wrote the JUnit XML)."""
        if isinstance(data, dict) and "test_command" in data and "run_command" not in data:
            data = {**data, "run_command": data["test_command"], "junit_args": ""}
        return data

    def add_pytest_args(self, args: list[str]) -> None:
        """Options every pytest run needs (--ignore of a module, -o python_files=...), kept as data too."""
        self.pytest_args += args
        self.run_command = f"{self.run_command} {shlex.join(args)}"

    @property
    def test_command(self) -> str:
        """What the harness runs: the person's command plus the JUnit option."""
        return f"{self.run_command} {self.junit_args}".strip()


def default_test_command() -> str:
    return f"{PYTEST} {JUNIT_ARGS}"


def detect(
    repo_dir: Path,
    repo_name: str,
    backend: str = "bwrap",
    test_deps: list[str] | None = None,
    test_command: str | None = None,
) -> EnvSpec:
    """Infer how to install and test a Python project from its files; ``test_deps`` add to what is found and
    ``test_command`` replaces the default (it should write JUnit XML to $REPOGYM_JUNIT)."""
    pyproject = _read_toml(repo_dir / "pyproject.toml")
    spec = EnvSpec(repo_name=repo_name, backend=backend, installable=_installable(repo_dir, pyproject))
    found = deps.discover(repo_dir, pyproject)
    spec.project_extras, spec.test_deps, spec.requirements, spec.notes = (
        found.extras,
        found.deps,
        found.files,
        found.notes,
    )
    _pytest_needs(pytest_config.read(repo_dir), repo_dir, spec)
    for dep in test_deps or []:
        _add_dep(spec, dep, f"--test-deps {dep}")
    if not any(_dist_name(d) == "pytest" for d in spec.test_deps):
        spec.test_deps.insert(0, "pytest")
    if test_command:
        spec.run_command, spec.junit_args, spec.pytest = test_command, "", False
    else:
        _suite(repo_dir, pytest_config.read(repo_dir), spec)
    _vcs_version(repo_dir, pyproject, spec)
    if backend in ("podman", "docker"):
        _container(repo_dir, pyproject, spec)
    spec.key = _key(repo_dir, spec)
    return spec


def _installable(repo_dir: Path, pyproject: dict[str, Any]) -> bool:
    has_setup = (repo_dir / "setup.py").exists() or (repo_dir / "setup.cfg").exists()
    return bool(pyproject.get("project") or pyproject.get("build-system")) or has_setup


def _dist_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _add_dep(spec: EnvSpec, dep: str, note: str) -> None:
    if all(_dist_name(d) != _dist_name(dep) for d in spec.test_deps):
        spec.test_deps.append(dep)
        spec.notes.append(note)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RepogymError(f"{path}: not valid TOML ({e})") from e


def _pytest_needs(config: pytest_config.PytestConfig, repo_dir: Path, spec: EnvSpec) -> None:
    """Plugins that the configuration asks for: by option in addopts, by -p, by required_plugins."""
    if config.path:
        spec.notes.append(f"pytest configuration: {config.path}")
    for opt, plugin in ADDOPT_PLUGINS.items():
        if any(
            a == opt
            or a.startswith((f"{opt}=", f"{opt}-"))
            or (len(opt) == 2 and a.startswith(opt) and a[2:].isdigit())
            for a in config.addopts
        ):
            _add_dep(spec, plugin, f"addopts uses {opt}: needs {plugin}")
    local = imports.local_names(repo_dir)
    for module in config.plugins_in_addopts():
        if module.split(".")[0] not in local:
            _add_dep(spec, imports.distribution(module.split(".")[0]), f"addopts -p {module}")
    for req in config.required_plugins:
        _add_dep(spec, req, f"required_plugins {req}")


def _suite(repo_dir: Path, config: pytest_config.PytestConfig, spec: EnvSpec) -> None:
    """The pytest command: the project's own file patterns, widened when its tests have names pytest misses."""
    patterns = config.python_files or pytest_config.DEFAULT_PYTHON_FILES
    found = [f for f in pytest_config.test_files(repo_dir, patterns, config.testpaths) if not f.endswith("conftest.py")]
    if found or config.python_files:
        spec.notes.append(f"{len(found)} test module(s) match {' '.join(patterns)}")
        spec.run_command = PYTEST
    else:
        wider = patterns + pytest_config.EXTRA_TEST_FILES
        found = [
            f for f in pytest_config.test_files(repo_dir, wider, config.testpaths) if not f.endswith("conftest.py")
        ]
        if not found:
            raise RepogymError(
                f"{spec.repo_name}: no tests found (no {', '.join(wider)} files); add tests or give --test-command"
            )
        spec.add_pytest_args(["-o", "python_files=" + " ".join(wider)])
        spec.notes.append(f"tests named {', '.join(pytest_config.EXTRA_TEST_FILES)} found: pytest told to collect them")


def _vcs_version(repo_dir: Path, pyproject: dict[str, Any], spec: EnvSpec) -> None:
    backend = vcs_version.vcs_backend(repo_dir, pyproject)
    if backend is None:
        return
    version = vcs_version.describe(repo_dir)
    spec.test_env.update(vcs_version.pretend_env(version, pyproject.get("project", {}).get("name")))
    spec.notes.append(f"version from git ({backend}): built as {version} (git describe or the fallback)")


def _container(repo_dir: Path, pyproject: dict[str, Any], spec: EnvSpec) -> None:
    """podman/docker: the image holds the dependencies; each fresh container installs the project from /repo."""
    spec.image = default_image_name(spec.repo_name)
    if spec.installable:
        spec.setup_command = "pip install -q --no-deps --no-build-isolation --break-system-packages -e /repo"
    spec.dockerfile = dockerfile_mod.render(
        base_image=BASE_IMAGE,
        build_requires=[str(r) for r in pyproject.get("build-system", {}).get("requires", ["setuptools", "wheel"])],
        project=f".[{','.join(spec.project_extras)}]"
        if spec.installable and spec.project_extras
        else "."
        if spec.installable
        else "",
        deps=spec.test_deps,
        env=spec.test_env,
    )


def _key(repo_dir: Path, spec: EnvSpec) -> str:
    h = hashlib.sha256()
    h.update(sys.version.encode())
    h.update(json.dumps(spec.model_dump(exclude={"key", "notes", "venv", "base"}), sort_keys=True).encode())
    for name in ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "noxfile.py", *spec.requirements):
        f = repo_dir / name
        if f.exists():
            h.update(name.encode() + b"\0" + f.read_bytes())
    # What the tests import decides what the build installs for them (unresolved imports): part of the key, or
    # a project whose tests start importing a new library would reuse an environment without it.
    config = pytest_config.read(repo_dir)
    patterns = (config.python_files or pytest_config.DEFAULT_PYTHON_FILES) + pytest_config.EXTRA_TEST_FILES
    names = imports.test_imports(repo_dir, pytest_config.test_files(repo_dir, patterns, config.testpaths))
    h.update(json.dumps(sorted(names)).encode())
    return h.hexdigest()[:16]


venv_path = env_venv.venv_path


def build(
    spec: EnvSpec, repo_dir: Path, dockerfile: Path | None = None, say: Callable[[str], None] | None = None
) -> EnvSpec:
    """Build the environment (idempotent: an existing one is reused) and return the spec with its location."""
    say = say or (lambda _m: None)
    if spec.backend in ("bwrap", "process"):
        return _with_own_plugins(env_venv.build_venv(spec, repo_dir, say), repo_dir)
    return _with_own_plugins(_build_image(spec, repo_dir, dockerfile, say), repo_dir)


def _with_own_plugins(spec: EnvSpec, repo_dir: Path) -> EnvSpec:
    """The built environment with plugin autoloading off and its own plugins named (see project/plugins.py)."""
    if "PYTEST_DISABLE_PLUGIN_AUTOLOAD" in spec.test_env:
        return spec
    with open_env_sandbox(spec, repo_dir) as sb:
        env, note = plugins.autoload_off_env(sb)
    return spec.model_copy(update={"test_env": {**spec.test_env, **env}, "notes": [*spec.notes, note]})


def _build_image(spec: EnvSpec, repo_dir: Path, dockerfile: Path | None, say: Callable[[str], None]) -> EnvSpec:
    """The given Dockerfile's image; else an image already built under the name (by a person or the environment
    agent); else the generated Dockerfile's, tagged with the environment's key so that a change rebuilds it."""
    engine = spec.backend
    image = spec.image or default_image_name(spec.repo_name)
    if dockerfile is not None and not dockerfile.is_file():
        raise RepogymError(f"{dockerfile}: no such Dockerfile")
    if dockerfile is None and image_exists(engine, image):
        say(f"image exists: {image}")
        return spec.model_copy(update={"image": image})
    text = dockerfile.read_text() if dockerfile is not None else spec.dockerfile
    if not text:
        raise RepogymError(f"image {image!r} does not exist: give --dockerfile FILE to build it")
    if dockerfile is None:
        image = f"{image}:{spec.key}"
        if image_exists(engine, image):
            say(f"image exists: {image}")
            return spec.model_copy(update={"image": image})
        if not image_exists(engine, BASE_IMAGE):
            raise RepogymError(
                f"the generated Dockerfile starts FROM {BASE_IMAGE}: build it once with "
                f"`repogym env base-image --engine {engine}`, or give --dockerfile FILE"
            )
    dockerfile_mod.build_image(engine, image, text, repo_dir, say)
    return spec.model_copy(update={"image": image, "dockerfile": text})


def open_env_sandbox(
    spec: EnvSpec, wc: Path, limits: Limits | None = None, session: bool = False, warm: bool = False
) -> Sandbox:
    """A sandbox over working copy ``wc`` with the environment's interpreter first on PATH; ``warm``: its test
    runs fork from a server that has imported pytest (see sandbox/session_server.py), where the backend has
    sessions and the suite is pytest's."""
    env = dict(TEST_ENV)
    if spec.venv:
        env["PATH"] = f"{spec.venv}/bin:/usr/local/bin:/usr/bin:/bin"
        env["VIRTUAL_ENV"] = spec.venv
    if spec.backend in ("bwrap", "process") and not spec.venv:
        raise RepogymError(f"the environment for {spec.repo_name} is not built: run `repogym env build REPO`")
    if spec.backend == "process":
        # No /repo to point an editable install at: the working copy goes first on the path instead.
        root = Path(wc).resolve()
        env["PYTHONPATH"] = f"{root}:{root / 'src'}"
    binds = {spec.venv: spec.venv} if spec.venv and spec.backend == "bwrap" else None
    env_venv.place_overlay(spec, wc)
    sb = open_sandbox(spec.backend, wc, image=spec.image, env=env, ro_binds=binds, limits=limits, session=session)
    if warm and spec.pytest and spec.backend != "process":
        sb.warm_pytest(f"{spec.venv}/bin/python3" if spec.venv else "python3")
    return sb


MAX_SELECTION_CHARS = 60_000  # one shell argument holds 128 KiB: past this, select whole files


def selection_args(tests: list[str]) -> list[str]:
    """pytest arguments that run only ``tests`` (node ids, or files), with the rootdir of a whole-suite run
    (with path arguments and no config file, pytest would root the ids at their common folder)."""
    if sum(len(t) + 3 for t in tests) > MAX_SELECTION_CHARS:
        tests = sorted({t.split("::", 1)[0] for t in tests})
    return ["--rootdir=.", *tests]


def run_tests(
    spec: EnvSpec,
    sandbox: Sandbox,
    timeout_s: float = 900.0,
    max_output_bytes: int = 200_000,
    select: list[str] | None = None,
    env: dict[str, str] | None = None,
    native_tracebacks: bool = False,
) -> TestRun:
    """Run the suite once in ``sandbox`` and collect per-test outcomes; ``select``: only these tests (pytest node
    ids or test files), for a pytest suite; ``env``: over the environment's own variables. ``native_tracebacks``:
    a pytest suite reports failures in Python's own format (`--tb=native`); pytest's parses each failing test's
    whole module to show its source (0.27 s a failure on more-itertools' 7,000-line test module), and a run that
    validation makes fail has many."""
    junit_inside = f"{sandbox.tmp_inside}/{JUNIT_FILE}"
    junit_host = sandbox.host_path(junit_inside)
    junit_host.unlink(missing_ok=True)
    env = {**spec.test_env, "REPOGYM_JUNIT": junit_inside, "COVERAGE_FILE": f"{sandbox.tmp_inside}/.coverage",
           **(env or {})}  # fmt: skip
    extra = [*(selection_args(select) if select is not None else []), *(["--tb=native"] if native_tracebacks else [])]
    test_command = f"{spec.test_command} {shlex.join(extra)}" if extra and spec.pytest else spec.test_command
    cmd = f"{spec.setup_command} && {test_command}" if spec.setup_command else test_command
    args = _plain_pytest_args(spec, junit_inside, extra)
    r = sandbox.run_pytest(args, env=env, timeout_s=timeout_s, max_output_bytes=max_output_bytes) if args else None
    if r is None:
        r = sandbox.exec(cmd, env=env, timeout_s=timeout_s, max_output_bytes=max_output_bytes)
    run = TestRun(exit_code=r.exit_code, timed_out=r.timed_out, seconds=r.seconds, output=r.stdout + r.stderr)
    if junit_host.exists():
        try:
            text = junit_host.read_text(errors="replace")
            run.outcomes, run.collection_errors = parse_junit(text), collection_errors(text)
            run.messages = failure_messages(text)
            return run
        except ValueError as e:
            run.note = f"JUnit XML unreadable ({e}); judged by exit code"
    else:
        run.note = "the suite wrote no JUnit XML; judged by exit code"
    run.source = "exit-code"
    return run


def _plain_pytest_args(spec: EnvSpec, junit: str, extra: list[str]) -> list[str] | None:
    """The arguments of ``python3 -m pytest`` that the test command runs (then ``extra``), or None when it is more
    than that (a person's own command, a setup step): only a plain pytest run can fork from a warm server."""
    words = shlex.split(spec.run_command)
    if not spec.pytest or spec.setup_command or words[:3] != shlex.split(PYTEST)[:3] or spec.junit_args != JUNIT_ARGS:
        return None
    return [*words[3:], f"--junitxml={junit}", *extra]


def prepare(
    src: RepoSource,
    backend: str,
    *,
    test_deps: list[str] | None = None,
    test_command: str | None = None,
    dockerfile: Path | None = None,
    image: str | None = None,
    say: Callable[[str], None] | None = None,
) -> EnvSpec:
    """Detect and build the environment of a repository at its base commit (reusing a built one)."""
    with temp_working_copy(src) as wc:
        spec = detect(wc, src.name, backend, test_deps, test_command)
        if image:
            spec.image = image
        return build(spec, wc, dockerfile, say)
