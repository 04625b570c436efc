"""How to run a repository's tests: detect an EnvSpec, build it (venv or image), and run the suite.

For bwrap the environment is a virtualenv outside the repository, cached by the hash of the dependency files,
with the project installed in editable mode pointing at /repo, so that every working copy mounted at /repo uses
it. Network is on while building and off while testing.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from repogym.errors import RepogymError
from repogym.repo import RepoSource, cache_dir, temp_working_copy
from repogym.sandbox import Limits, Sandbox, open_sandbox
from repogym.sandbox.bwrap import BwrapSandbox
from repogym.sandbox.podman import default_image_name, image_exists
from repogym.testresults import TestRun, parse_junit

TEST_GROUPS = ("test", "tests", "testing", "dev")
JUNIT_FILE = "repogym-junit.xml"
BUILD_TIMEOUT_S = 1800.0
# pytest options in addopts that need a plugin, and the plugin that provides them.
ADDOPT_PLUGINS = {
    "--cov": "pytest-cov",
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--timeout": "pytest-timeout",
    "--benchmark": "pytest-benchmark",
    "--hypothesis": "hypothesis",
    "--reruns": "pytest-rerunfailures",
    "--mypy": "pytest-mypy",
    "--doctest-plus": "pytest-doctestplus",
}
# Keeps tests from writing caches into the working copy (they would show up in diffs).
TEST_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


class EnvSpec(BaseModel):
    """How to build and run one repository's test suite."""

    repo_name: str = Field(description="Repository name (used for image and venv names).")
    backend: str = Field("bwrap", description="Sandbox backend: bwrap, podman, docker or process.")
    project_extras: list[str] = Field(default_factory=list, description="Optional-dependency groups to install.")
    installable: bool = Field(True, description="Whether the project itself can be pip-installed.")
    requirements: list[str] = Field(default_factory=list, description="Requirement files, relative to the repo.")
    test_deps: list[str] = Field(default_factory=list, description="Extra packages for the tests.")
    setup_command: str = Field("", description="Run before the tests in every fresh sandbox.")
    test_command: str = Field("", description="Runs the suite; must write JUnit XML to $REPOGYM_JUNIT.")
    test_env: dict[str, str] = Field(default_factory=dict, description="Environment for the test command.")
    image: str | None = Field(None, description="Container image (podman/docker).")
    dockerfile: str | None = Field(None, description="Dockerfile the image is built from.")
    venv: str | None = Field(None, description="Virtualenv path (bwrap/process), set by build.")
    key: str = Field("", description="Hash of everything the environment depends on.")
    notes: list[str] = Field(default_factory=list, description="What detection found, in words.")


def default_test_command() -> str:
    return 'python3 -m pytest -rA -p no:cacheprovider --junitxml="$REPOGYM_JUNIT"'


def detect(
    repo_dir: Path,
    repo_name: str,
    backend: str = "bwrap",
    test_deps: list[str] | None = None,
    test_command: str | None = None,
) -> EnvSpec:
    """Infer how to install and test a Python project from its files; ``test_deps`` add to what is found and
    ``test_command`` replaces the default (it should write JUnit XML to $REPOGYM_JUNIT)."""
    spec = EnvSpec(repo_name=repo_name, backend=backend, test_command=test_command or default_test_command())
    pyproject = _read_toml(repo_dir / "pyproject.toml")
    has_setup = (repo_dir / "setup.py").exists() or (repo_dir / "setup.cfg").exists()
    spec.installable = bool(pyproject.get("project") or pyproject.get("build-system")) or has_setup
    _detect_pyproject(pyproject, spec)
    _detect_setup_cfg(repo_dir / "setup.cfg", spec)
    _detect_requirement_files(repo_dir, spec)
    _detect_tox(repo_dir / "tox.ini", spec)
    addopts = _addopts(repo_dir, pyproject)
    for opt, plugin in ADDOPT_PLUGINS.items():
        if re.search(rf"(^|\s){re.escape(opt)}(=|\s|$)", addopts) and plugin not in spec.test_deps:
            spec.test_deps.append(plugin)
            spec.notes.append(f"addopts uses {opt}: needs {plugin}")
    for dep in test_deps or []:
        if dep not in spec.test_deps:
            spec.test_deps.append(dep)
            spec.notes.append(f"--test-deps {dep}")
    if "pytest" not in spec.test_deps:
        spec.test_deps.insert(0, "pytest")
    if not _has_tests(repo_dir) and not test_command:
        raise RepogymError(
            f"{repo_name}: no tests found (no test_*.py or *_test.py files); add tests or give --test-command"
        )
    if backend in ("podman", "docker"):
        spec.image = default_image_name(repo_name)
        if spec.installable:
            spec.setup_command = "pip install -q --no-deps --no-build-isolation --break-system-packages -e /repo"
    spec.key = _key(repo_dir, spec)
    return spec


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RepogymError(f"{path}: not valid TOML ({e})") from e


