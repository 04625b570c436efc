"""Shared fixtures: copies of the example project as real git repositories."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "scheme_interpreter"


def git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    import os

    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **env}
    ).stdout


def make_git_repo(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.egg-info"))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "base")
    return dest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session gets its own repogym cache, except the shared venv cache (slow to build)."""
    monkeypatch.setenv("REPOGYM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def scheme_copy(tmp_path: Path) -> Path:
    """A plain copy of the example project (no git)."""
    dest = tmp_path / "scheme_interpreter"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.egg-info"))
    return dest


@pytest.fixture
def scheme_repo(tmp_path: Path) -> Path:
    """The example project as a git repository with one commit."""
    return make_git_repo(EXAMPLE, tmp_path / "scheme_interpreter")


def run_cli(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 600):
    """Run the real `repogym` command in a subprocess, as a user would."""
    import os
    import sys

    return subprocess.run(
        [sys.executable, "-m", "repogym", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


BASE_IMAGE = "localhost/repogym-base:bookworm"


def podman_ready() -> str | None:
    """None when rootful podman can run containers here, else the reason it cannot."""
    import shutil as sh

    if sh.which("podman") is None:
        return "podman is not installed (apt-get install podman)"
    p = subprocess.run(["podman", "info"], capture_output=True, text=True)
    return None if p.returncode == 0 else f"podman does not work here: {p.stderr.strip()[-200:]}"


@pytest.fixture(scope="session")
def base_image() -> str:
    """The repogym Debian base image, built once per machine (debootstrap) if missing."""
    reason = podman_ready()
    if reason:
        pytest.skip(reason)
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE]).returncode != 0:
        from repogym.sandbox.images import build_base_image

        build_base_image("podman", BASE_IMAGE)
    return BASE_IMAGE


RUN_API = os.environ.get("REPOGYM_ATROPOS_RUN_API") or str(ROOT / ".venv-atropos" / "bin" / "run-api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def trajectory_api():
    if not Path(RUN_API).exists():
        pytest.skip(f"atroposlib's run-api not found at {RUN_API} (make rl-deps)")
    port = _free_port()
    proc = subprocess.Popen(
        [RUN_API, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/status", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    proc.kill()
    proc.wait()


def agent_binary(env_var: str, name: str, local: Path | None = None) -> str | None:
    """An external agent's executable: $env_var, then a project-local install, then PATH."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    if local is not None and local.exists():
        return str(local)
    return shutil.which(name)


def run_workflow_with_model(repo: Path, state: Path, api_base: str, candidates: int, *extra: str):
    """`repogym workflow` with feature-removal synthesis against a (scripted) model server."""
    return run_cli(
        "workflow",
        str(repo),
        "scheme/*.py",
        "--state-dir",
        str(state),
        "--model",
        "openai/boa",
        "--api-base",
        api_base,
        "--num-candidates",
        str(candidates),
        *extra,
    )
