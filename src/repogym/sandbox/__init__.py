"""Sandboxes: one contract (base.Sandbox), several backends, chosen by name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from repogym.errors import RepogymError
from repogym.sandbox.base import ExecResult, Sandbox
from repogym.sandbox.bwrap import BwrapSandbox, bwrap_available
from repogym.sandbox.limits import Limits
from repogym.sandbox.podman import DockerSandbox, PodmanSandbox
from repogym.sandbox.process import ProcessSandbox

BACKENDS = ("bwrap", "podman", "docker", "process")

__all__ = ["BACKENDS", "ExecResult", "Limits", "Sandbox", "default_backend", "open_sandbox"]


def default_backend() -> str:
    """bwrap where bubblewrap exists; otherwise an error (isolation is never silently dropped)."""
    if bwrap_available():
        return "bwrap"
    raise RepogymError(
        "bubblewrap is not installed: run `apt-get install bubblewrap`, or choose --backend podman, or "
        "--backend process (no isolation)"
    )


def open_sandbox(
    backend: str,
    repo_dir: Path,
    *,
    image: str | None = None,
    env: Mapping[str, str] | None = None,
    network: bool = False,
    ro_binds: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    session: bool = False,
) -> Sandbox:
    """Create a sandbox of the named backend over ``repo_dir``; ``session`` keeps one sandbox alive for every
    command (bwrap, podman, docker) instead of starting one per command."""
    if backend == "bwrap":
        return BwrapSandbox(repo_dir, env=env, network=network, ro_binds=ro_binds, limits=limits, session=session)
    if backend in ("podman", "docker"):
        if not image:
            raise RepogymError(f"the {backend} backend needs an image (--image NAME)")
        cls = PodmanSandbox if backend == "podman" else DockerSandbox
        return cls(repo_dir, image=image, env=env, limits=limits, session=session)
    if backend == "process":
        import warnings

        warnings.warn("the process backend runs commands on the host with no isolation", stacklevel=2)
        return ProcessSandbox(repo_dir, env=env, limits=limits)
    raise RepogymError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