def _detect_pyproject(pyproject: dict[str, Any], spec: EnvSpec) -> None:
    optional = pyproject.get("project", {}).get("optional-dependencies", {})
    for group in TEST_GROUPS:
        if group in optional:
            spec.project_extras.append(group)
            spec.notes.append(f"pyproject optional-dependencies [{group}]")
    groups = pyproject.get("dependency-groups", {})
    for group in TEST_GROUPS:
        for dep in _flatten_group(groups, group, set()):
            if dep not in spec.test_deps:
                spec.test_deps.append(dep)
        if group in groups:
            spec.notes.append(f"pyproject dependency-groups [{group}]")


def _flatten_group(groups: dict[str, Any], name: str, seen: set[str]) -> list[str]:
    if name in seen or name not in groups:
        return []
    seen.add(name)
    out: list[str] = []
    for item in groups[name]:
        if isinstance(item, dict) and "include-group" in item:
            out += _flatten_group(groups, item["include-group"], seen)
        elif isinstance(item, str):
            out.append(item)
    return out


def _detect_setup_cfg(path: Path, spec: EnvSpec) -> None:
    if not path.exists():
        return
    cfg = configparser.ConfigParser()
    cfg.read(path)
    if cfg.has_section("options.extras_require"):
        for group in TEST_GROUPS:
            if cfg.has_option("options.extras_require", group) and group not in spec.project_extras:
                spec.project_extras.append(group)
                spec.notes.append(f"setup.cfg extras_require [{group}]")


def _detect_requirement_files(repo_dir: Path, spec: EnvSpec) -> None:
    for f in sorted(repo_dir.glob("requirements*.txt")) + sorted(repo_dir.glob("*requirements*.txt")):
        name = f.name
        if name in spec.requirements:
            continue
        if name == "requirements.txt" or "test" in name or name in ("requirements-dev.txt", "requirements_dev.txt"):
            spec.requirements.append(name)
            spec.notes.append(f"requirement file {name}")


def _detect_tox(path: Path, spec: EnvSpec) -> None:
    if not path.exists():
        return
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read(path)
    except configparser.Error:
        return
    if not cfg.has_option("testenv", "deps"):
        return
    for line in cfg.get("testenv", "deps").splitlines():
        dep = line.split("#")[0].strip()
        if not dep or "{" in dep or dep.startswith("-"):
            continue
        if dep not in spec.test_deps:
            spec.test_deps.append(dep)
    spec.notes.append("tox.ini [testenv] deps")


