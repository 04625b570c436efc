"""One conformance suite, run on every sandbox backend."""

from __future__ import annotations

import http.server
import os
import resource
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from repogym.errors import RepogymError, SandboxError
from repogym.sandbox import Sandbox, open_sandbox
from repogym.sandbox.bwrap import bwrap_available

# "+session": one long-lived sandbox serves every command (the same contract, at a subprocess's cost).
BACKENDS = ["bwrap", "process", "podman", "docker", "bwrap+session", "podman+session"]


def _working_docker() -> tuple[str | None, str]:
    """(directory of the first `docker` on PATH whose engine answers, or None; why none does). A `docker` that is
    only a client (no daemon) is passed over: Docker Engine, or podman's Docker-compatible CLI (podman-docker)."""
    found = [str(Path(d) / "docker") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    found = [f for f in dict.fromkeys(found) if os.access(f, os.X_OK)]
    for binary in found:
        if subprocess.run([binary, "info"], capture_output=True, timeout=60).returncode == 0:
            return str(Path(binary).parent), ""
    if not found:
        return None, "docker is not installed (Docker Engine, or apt-get install podman-docker)"
    return None, f"no docker on PATH has a working engine ({', '.join(found)}): start one or install podman-docker"


@pytest.fixture
def docker_image(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """The base image for the docker backend, with a working `docker` first on PATH; skips with the reason."""
    where, why = _working_docker()
    if where is None:
        pytest.skip(why)
    monkeypatch.setenv("PATH", f"{where}{os.pathsep}{os.environ['PATH']}")
    image = str(request.getfixturevalue("base_image"))
    if subprocess.run(["docker", "inspect", image], capture_output=True).returncode != 0:
        pytest.skip(f"docker's engine does not have {image} (it is built with podman: use podman-docker)")
    return image


@pytest.fixture(params=BACKENDS)
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sandbox]:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "hello.txt").write_text("hello\n")
    backend, _, session = request.param.partition("+")
    image = None
    if backend == "bwrap" and not bwrap_available():
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    if backend == "podman":
        image = request.getfixturevalue("base_image")
    if backend == "docker":
        image = request.getfixturevalue("docker_image")
    with pytest.warns(UserWarning) if backend == "process" else _nothing():
        sb = open_sandbox(backend, repo, image=image, session=bool(session))
    with sb:
        yield sb


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def test_exit_code_and_streams(sandbox: Sandbox) -> None:
    r = sandbox.exec("cat hello.txt; echo oops >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (3, "hello\n", "oops\n", False)


def test_argv_and_cwd(sandbox: Sandbox) -> None:
    sandbox.write_file("sub/dir/a.txt", "A")
    r = sandbox.exec(["cat", "a.txt"], cwd=f"{_repo(sandbox)}/sub/dir")
    assert r.stdout == "A"


def test_read_write_files_shared_with_commands(sandbox: Sandbox) -> None:
    sandbox.exec("printf 'from inside' > made.txt")
    assert sandbox.read_file("/repo/made.txt") == "from inside"
    sandbox.write_file("/repo/in.txt", "from outside")
    assert sandbox.exec("cat in.txt").stdout == "from outside"
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("missing.txt")
    with pytest.raises(SandboxError):
        sandbox.read_file("/etc/passwd")


def test_private_tmp_persists_between_commands(sandbox: Sandbox) -> None:
    name = f"repogym-probe-{uuid.uuid4().hex}"
    sandbox.exec(f'echo kept > "$TMPDIR/{name}"')
    assert sandbox.exec(f'cat "$TMPDIR/{name}"').stdout == "kept\n"
    if sandbox.isolated:
        assert not Path(f"/tmp/{name}").exists(), "the sandbox's /tmp is not the host's"


def test_timeout_kills_grandchildren(sandbox: Sandbox) -> None:
    marker = f"{1000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000}"
    r = sandbox.exec(f"(sh -c 'sleep {marker}' &) ; sleep {marker}", timeout_s=1.5)
    assert r.timed_out and r.exit_code is None
    assert 1.4 < r.seconds < 30
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.stdout == "", "no process survives the timeout"


def test_output_cap_keeps_memory_flat(sandbox: Sandbox) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = sandbox.exec("head -c 60000000 /dev/zero | tr '\\0' y", max_output_bytes=1_000_000)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.exit_code == 0 and r.truncated
    assert r.stdout.startswith("y" * 1_000_000) and "output truncated at 1000000 bytes" in r.stdout
    assert len(r.stdout) < 1_000_200
    assert (after - before) < 30_000, "60 MB of output must not be held in memory (ru_maxrss is in KiB)"


def test_network_is_off_when_isolated(sandbox: Sandbox) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        probe = f"python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=5)\""
        r = sandbox.exec(probe, timeout_s=30)
    finally:
        server.shutdown()
    if sandbox.isolated:
        assert r.exit_code != 0 and ("refused" in r.stderr or "unreachable" in r.stderr), r.stderr
    else:
        assert r.exit_code == 0, "the process backend has the host's network (the probe itself works)"


def test_writes_outside_repo_do_not_reach_host(sandbox: Sandbox) -> None:
    if not sandbox.isolated:
        pytest.skip("the process backend is not isolated by design")
    target = Path("/root") / f"repogym-escape-{uuid.uuid4().hex}"
    r = sandbox.exec(f"echo x > {target}; echo y > /usr/repogym-escape; true")
    assert r.exit_code == 0
    assert not target.exists() and not Path("/usr/repogym-escape").exists()


def test_closed_sandbox_refuses(sandbox: Sandbox) -> None:
    sandbox.close()
    with pytest.raises(SandboxError, match="closed"):
        sandbox.exec("true")


def test_unknown_backend_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(RepogymError, match="choose one of: bwrap, podman, docker, process"):
        open_sandbox("lxc", tmp_path)


def test_missing_image_says_how_to_build(tmp_path: Path) -> None:
    if os.system("podman --version >/dev/null 2>&1") != 0:
        pytest.skip("podman is not installed")
    with pytest.raises(SandboxError, match="repogym env build REPO --backend podman --dockerfile"):
        open_sandbox("podman", tmp_path, image="localhost/no-such-image:1")


def _repo(sb: Sandbox) -> str:
    return str(sb.repo_dir) if not sb.isolated else "/repo"
