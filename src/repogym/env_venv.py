"""The virtualenv of a repository (bwrap/process), built the way a person would: everything in one pip run,
then, if that fails, the project and each test dependency on its own; imports of the tests that still do not
resolve are installed by distribution name; files the build generated in the source (a version file) are kept
and copied into every working copy.

The venv lives outside the repository, cached by the hash of the dependency files, with the project installed
in editable mode pointing at /repo, so that every working copy mounted at /repo uses it. Network is on while
building and off while testing.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from repogym.errors import RepogymError
from repogym.project import imports, pytest_config
from repogym.repo import cache_dir, git
from repogym.sandbox import Sandbox, open_sandbox
from repogym.sandbox.base import run_bounded
from repogym.sandbox.bwrap import BwrapSandbox

if TYPE_CHECKING:
    from repogym.environment import EnvSpec

BUILD_TIMEOUT_S = 1800.0
COMPLETE = ".repogym-complete"
OVERLAY = ".repogym-overlay"
# What installing leaves in a source tree that is never part of the project's files.
_BUILD_LITTER = ("__pycache__", ".egg-info", ".eggs", "build", ".pytest_cache")
_FIND_SPEC = (
    "import importlib.util as u, json, sys; print(json.dumps([n for n in sys.argv[1:] if u.find_spec(n) is None]))"
)


def venv_path(spec: EnvSpec) -> Path:
    return cache_dir() / "venvs" / f"{spec.repo_name.replace('#', '__')}-{spec.backend}-{spec.key}"


def build_venv(spec: EnvSpec, repo_dir: Path, say: Callable[[str], None]) -> EnvSpec:
    """Build (or reuse) the venv; the returned spec carries what the build found (deps, notes, overlay)."""
    venv = venv_path(spec)
    if (venv / COMPLETE).exists():
        say(f"environment exists: {venv}")
        built = type(spec).model_validate_json((venv / COMPLETE).read_text())
        return spec.model_copy(update={"venv": str(venv), **_found(built)})
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    made = run_bounded([_base_python(), "-m", "venv", str(venv)], cwd=None, env=None, timeout_s=300,
                       max_output_bytes=100_000)  # fmt: skip
    if not made.ok:
        raise RepogymError(f"cannot make the virtualenv {venv}: {(made.stderr or made.stdout).strip()[-300:]}")
    say(f"installing into {venv}")
    spec = spec.model_copy(deep=True)
    try:
        with _build_copy(repo_dir) as copy, _installer(spec, copy, venv) as sb:
            _install(spec, sb, _target(spec, copy), venv, say)
            _install_missing_imports(spec, sb, copy, venv, say)
            spec.overlay = _keep_generated(repo_dir, copy, venv)
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    spec.venv = str(venv)
    (venv / COMPLETE).write_text(spec.model_dump_json(indent=2))
    return spec


def _found(built: EnvSpec) -> dict[str, object]:
    return {"test_deps": built.test_deps, "notes": built.notes, "overlay": built.overlay}


def _base_python() -> str:
    return getattr(sys, "_base_executable", sys.executable)


@contextmanager
def _build_copy(repo_dir: Path) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="repogym-build-"))
    try:
        copy = work / "repo"
        shutil.copytree(repo_dir, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        yield copy
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _installer(spec: EnvSpec, copy: Path, venv: Path) -> Sandbox:
    """A network-enabled bwrap (the copy at /repo, the venv writable), or the host for process."""
    if spec.backend == "bwrap":
        return BwrapSandbox(copy, network=True, extra_binds={str(venv): str(venv)}, env=spec.test_env)
    return open_sandbox("process", copy, env=spec.test_env)


def _target(spec: EnvSpec, copy: Path) -> list[str]:
    """pip arguments that install the project with its extras (editable at /repo for bwrap)."""
    if not spec.installable:
        return []
    extras = f"[{','.join(spec.project_extras)}]" if spec.project_extras else ""
    return ["-e", f"/repo{extras}"] if spec.backend == "bwrap" else [f"{copy}{extras}"]


def _pip(sb: Sandbox, venv: Path, args: list[str]) -> tuple[bool, str]:
    r = sb.exec(
        [f"{venv}/bin/python", "-m", "pip", "install", "-q", *args], timeout_s=BUILD_TIMEOUT_S, max_output_bytes=200_000
    )
    return r.ok, (r.stderr or r.stdout)


def _install(spec: EnvSpec, sb: Sandbox, target: list[str], venv: Path, say: Callable[[str], None]) -> None:
    """All at once; failing that, the project (extras, then none) and then each dependency on its own."""
    ok, out = _pip(sb, venv, [*target, *spec.test_deps])
    if ok:
        return
    say("pip could not install everything at once; installing one by one")
    spec.notes.append(f"pip failed on everything at once: {_tail(out, 1)}")
    if target and not _pip(sb, venv, target)[0]:
        plain = ["-e", "/repo"] if spec.backend == "bwrap" else [target[-1].split("[")[0]]
        ok, out = _pip(sb, venv, plain)
        if not ok:
            raise RepogymError(
                f"environment build failed: pip cannot install the project itself: {_tail(out, 6)}; "
                f"tried {' '.join(target)} with {len(spec.test_deps)} test dependencies "
                "(fix the build, or pass --test-command with a suite that needs no install)"
            )
        spec.notes.append(f"extras {','.join(spec.project_extras)} could not be installed; the project was")
    for dep in spec.test_deps:
        _install_one(spec, sb, venv, dep)


def _install_one(spec: EnvSpec, sb: Sandbox, venv: Path, dep: str) -> None:
    """One dependency; a pin that cannot be met is retried without its version."""
    if _pip(sb, venv, [dep])[0]:
        return
    name = dep.split(";")[0]
    for ch in "<>=!~[ @":
        name = name.split(ch)[0]
    if name and name != dep and _pip(sb, venv, [name])[0]:
        spec.notes.append(f"{dep}: not installable here; installed {name} (any version)")
        return
    if name == "pytest":
        raise RepogymError("environment build failed: pip cannot install pytest; pass --test-command")
    spec.notes.append(f"{dep}: could not be installed (left out)")


def _tail(text: str, n: int) -> str:
    return " | ".join(text.strip().splitlines()[-n:])


def _install_missing_imports(spec: EnvSpec, sb: Sandbox, copy: Path, venv: Path, say: Callable[[str], None]) -> None:
    """Imports in test files and conftest.py that the environment cannot resolve, installed by distribution."""
    config = pytest_config.read(copy)
    patterns = (config.python_files or pytest_config.DEFAULT_PYTHON_FILES) + pytest_config.EXTRA_TEST_FILES
    names = imports.test_imports(copy, pytest_config.test_files(copy, patterns, config.testpaths))
    if not names:
        return
    r = sb.exec([f"{venv}/bin/python", "-c", _FIND_SPEC, *names], timeout_s=120)
    try:
        missing = json.loads(r.stdout.strip().splitlines()[-1]) if r.ok else []
    except (ValueError, IndexError):
        missing = []
    for name in missing:
        dist = imports.distribution(name)
        ok = _pip(sb, venv, [dist])[0]
        spec.notes.append(f"tests import {name}: " + (f"installed {dist}" if ok else f"{dist} not installable"))
        if ok:
            spec.test_deps.append(dist)
            say(f"tests import {name}: installed {dist}")


def _keep_generated(repo_dir: Path, copy: Path, venv: Path) -> list[str]:
    """Files the build wrote into the source that git ignores (a version file): kept in the venv."""
    before = {p.relative_to(repo_dir).as_posix() for p in repo_dir.rglob("*") if ".git" not in p.parts}
    new = sorted(
        rel
        for p in copy.rglob("*")
        if p.is_file()
        and (rel := p.relative_to(copy).as_posix()) not in before
        and not any(part.endswith(_BUILD_LITTER) for part in p.relative_to(copy).parts)
    )
    if not new:
        return []
    ignored = git(["check-ignore", "--no-index", "--stdin"], cwd=repo_dir, stdin="\n".join(new), check=False)
    kept = sorted(set(ignored.split()) & set(new))
    for rel in kept:
        (venv / OVERLAY / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(copy / rel, venv / OVERLAY / rel)
    return kept


def place_overlay(spec: EnvSpec, wc: Path) -> None:
    """Copy the generated files into a working copy (never over a file that is there)."""
    if not spec.venv:
        return
    for rel in spec.overlay:
        src, dest = Path(spec.venv) / OVERLAY / rel, Path(wc) / rel
        if src.is_file() and not dest.exists() and dest.parent.is_dir():
            shutil.copy2(src, dest)