def _addopts(repo_dir: Path, pyproject: dict[str, Any]) -> str:
    opts = pyproject.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("addopts", "")
    parts = [" ".join(opts) if isinstance(opts, list) else str(opts)]
    for name, section in (("pytest.ini", "pytest"), ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = repo_dir / name
        if path.exists():
            cfg = configparser.ConfigParser(interpolation=None)
            try:
                cfg.read(path)
            except configparser.Error:
                continue
            if cfg.has_option(section, "addopts"):
                parts.append(cfg.get(section, "addopts"))
    return " ".join(parts)


def _has_tests(repo_dir: Path) -> bool:
    for pattern in ("test_*.py", "*_test.py"):
        for p in repo_dir.rglob(pattern):
            if not any(part.startswith(".") or part in ("node_modules", ".venv") for part in p.parts):
                return True
    return False


def _key(repo_dir: Path, spec: EnvSpec) -> str:
    h = hashlib.sha256()
    h.update(sys.version.encode())
    h.update(json.dumps(spec.model_dump(exclude={"key", "notes", "venv"}), sort_keys=True).encode())
    for name in ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", *spec.requirements):
        f = repo_dir / name
        if f.exists():
            h.update(name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def venv_path(spec: EnvSpec) -> Path:
    return cache_dir() / "venvs" / f"{spec.repo_name.replace('#', '__')}-{spec.backend}-{spec.key}"


def build(
    spec: EnvSpec, repo_dir: Path, dockerfile: Path | None = None, say: Callable[[str], None] | None = None
) -> EnvSpec:
    """Build the environment (idempotent: an existing one is reused) and return the spec with its location."""
    say = say or (lambda _m: None)
    if spec.backend in ("bwrap", "process"):
        return _build_venv(spec, repo_dir, say)
    return _build_image(spec, dockerfile, say)


def _build_venv(spec: EnvSpec, repo_dir: Path, say: Callable[[str], None]) -> EnvSpec:
    venv = venv_path(spec)
    if (venv / ".repogym-complete").exists():
        say(f"environment exists: {venv}")
        return spec.model_copy(update={"venv": str(venv)})
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True, capture_output=True)
    say(f"installing into {venv}")
    target = "/repo" if spec.backend == "bwrap" else str(repo_dir.resolve())
    args = [f"{venv}/bin/python", "-m", "pip", "install", "-q"]
    for req in spec.requirements:
        args += ["-r", f"{target}/{req}"]
    if spec.installable:
        extras = f"[{','.join(spec.project_extras)}]" if spec.project_extras else ""
        args += ["-e", f"{target}{extras}"] if spec.backend == "bwrap" else [f"{target}{extras}"]
    args += spec.test_deps
    _run_build(args, spec, repo_dir, venv)
    (venv / ".repogym-complete").write_text(spec.model_dump_json(indent=2))
    return spec.model_copy(update={"venv": str(venv)})


def _base_python() -> str:
    return getattr(sys, "_base_executable", sys.executable)


def _run_build(args: list[str], spec: EnvSpec, repo_dir: Path, venv: Path) -> None:
    """Install inside a network-enabled bwrap (repo at /repo, the venv writable), or on the host for process."""
    work = Path(tempfile.mkdtemp(prefix="repogym-build-"))
    try:
        copy = work / "repo"
        shutil.copytree(repo_dir, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        if spec.backend == "bwrap":
            with BwrapSandbox(copy, network=True, extra_binds={str(venv): str(venv)}) as sb:
                r = sb.exec(args, timeout_s=BUILD_TIMEOUT_S, max_output_bytes=200_000)
        else:
            args = [a.replace(str(repo_dir.resolve()), str(copy)) for a in args]
            with open_sandbox("process", copy) as sb:
                r = sb.exec(args, timeout_s=BUILD_TIMEOUT_S, max_output_bytes=200_000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not r.ok:
        tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
        shutil.rmtree(venv, ignore_errors=True)
        raise RepogymError(
            "environment build failed (pip install): "
            + " | ".join(tail)
            + "; fix the dependencies or pass --test-deps / --test-command"
        )


def _build_image(spec: EnvSpec, dockerfile: Path | None, say: Callable[[str], None]) -> EnvSpec:
    engine = spec.backend
    image = spec.image or default_image_name(spec.repo_name)
    if dockerfile is None:
        if image_exists(engine, image):
            say(f"image exists: {image}")
            return spec.model_copy(update={"image": image})
        raise RepogymError(f"image {image!r} does not exist: give --dockerfile FILE to build it")
    if not dockerfile.is_file():
        raise RepogymError(f"{dockerfile}: no such Dockerfile")
    ctx = Path(tempfile.mkdtemp(prefix="repogym-ctx-"))
    try:
        # The source is mounted at run time, never copied in: the build context holds only the Dockerfile.
        shutil.copy(dockerfile, ctx / "Dockerfile")
        say(f"{engine} build -t {image}")
        p = subprocess.run([engine, "build", "-q", "-t", image, str(ctx)], capture_output=True, text=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    if p.returncode != 0:
        raise RepogymError(f"{engine} build failed for {dockerfile}: {p.stderr.strip().splitlines()[-1:]}")
    return spec.model_copy(update={"image": image, "dockerfile": dockerfile.read_text()})


def open_env_sandbox(spec: EnvSpec, wc: Path, limits: Limits | None = None) -> Sandbox:
    """A sandbox over working copy ``wc`` with the environment's interpreter first on PATH."""
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
    return open_sandbox(spec.backend, wc, image=spec.image, env=env, ro_binds=binds, limits=limits)


def run_tests(spec: EnvSpec, sandbox: Sandbox, timeout_s: float = 900.0, max_output_bytes: int = 200_000) -> TestRun:
    """Run the suite once in ``sandbox`` and collect per-test outcomes."""
    junit_inside = f"{sandbox.tmp_inside}/{JUNIT_FILE}"
    junit_host = sandbox.host_path(junit_inside)
    junit_host.unlink(missing_ok=True)
    env = {**spec.test_env, "REPOGYM_JUNIT": junit_inside, "COVERAGE_FILE": f"{sandbox.tmp_inside}/.coverage"}
    cmd = f"{spec.setup_command} && {spec.test_command}" if spec.setup_command else spec.test_command
    r = sandbox.exec(cmd, env=env, timeout_s=timeout_s, max_output_bytes=max_output_bytes)
    run = TestRun(exit_code=r.exit_code, timed_out=r.timed_out, seconds=r.seconds, output=r.stdout + r.stderr)
    if junit_host.exists():
        try:
            run.outcomes = parse_junit(junit_host.read_text(errors="replace"))
            return run
        except ValueError as e:
            run.note = f"JUnit XML unreadable ({e}); judged by exit code"
    else:
        run.note = "the suite wrote no JUnit XML; judged by exit code"
    run.source = "exit-code"
    return run


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
