"""pytest's configuration, read the way pytest reads it: the first file that holds a pytest section wins.

pytest looks in the rootdir for, in order: pytest.toml, .pytest.toml, pytest.ini, .pytest.ini (these count even
when empty), pyproject.toml ([tool.pytest] or [tool.pytest.ini_options]), tox.ini ([pytest]) and setup.cfg
([tool:pytest]).
"""

from __future__ import annotations

import configparser
import fnmatch
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PYTHON_FILES = ["test_*.py", "*_test.py"]
# Names of test modules that pytest's defaults miss but people use.
EXTRA_TEST_FILES = ["test.py", "tests.py", "*_tests.py"]
TEST_DIRS = ("test", "tests", "testing")
SKIP_DIRS = {"node_modules", ".venv", "venv", ".tox", ".nox", "build", "dist", "site-packages", ".git"}


@dataclass
class PytestConfig:
    """The options of one configuration file that decide what runs and which plugins are needed."""

    path: str = ""
    addopts: list[str] = field(default_factory=list)
    testpaths: list[str] = field(default_factory=list)
    python_files: list[str] = field(default_factory=list)
    required_plugins: list[str] = field(default_factory=list)

    def plugins_in_addopts(self) -> list[str]:
        """Module names given with ``-p NAME`` / ``-pNAME`` (``no:`` disables, so it needs nothing)."""
        out: list[str] = []
        for i, opt in enumerate(self.addopts):
            name = self.addopts[i + 1] if opt == "-p" and i + 1 < len(self.addopts) else ""
            name = opt[2:] if opt.startswith("-p") and len(opt) > 2 else name
            if name and not name.startswith("no:"):
                out.append(name)
        return out


def read(repo_dir: Path) -> PytestConfig:
    """The configuration pytest would use when run from ``repo_dir`` (an empty one when there is none)."""
    for name in ("pytest.toml", ".pytest.toml"):
        if (repo_dir / name).is_file():
            return _config(name, _toml(repo_dir / name).get("pytest", {}))
    for name in ("pytest.ini", ".pytest.ini"):
        if (repo_dir / name).is_file():
            return _config(name, _ini_section(repo_dir / name, "pytest"))
    tool = _toml(repo_dir / "pyproject.toml").get("tool", {}).get("pytest")
    if isinstance(tool, dict):
        ini = tool.get("ini_options")
        return _config("pyproject.toml", ini if isinstance(ini, dict) else tool)
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        values = _ini_section(repo_dir / name, section)
        if values is not None:
            return _config(name, values)
    return PytestConfig()


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text()) if path.is_file() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def _ini_section(path: Path, section: str) -> dict[str, str] | None:
    """The section's values, {} for pytest.ini without the section, None when the file or section is absent."""
    if not path.is_file():
        return None
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read(path)
    except (configparser.Error, UnicodeDecodeError):
        return {} if path.name.endswith("pytest.ini") else None
    if cfg.has_section(section):
        return dict(cfg.items(section))
    return {} if path.name.endswith("pytest.ini") else None


def _words(value: Any, shell: bool) -> list[str]:
    """A list option: a TOML list, or an ini string (shell words for addopts, whitespace otherwise)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value or "")
    try:
        return shlex.split(text) if shell else text.split()
    except ValueError:
        return text.split()


def _config(path: str, values: dict[str, Any] | None) -> PytestConfig:
    values = values or {}
    return PytestConfig(
        path=path,
        addopts=_words(values.get("addopts"), shell=True),
        testpaths=_words(values.get("testpaths"), shell=False),
        python_files=_words(values.get("python_files"), shell=False),
        required_plugins=_words(values.get("required_plugins"), shell=False),
    )


def test_files(repo_dir: Path, patterns: list[str], testpaths: list[str] | None = None) -> list[str]:
    """Python files under ``testpaths`` (the whole repository by default) whose names match ``patterns``,
    plus every conftest.py."""
    roots = [repo_dir / t for t in testpaths or []] or [repo_dir]
    out: set[str] = set()
    for root in (r for r in roots if r.exists()):
        for p in [root] if root.is_file() else root.rglob("*.py"):
            rel = p.relative_to(repo_dir)
            if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
                continue
            if p.name == "conftest.py" or any(fnmatch.fnmatch(p.name, pat) for pat in patterns):
                out.add(rel.as_posix())
    return sorted(out)


def is_test_path(rel: str) -> bool:
    """Whether a repository path is test code: a test module, a conftest.py, or anything in a test folder."""
    parts = rel.split("/")
    name = parts[-1]
    return (
        name.startswith("test_")
        or name.endswith(("_test.py", "_tests.py"))
        or name in ("test.py", "tests.py", "conftest.py")
        or any(p in TEST_DIRS for p in parts[:-1])
    )
