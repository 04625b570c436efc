"""Test dependencies found the way a person would: the project's extras and dependency groups, requirement
files in the usual places, tox's deps (factor conditions, -r includes, substitutions) and nox sessions."""

from __future__ import annotations

import ast
import configparser
import re
import sys
from pathlib import Path
from typing import Any

from repogym.project.requirements import Found, applies, read_file, read_line

TEST_GROUPS = ("test", "tests", "testing")
DEV_GROUPS = ("dev", "develop", "development")
# Requirement files a person would install for the tests; docs, lint and typing files are left alone.
_REQ_GLOBS = ("*requirements*.txt", "requirements*/*.txt", "requirements*/*.in", "*requirements*/*.txt")
_REQ_TEST = re.compile(r"(^|[-_./])(test|tests|testing|ci)([-_.]|$)")
_REQ_WANTED = re.compile(r"(^|[-_./])(dev|develop|development|base|requirements)([-_.]|$)")
_REQ_UNWANTED = re.compile(r"doc|lint|mypy|typ|format|release|publish|packag|bench")


def discover(repo_dir: Path, pyproject: dict[str, Any]) -> Found:
    """Everything the tests may need, in the order a person would look."""
    found = Found()
    _pyproject(pyproject, found)
    _setup_cfg(repo_dir / "setup.cfg", found)
    for rel in requirement_files(repo_dir):
        read_file(repo_dir / rel, found, repo_dir)
    found.merge(tox(repo_dir, pyproject))
    found.merge(nox(repo_dir))
    return found


def _pyproject(pyproject: dict[str, Any], found: Found) -> None:
    """Test extras and dependency groups; the dev ones only where there is no test one (they carry linters)."""
    optional = pyproject.get("project", {}).get("optional-dependencies", {})
    for group in _preferred(optional):
        found.add_extra(group)
        found.notes.append(f"pyproject optional-dependencies [{group}]")
    for group in _preferred(pyproject.get("dependency-groups", {})):
        _group(pyproject, group, found)


def _preferred(groups: dict[str, Any]) -> list[str]:
    tests = [g for g in TEST_GROUPS if g in groups]
    return tests or [g for g in DEV_GROUPS if g in groups]


def _group(pyproject: dict[str, Any], group: str, found: Found) -> None:
    groups = pyproject.get("dependency-groups", {})
    if group not in groups:
        return
    for dep in _flatten_group(groups, group, set()):
        if applies(dep):
            found.add_dep(dep)
    found.notes.append(f"pyproject dependency-groups [{group}]")


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


def _setup_cfg(path: Path, found: Found) -> None:
    cfg = _ini(path)
    if cfg is None or not cfg.has_section("options.extras_require"):
        return
    for group in _preferred(dict(cfg.items("options.extras_require"))):
        found.add_extra(group)
        found.notes.append(f"setup.cfg extras_require [{group}]")


def _ini(path: Path) -> configparser.ConfigParser | None:
    if not path.is_file():
        return None
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read(path)
    except (configparser.Error, UnicodeDecodeError):
        return None
    return cfg


def requirement_files(repo_dir: Path) -> list[str]:
    """Requirement files under the usual names and folders that hold what the tests need."""
    files: list[str] = []
    for pattern in _REQ_GLOBS:
        for f in sorted(repo_dir.glob(pattern)):
            rel = f.relative_to(repo_dir).as_posix()
            if rel not in files and not _REQ_UNWANTED.search(rel.lower()):
                files.append(rel)
    tests = [f for f in files if _REQ_TEST.search(f.lower())]
    plain = [f for f in files if f.rsplit("/", 1)[-1] in ("requirements.txt", "base.txt")]
    return (tests + plain) if tests else [f for f in files if _REQ_WANTED.search(f.lower())]


def python_factors() -> set[str]:
    """tox factors that the Python in use satisfies (py, py3, py311, py3.11)."""
    major, minor = sys.version_info[:2]
    return {"py", f"py{major}", f"py{major}{minor}", f"py{major}.{minor}", f"{major}.{minor}"}


