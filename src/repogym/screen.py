"""Screen an agent's diff before it is graded: keep the source changes, drop (and name) the changes that could
decide the grade instead of the code: the hidden tests' files, other test files, files that run before or around
the tests, package metadata that registers plugins, symbolic links, new top-level modules that could shadow the
test runner, and edits to the pytest configuration. The one policy of repogym's grading (``grading.py``) and of
each Harbor task's verifier, which gets this file in its tests/ folder: standard library only, since repogym is
not installed there.

Usage: python3 screen.py AGENT_DIFF TASK_COMMIT TESTS_DIFF > kept.diff 2> dropped.txt  (run in /repo, which
needs only the task-state commit: the agent's tree is read from the diff)
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

TEST_DIRS = {"test", "tests", "testing"}
AROUND_TESTS = {"conftest.py", "sitecustomize.py", "usercustomize.py", "pytest.ini", ".pytest.ini"}
PYTEST_SECTIONS = {"pyproject.toml": "tool.pytest", "setup.cfg": "tool:pytest", "tox.ini": "pytest"}


def files_of(patch: str) -> list[tuple[str, str]]:
    """(path on the new side, that file's part of the diff) for each file of a git diff."""
    out = []
    for part in re.split(r"(?m)^(?=diff --git )", patch):
        m = re.match(r"diff --git a/(\S+) b/(\S+)", part)
        if m:
            out.append((m.group(2), part))
    return out


def reason(path: str, part: str, hidden: set[str], old: str | None, new: str | None, top_exists: bool) -> str:
    """Why a changed file is left out ('' when kept). ``old``/``new``: its text in the task state / agent's tree."""
    p = PurePosixPath(path)
    is_test = bool(TEST_DIRS & set(p.parts[:-1])) or p.name.startswith("test_") or p.name.endswith("_test.py")
    rules = [
        (path in hidden, "a file the hidden tests add or change"),
        (p.name in AROUND_TESTS or p.suffix == ".pth", "test infrastructure (runs before or around the tests)"),
        (is_test, "a test file"),
        (any(x.endswith((".dist-info", ".egg-info", ".egg-link")) for x in p.parts), "package metadata"),
        (bool(re.search(r"(?m)^(new file mode|new mode|old mode) 120000", part)), "a symbolic link"),
        (old is None and (len(p.parts) == 1 and p.suffix == ".py" or not top_exists), "a new top-level module"),
        (p.name in PYTEST_SECTIONS and len(p.parts) == 1 and _pytest(old, p.name) != _pytest(new, p.name),
         "a change to the pytest configuration"),
    ]  # fmt: skip
    return next((why for hit, why in rules if hit), "")


def _pytest(text: str | None, name: str) -> Any:
    """The pytest section of a configuration file's text, comparable between versions (None when absent)."""
    if text is None:
        return None
    if name == "pyproject.toml":
        try:
            return tomllib.loads(text).get("tool", {}).get("pytest")
        except tomllib.TOMLDecodeError:
            return text
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read_string(text)
    except configparser.Error:
        return text
    return dict(cfg.items(PYTEST_SECTIONS[name])) if cfg.has_section(PYTEST_SECTIONS[name]) else None


def _at(commit: str, path: str) -> str | None:
    p = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True, errors="replace")
    return p.stdout if p.returncode == 0 else None


def _after(path: str, part: str, old: str | None) -> str | None:
    """The file's text after the agent's change, from the diff alone: the verifier may not see the agent's tree."""
    if PurePosixPath(path).name not in PYTEST_SECTIONS:
        return None  # only the pytest configuration files are compared by content
    with tempfile.TemporaryDirectory() as tmp:  # outside any repository, git apply works on plain files
        if old is not None:
            Path(tmp, path).parent.mkdir(parents=True, exist_ok=True)
            Path(tmp, path).write_text(old)
        p = subprocess.run(
            ["git", "apply", "--whitespace=nowarn", "-"], cwd=tmp, input=part, text=True, capture_output=True
        )
        target = Path(tmp, path)
        return target.read_text(errors="replace") if p.returncode == 0 and target.is_file() else None


def main(agent_diff: Path, commit: str, tests_diff: Path) -> None:
    hidden = {path for path, _ in files_of(tests_diff.read_text(errors="replace"))}
    for path, part in files_of(agent_diff.read_text(errors="replace")):
        old = _at(commit, path)
        top = len(PurePosixPath(path).parts) == 1 or _at(commit, PurePosixPath(path).parts[0]) is not None
        why = reason(path, part, hidden, old, _after(path, part, old), top)
        if why:
            print(f"{path}: {why}", file=sys.stderr)
        else:
            sys.stdout.write(part)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
