"""The `procedural` strategy: LLM-free tasks from AST transforms of the functions the tests execute."""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repogym.patches import block_for_edit, render
from repogym.project.pytest_config import is_test_path
from repogym.records import TaskRecord, task_id
from repogym.repo import RepoSource
from repogym.synth.coverage import CoverageMap
from repogym.synth.transforms import FUNCTION_TRANSFORMS, Edit, changed_range, edits, first_line, functions, valid

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
    lines: tuple[int, ...] = ()  # base lines the change replaces (for a signature: the body's first line)
    covering: int | None = None  # tests that execute those lines (None: no coverage map)
    original: str = ""  # the file's text at the base
    seconds: float = 0.0  # how long those tests took in the coverage run
    named: bool = False  # one of those tests is named after the changed function

    @property
    def subject(self) -> str:
        return f"{self.edit.transform} in {self.edit.qualname} ({self.path})"

    @property
    def function(self) -> str:
        return self.edit.qualname.split("(")[0]


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


def candidates(wc: Path, files: list[str], coverage: CoverageMap | None, max_share: float = 1.0) -> Iterator[Candidate]:
    """Every parseable, distinct transform whose changed lines some test executes, but not more than
    ``max_share`` of the tests (more could fail: validation rejects such a change), and (for a function) not
    at import; every one without a map."""
    seen: set[str] = set()
    for rel in files:
        text = (wc / rel).read_text()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        bodies = _body_starts(tree)
        covered = coverage.covered(rel) if coverage is not None else None
        for edit in edits(text, compiled=False):
            lines = aim_lines(text, edit, bodies)
            if covered is not None and not set(lines) & covered:
                continue
            digest = hashlib.sha256(f"{rel}\0{edit.content}".encode()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            if coverage is None:
                yield Candidate(rel, edit, lines, None, text)
                continue
            tests = coverage.covering({rel: list(lines)})
            if len(tests) > max_share * len(coverage.tests):
                continue
            if edit.transform in FUNCTION_TRANSFORMS and coverage.at_import({rel: list(lines)}):
                continue  # the function also runs at import: a change there reaches the whole program
            named = names_function(edit.qualname.split("(")[0], tests)
            yield Candidate(rel, edit, lines, len(tests), text, coverage.seconds_of(tests), named)


def names_function(function: str, tests: list[str]) -> bool:
    """Whether a test's name (class and function) holds the function's name, a dunder method's its class's,
    without case or underscores (`test_chunked_bytes` for `chunked_bytes`): such a test checks what the function
    does, where others may only pass through it. Names under four letters match too much to tell."""
    parts = function.split(".")
    name = parts[-2] if parts[-1].startswith("__") and len(parts) > 1 else parts[-1]
    key = _bare(name)
    return len(key) >= 4 and any(key in _bare(t.split("::", 1)[-1].split("[")[0]) for t in tests)


def _bare(name: str) -> str:
    return name.replace("_", "").lower()


BLOCK_REMOVALS = ("remove_conditional", "remove_loop")


def _body_starts(tree: ast.Module) -> dict[int, int]:
    """Line of a function's signature -> line of its first statement (a default value is evaluated at import,
    but only calls of the function see it: they run the body)."""
    out: dict[int, int] = {}
    for _qual, node in functions(tree):
        for line in range(first_line(node), node.body[0].lineno):
            out[line] = node.body[0].lineno
    return out


def aim_lines(text: str, edit: Edit, bodies: dict[int, int]) -> tuple[int, ...]:
    """The base lines an edit replaces (an insertion: the lines around it); a function transform's signature
    lines stand for the function's body. Class transforms keep their own lines (they change the class at import)."""
    start, end, _ = changed_range(text, edit.content)
    lines = list(range(start + 1, end + 1)) or [start, start + 1]
    if edit.transform in BLOCK_REMOVALS and len(lines) > 1:
        lines = lines[1:]  # the header runs whenever the block is reached; the body must run for a removal to tell
    if edit.transform in FUNCTION_TRANSFORMS:
        lines = [bodies.get(n, n) for n in lines]
    return tuple(sorted(set(lines)))


def select(
    pool: list[Candidate], n: int, seed: int, avoid: set[str], total_tests: int = 0, total_seconds: float = 0.0
) -> list[Candidate]:
    """Pick up to n candidates, each the best by: lines more than one test runs (what one test runs, it often does
    not check), lines whose tests are not slow (see _slow), a function not used yet, a file under its share (twice
    an even split: no file takes the whole budget), the transform used least (every kind is represented), a test
    named after the function (it checks the function, where others may only pass through), lines few tests run (a
    change to code most tests run breaks the whole program), the file and function used least. ``total_tests``,
    ``total_seconds``: the suite's size and traced time."""
    rng = random.Random(seed)
    left = [c for c in pool if c.subject not in avoid]
    order = {id(c): rng.random() for c in left}
    used_function: Counter[tuple[str, str]] = Counter()
    used_file: Counter[str] = Counter()
    used_kind: Counter[str] = Counter()
    cap = 2 * math.ceil(n / max(1, len({c.path for c in left})))

    def key(c: Candidate) -> tuple[bool, bool, bool, bool, int, bool, int, int, int, float]:
        fn, file = used_function[(c.path, c.function)], used_file[c.path]
        kind, tier = used_kind[c.edit.transform], _tier(c.covering, total_tests)
        slow = _slow(c.seconds, total_seconds)
        return tier == WEAK, slow, fn > 0, file >= cap, kind, not c.named, tier, file, fn, order[id(c)]

    picked: list[Candidate] = []
    while left and len(picked) < n:
        best = min(left, key=key)
        left.remove(best)
        if not valid(best.edit.content, best.original):
            continue  # does not compile: checked only for the candidates picked
        picked.append(best)
        used_function[(best.path, best.function)] += 1
        used_file[best.path] += 1
        used_kind[best.edit.transform] += 1
    return picked


WEAK = 3  # the tier of lines a single test runs


def _slow(seconds: float, total: float) -> bool:
    """Whether the tests of a change take over a tenth of the suite's time (and a second): each validation of it
    is long, and a change to code that heavy tests grind through (arithmetic a search loop relies on) tends to
    make them run until the timeout, ten times as long, rather than fail."""
    return seconds > max(1.0, total / 10)


def _tier(covering: int | None, total: int) -> int:
    """0 for lines a few tests run (up to a quarter of the suite), 1 up to half, 2 beyond, WEAK for one test."""
    if covering is None or not total:
        return 0
    if covering == 1:
        return WEAK
    share = covering / total
    return 0 if share <= 0.25 else 1 if share <= 0.5 else 2


def to_record(c: Candidate, wc: Path, src: RepoSource, task_id: str, files: list[str]) -> TaskRecord:
    old = (wc / c.path).read_text()
    start, end, new_lines = changed_range(old, c.edit.content)
    block = block_for_edit(c.path, old, start, end, new_lines)
    return TaskRecord(
        task_id=task_id,
        repo=src.origin,
        commit_sha=src.commit_sha,
        matching_files=files,
        subject=c.subject,
        task_description=template_description([(c.function, c.path)]),
        patches=render([block]),
        reasoning=f"procedural transform {c.edit.transform} of {c.edit.qualname}",
        strategy=f"procedural:{c.edit.transform}",
        changed_symbols=[c.function],
        lines={c.path: list(c.lines)},
        covering_tests=c.covering,
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


def synthesize(
    src: RepoSource,
    wc: Path,
    patterns: list[str],
    *,
    num_candidates: int,
    seed: int,
    avoid: set[str],
    coverage: CoverageMap | None,
    first_index: int = 0,
    max_share: float = 0.5,
) -> list[TaskRecord]:
    """Up to ``num_candidates`` task records from working copy ``wc`` (at the base commit); ``max_share``: the
    largest share of the suite a changed line may be run by (validation's --max-fail-fraction)."""
    files = matching_files(wc, patterns)
    pool = list(candidates(wc, files, coverage, max_share))
    suite = (len(coverage.tests), coverage.traced_seconds()) if coverage else (0, 0.0)
    picked = select(pool, num_candidates, seed, avoid, *suite)
    return [to_record(c, wc, src, task_id(src.name, first_index + k), files) for k, c in enumerate(picked)]