def expand_braces(text: str) -> list[str]:
    """tox's generative names: ``py{310,311}-cov`` -> py310-cov, py311-cov; ``{310-312}`` is a range."""
    m = re.search(r"\{([^{}]*)\}", text)
    if not m:
        return [text]
    options: list[str] = []
    for part in m.group(1).split(","):
        rng = re.fullmatch(r"(\d+)-(\d+)", part.strip())
        options += [str(n) for n in range(int(rng[1]), int(rng[2]) + 1)] if rng else [part.strip()]
    return [x for opt in options for x in expand_braces(text[: m.start()] + opt + text[m.end() :])]


def factors_match(condition: str, factors: set[str]) -> bool:
    """A tox factor condition: alternatives joined by ',', each a '-'-joined conjunction, '!' negates."""
    for alternative in expand_braces(condition):
        for option in alternative.split(","):
            parts = [p.strip() for p in option.split("-") if p.strip()]
            if parts and all((p[1:] not in factors) if p.startswith("!") else (p in factors) for p in parts):
                return True
    return False


def tox_lines(cfg: configparser.ConfigParser, key: str, factors: set[str]) -> list[str]:
    """The lines of [testenv] ``key`` that apply to the default environment, substitutions made."""
    if not cfg.has_option("testenv", key):
        return []
    out: list[str] = []
    for raw in cfg.get("testenv", key).splitlines():
        line = _substitute(cfg, raw.split(" #", 1)[0].strip())
        m = re.match(r"^([\w{}.,!-]+):\s+(.*)$", line)
        if m:
            if not factors_match(m.group(1), factors):
                continue
            line = m.group(2).strip()
        if line and not line.startswith("#") and "{" not in line:
            out.append(line)
    return out


def _substitute(cfg: configparser.ConfigParser, line: str) -> str:
    """tox substitutions that name a place or another value; what is left in braces is dropped later."""
    line = re.sub(r"\{toxinidir\}/?|\{tox_root\}/?", "./", line)
    line = re.sub(r"\{env:[^:}]+:([^}]*)\}", r"\1", line)

    def ref(m: re.Match[str]) -> str:
        sec, key = m.group(1) or "testenv", m.group(2)
        return cfg.get(sec, key).replace("\n", " ") if cfg.has_option(sec, key) else m.group(0)

    return re.sub(r"\{\[([^\]]*)\](\w+)\}", ref, line)


def tox(repo_dir: Path, pyproject: dict[str, Any]) -> Found:
    """tox.ini [testenv]: deps, extras and dependency_groups, for the default environment of this Python."""
    found = Found()
    cfg = _ini(repo_dir / "tox.ini")
    if cfg is None or not cfg.has_section("testenv"):
        return found
    factors = python_factors()
    for line in tox_lines(cfg, "deps", factors):
        read_line(line, found, repo_dir, repo_dir, set())
    for line in tox_lines(cfg, "extras", factors):
        for extra in re.split(r"[,\s]+", line):
            found.add_extra(extra)
    for line in tox_lines(cfg, "dependency_groups", factors):
        for group in re.split(r"[,\s]+", line):
            _group(pyproject, group, found)
    found.notes.append("tox.ini [testenv]")
    return found


def nox(repo_dir: Path) -> Found:
    """Packages that noxfile.py's test sessions install (``session.install("pytest", "-r", "req.txt")``)."""
    found = Found()
    path = repo_dir / "noxfile.py"
    try:
        tree = ast.parse(path.read_text()) if path.is_file() else None
    except (SyntaxError, UnicodeDecodeError):
        tree = None
    if tree is None:
        return found
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and "test" in n.name):
        for call in (c for c in ast.walk(fn) if isinstance(c, ast.Call) and _is_install(c)):
            words = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            for line in _join_options(words):
                read_line(line, found, repo_dir, repo_dir, set())
    if found.deps or found.extras:
        found.notes.append("noxfile.py test sessions")
    return found


def _is_install(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and call.func.attr == "install"


def _join_options(words: list[str]) -> list[str]:
    """``["-r", "req.txt", "-e", ".[test]"]`` -> ["-r req.txt", "-e .[test]"]: requirement lines."""
    out: list[str] = []
    for w in words:
        if out and out[-1] in ("-r", "-e", "-c", "--requirement", "--editable"):
            out[-1] = f"{out[-1]} {w}"
        else:
            out.append(w)
    return out
