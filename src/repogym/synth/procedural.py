"""The `procedural` strategy: LLM-free tasks from AST transforms of the functions the tests execute."""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repogym.patches import block_for_edit, render
from repogym.project.pytest_config import is_test_path
from repogym.records import TaskRecord, task_id
from repogym.repo import RepoSource
from repogym.synth.transforms import Edit, edits, first_line, functions

# Folders and top-level modules that hold no importable project code.
NOT_SOURCE = {
    "docs",
    "doc",
    "examples",
    "example",
    "benchmarks",
    "benchmark",
    "scripts",
    "tools",
    "misc",
    "build",
    "dist",
    "setup",
    "conftest",
    "noxfile",
    "fabfile",
    "tasks",
    "runtests",
    "manage",
    "conf",
    "bootstrap",
    "versioneer",
    "test",
    "tests",
    "testing",
    "__pycache__",
    "site-packages",
    "node_modules",
    "venv",
}


@dataclass(frozen=True)
class Candidate:
    path: str
    edit: Edit

    @property
    def subject(self) -> str:
        return f"{self.edit.transform} in {self.edit.qualname} ({self.path})"


def matching_files(wc: Path, patterns: list[str], include_tests: bool = False) -> list[str]:
    """Python files under ``wc`` matching any glob, sorted; test files only when asked for. Without patterns:
    the project's importable source files (``source_files``)."""
    if not patterns:
        return source_files(wc)
    found: set[str] = set()
    for p in wc.rglob("*.py"):
        rel = p.relative_to(wc).as_posix()
        if rel.startswith(".") or "/." in rel or (is_test_path(rel) and not include_tests):
            continue
        if any(fnmatch.fnmatch(rel, pat) for pat in patterns):
            found.add(rel)
    return sorted(found)


def source_files(wc: Path) -> list[str]:
    """The modules a user of the project imports: packages and modules at the top or under src/ (not tests,
    docs, examples, benchmarks, scripts or setup files)."""
    found: set[str] = set()
    for root in (wc, wc / "src", wc / "lib"):
        if not root.is_dir():
            continue
        for p in root.iterdir():
            if p.is_dir() and p.name not in NOT_SOURCE and not p.name.startswith(".") and _is_package(p, root, wc):
                found |= {f.relative_to(wc).as_posix() for f in p.rglob("*.py")}
            elif p.suffix == ".py" and p.stem not in NOT_SOURCE and not p.name.startswith("."):
                found.add(p.relative_to(wc).as_posix())
    return sorted(f for f in found if not is_test_path(f) and not set(f.split("/")[:-1]) & NOT_SOURCE)


def _is_package(p: Path, root: Path, wc: Path) -> bool:
    """A regular package, or under src/ any folder (namespace packages)."""
    return (p / "__init__.py").is_file() or root != wc


def candidates(wc: Path, files: list[str], executed: set[tuple[str, int]] | None) -> Iterator[Candidate]:
    """Every parseable, distinct transform of a function the tests execute (all functions if unknown)."""
    seen: set[str] = set()
    for rel in files:
        text = (wc / rel).read_text()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        tested = _tested_names(tree, rel, executed)
        for edit in edits(text):
            if tested is not None and edit.qualname.split("(")[0] not in tested:
                continue
            digest = hashlib.sha256(f"{rel}\0{edit.content}".encode()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                yield Candidate(rel, edit)


def _tested_names(tree: ast.Module, rel: str, executed: set[tuple[str, int]] | None) -> set[str] | None:
    """Qualified names of executed functions, and of classes with an executed method."""
    if executed is None:
        return None
    names: set[str] = set()
    for qual, node in functions(tree):
        if (rel, first_line(node)) in executed or (rel, node.lineno) in executed:
            names.add(qual)
            parts = qual.split(".")
            for k in range(1, len(parts)):
                names.add(".".join(parts[:k]))
    return names


def select(pool: list[Candidate], n: int, seed: int, avoid: set[str]) -> list[Candidate]:
    """Pick up to n candidates, round-robin over transforms so that every kind is represented."""
    rng = random.Random(seed)
    by_kind: dict[str, list[Candidate]] = defaultdict(list)
    for c in pool:
        if c.subject not in avoid:
            by_kind[c.edit.transform].append(c)
    for group in by_kind.values():
        rng.shuffle(group)
    kinds = sorted(by_kind)
    rng.shuffle(kinds)
    picked: list[Candidate] = []
    while len(picked) < n and any(by_kind.values()):
        for kind in kinds:
            if by_kind[kind] and len(picked) < n:
                picked.append(by_kind[kind].pop())
    return picked


def to_record(c: Candidate, wc: Path, src: RepoSource, task_id: str, files: list[str]) -> TaskRecord:
    old = (wc / c.path).read_text()
    start, end, new_lines = _changed_range(old, c.edit.content)
    block = block_for_edit(c.path, old, start, end, new_lines)
    return TaskRecord(
        task_id=task_id,
        repo=src.origin,
        commit_sha=src.commit_sha,
        matching_files=files,
        subject=c.subject,
        task_description=template_description([(c.edit.qualname.split("(")[0], c.path)]),
        patches=render([block]),
        reasoning=f"procedural transform {c.edit.transform} of {c.edit.qualname}",
        strategy=f"procedural:{c.edit.transform}",
    )


def template_description(places: list[tuple[str, str]]) -> str:
    """What is broken, as a user of the code sees it, from (function, file) pairs; never how it was broken.
    Validation adds the tests."""
    names = [f"`{name}` in `{path}`" for name, path in places]
    if len(names) == 1:
        what = f"{names[0]} no longer behaves as its callers"
    else:
        what = ", ".join(names[:-1]) + f" and {names[-1]} no longer behave as their callers"
    return (
        f"{what} and the test suite expect. "
        "Find what is wrong and restore the expected behaviour without changing the tests."
    )


def _changed_range(old: str, new: str) -> tuple[int, int, list[str]]:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    lo = 0
    while lo < min(len(a), len(b)) and a[lo] == b[lo]:
        lo += 1
    hi = 0
    while hi < min(len(a), len(b)) - lo and a[-1 - hi] == b[-1 - hi]:
        hi += 1
    return lo, len(a) - hi, b[lo : len(b) - hi]


def synthesize(
    src: RepoSource,
    wc: Path,
    patterns: list[str],
    *,
    num_candidates: int,
    seed: int,
    avoid: set[str],
    executed: set[tuple[str, int]] | None,
    first_index: int = 0,
) -> list[TaskRecord]:
    """Up to ``num_candidates`` task records from working copy ``wc`` (at the base commit)."""
    files = matching_files(wc, patterns)
    pool = list(candidates(wc, files, executed))
    picked = select(pool, num_candidates, seed, avoid)
    return [to_record(c, wc, src, task_id(src.name, first_index + k), files) for k, c in enumerate(picked)]
