"""Versions derived from git (setuptools-scm, hatch-vcs, flit_scm, versioneer, pbr, poetry-dynamic-versioning).

The environment is built from a copy without .git, and task copies have no tags: each backend's "pretend"
variable gives it the version that ``git describe`` finds at the base commit, or a fallback.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

FALLBACK_VERSION = "0.0.0"


def vcs_backend(repo_dir: Path, pyproject: dict[str, Any]) -> str | None:
    """The name of the mechanism that takes the version from git, or None for a static version."""
    build = pyproject.get("build-system", {})
    requires = " ".join(str(r) for r in build.get("requires", [])).lower()
    tool = pyproject.get("tool", {})
    if "setuptools_scm" in tool or "setuptools-scm" in requires or "setuptools_scm" in requires:
        return "setuptools-scm"
    if "hatch-vcs" in requires or tool.get("hatch", {}).get("version", {}).get("source") == "vcs":
        return "hatch-vcs"
    for name in ("flit_scm", "flit-scm", "pbr", "versioneer", "poetry-dynamic-versioning", "setuptools-git-versioning"):
        if name in requires or name.replace("-", "_") in tool or name in tool:
            return name
    setup = _read(repo_dir / "setup.py") + _read(repo_dir / "setup.cfg")
    for needle, name in (("use_scm_version", "setuptools-scm"), ("versioneer", "versioneer"), ("pbr", "pbr")):
        if needle in setup:
            return name
    return None


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def describe(repo_dir: Path) -> str:
    """The nearest tag's version at HEAD (``v1.2.3`` -> 1.2.3), or FALLBACK_VERSION without a usable tag."""
    try:
        p = subprocess.run(
            ["git", "describe", "--tags", "--abbrev=0"], cwd=repo_dir, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return FALLBACK_VERSION
    tag = re.sub(r"^[^0-9]*", "", p.stdout.strip()) if p.returncode == 0 else ""
    try:
        return str(Version(tag)) if tag else FALLBACK_VERSION
    except InvalidVersion:
        return FALLBACK_VERSION


def pretend_env(version: str, dist_name: str | None) -> dict[str, str]:
    """The variables with which each VCS backend builds without git."""
    env = {
        "SETUPTOOLS_SCM_PRETEND_VERSION": version,
        "PBR_VERSION": version,
        "POETRY_DYNAMIC_VERSIONING_BYPASS": version,
    }
    if dist_name:
        env[f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{re.sub(r'[-_.]+', '_', dist_name).upper()}"] = version
    return env
