"""Repository and environment resolution for a record: one picklable object, so a Ray worker resolves its own.

Every batch stage (check, eval, export, the workflow) needs, for each record, the repository at its base commit
and the built environment. ``Resolver`` opens each once per process and reuses it; pickled to another node, it
starts with an empty memo and opens (or builds into its own cache) what that node needs. Given the environment a
driver already detected (``spec``), a worker builds exactly that one where it is missing, so every node tests
with the same environment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repogym import environment
from repogym.env_venv import COMPLETE
from repogym.environment import EnvSpec
from repogym.records import ValidatedRecord
from repogym.repo import RepoSource, open_repo, temp_working_copy
from repogym.sandbox.podman import image_exists


class Resolver:
    """(RepoSource, EnvSpec) for a record, memoized per process; thread-safe and picklable."""

    def __init__(
        self,
        backend: str,
        repo: str | None = None,
        spec: EnvSpec | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.backend, self.repo, self.spec, self.say = backend, repo, spec, say
        self._memo: dict[tuple[str, str | None, str], tuple[RepoSource, EnvSpec]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # The memo and lock are this process's; ``say`` writes to this process's terminal or log.
        return {"backend": self.backend, "repo": self.repo, "spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __call__(self, rec: ValidatedRecord) -> tuple[RepoSource, EnvSpec]:
        image = self._image(rec)
        key = (self.repo or rec.repo, rec.commit_sha, image or "")
        with self._lock:
            if key not in self._memo:
                src = open_repo(key[0], rec.commit_sha, say=self.say)
                self._memo[key] = (src, self._environment(src, image))
            return self._memo[key]

    def _image(self, rec: ValidatedRecord) -> str | None:
        # A record validated on bwrap names its virtualenv (a path) as its container: not an image.
        is_image = bool(rec.container) and not rec.container.startswith("/")
        return rec.container if self.backend in ("podman", "docker") and is_image else None

    def _environment(self, src: RepoSource, image: str | None) -> EnvSpec:
        spec = self.spec
        if spec is None or spec.repo_name != src.name:
            return environment.prepare(src, self.backend, image=image, say=self.say)
        if _present(spec):
            return spec
        with temp_working_copy(src) as wc:
            return environment.build(spec, wc, None, self.say)


def _present(spec: EnvSpec) -> bool:
    """Whether this machine already has the built environment ``spec`` names."""
    if spec.backend in ("bwrap", "process"):
        return bool(spec.venv) and (Path(str(spec.venv)) / COMPLETE).exists()
    return bool(spec.image) and image_exists(spec.backend, str(spec.image))
