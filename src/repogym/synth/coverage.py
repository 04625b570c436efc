"""Which lines each test executes: one instrumented run of the suite at the base, stored with the environment.

The map aims synthesis (only lines some test executes are changed, preferably lines few tests run) and lets
validation run only the tests that execute a candidate's changed lines. A line-trace hook (the standard
library's ``sys.settrace``; no plugin in the project's environment) records, per test, the lines of the
project's own files run while that test's setup, call and teardown run; lines run outside any test (imports,
collection, class bodies, module bodies) are import-time lines, whose change can reach every test, except a
function's header (decorators and signature), whose change reaches the tests that call the function.

A test that starts a Python process (a CLI test) has that process traced too: the probe puts a
``sitecustomize`` on PYTHONPATH that traces any interpreter started while a test runs and reports its lines, at
exit, for that test. Some tests still run code the tracer cannot see, or different code each time: those that
started a process that reported nothing (not Python, isolated with ``-I``, killed, given an environment of its
own) and property-based ones (hypothesis: what a run draws and whether it meets a deadline can change with the
code and the machine's load). They are opaque, and validation runs them with every candidate.
"""

from __future__ import annotations

import ast
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from repogym.environment import EnvSpec, open_env_sandbox
from repogym.progress import stage
from repogym.repo import RepoSource, cache_dir, temp_working_copy

FORMAT = 5  # in the cache file's name: a new probe records the map anew
TRACE_SLOWDOWN = 30  # how many base runs the traced run may take

# Which files' lines count: the project's own, not its tests, conftests or installed packages.
_KEEP = r"""
def keep(filename):
    hit = wanted.get(filename)
    if hit is None:
        name = os.path.basename(filename)
        hit = wanted[filename] = (filename.startswith(root) and "site-packages" not in filename
                                  and not name.startswith("test_") and not name.endswith("_test.py")
                                  and name != "conftest.py")
    return hit
"""

# Traces a Python process that a test started (imported by the sitecustomize the probe puts on PYTHONPATH): its
# lines are reported, at exit, for the test that was running.
_CHILD = (
    r"""
import atexit, json, os, sys, threading

root, test = os.environ["REPOGYM_TRACE_ROOT"], os.environ["REPOGYM_TRACE_TEST"]
cwd, hits, wanted, spawned = os.getcwd(), set(), {}, [0]
SPAWNS = {"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.fork", "os.forkpty", "os.spawn"}

def audit(event, args):
    if event in SPAWNS:
        spawned[0] += 1
"""
    + _KEEP
    + r"""
def absolute(filename):
    return filename if os.path.isabs(filename) else os.path.join(cwd, filename)

def local(frame, event, arg):
    if event == "line":
        hits.add((absolute(frame.f_code.co_filename), frame.f_lineno))
    return local

def trace(frame, event, arg):
    return local if keep(absolute(frame.f_code.co_filename)) else None

def report():
    sys.settrace(None)
    try:
        path = os.path.join(os.environ["REPOGYM_TRACE_REPORTS"], f"{test}-{os.getpid()}.json")
        with open(path, "w") as f:
            json.dump([int(test), sorted(hits), spawned[0]], f)
    except Exception:
        pass

atexit.register(report)
sys.addaudithook(audit)
threading.settrace(trace)
sys.settrace(trace)
"""
)

_SITECUSTOMIZE = 'import os\nif os.environ.get("REPOGYM_TRACE_TEST"):\n    import repogym_trace_child\n'

_PROBE = (
    r"""
import json, os, sys, tempfile, threading, time
import pytest

root = os.getcwd() + os.sep
tests, per_test, seconds, at_import, spawns, hypothesis = [], [], [], set(), [], []
current = [None]
spawned = [0]
wanted = {}
SPAWNS = {"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.fork", "os.forkpty", "os.spawn"}

site, reports = tempfile.mkdtemp(), tempfile.mkdtemp()
with open(os.path.join(site, "sitecustomize.py"), "w") as f:
    f.write(os.environ.pop("REPOGYM_SITECUSTOMIZE"))
with open(os.path.join(site, "repogym_trace_child.py"), "w") as f:
    f.write(os.environ.pop("REPOGYM_TRACE_CHILD"))
os.environ["PYTHONPATH"] = os.pathsep.join([site, *filter(None, [os.environ.get("PYTHONPATH")])])
os.environ.update(REPOGYM_TRACE_ROOT=root, REPOGYM_TRACE_REPORTS=reports)

def audit(event, args):
    if event in SPAWNS and current[0] is not None:
        spawned[0] += 1
"""
    + _KEEP
    + r"""
def local(frame, event, arg):
    if event == "line":
        hits = current[0]
        if hits is None or not frame.f_code.co_flags & 1:  # no test running, or a module or class body
            at_import.add((frame.f_code.co_filename, frame.f_lineno))
        else:
            hits.add((frame.f_code.co_filename, frame.f_lineno))
    return local

def trace(frame, event, arg):
    return local if keep(frame.f_code.co_filename) else None

class PerTest:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        current[0], spawned[0] = set(), 0
        os.environ["REPOGYM_TRACE_TEST"] = str(len(tests))
        start = time.perf_counter()
        yield
        os.environ.pop("REPOGYM_TRACE_TEST", None)
        seconds.append(round(time.perf_counter() - start, 4))
        function = getattr(item, "obj", None)
        hypothesis.append(getattr(function, "is_hypothesis_test", False) or hasattr(function, "hypothesis"))
        spawns.append(spawned[0])
        tests.append(item.nodeid)
        per_test.append(current[0])
        current[0] = None

sys.addaudithook(audit)
threading.settrace(trace)
sys.settrace(trace)
try:
    code = pytest.main(["-q", "-p", "no:cacheprovider", *json.loads(os.environ["REPOGYM_PYTEST_ARGS"])],
                       plugins=[PerTest()])
finally:
    sys.settrace(None)
    threading.settrace(None)
    reported = [0] * len(tests)
    for name in os.listdir(reports):
        try:
            with open(os.path.join(reports, name)) as f:
                i, pairs, more = json.load(f)
        except Exception:
            continue
        if 0 <= i < len(tests):
            reported[i] += 1
            spawns[i] += more  # what the reporting process started in turn must report too
            per_test[i].update((filename, line) for filename, line in pairs if keep(filename))
    # opaque: a process started during the test ran unseen (not Python, isolated, killed, os._exit), or its draws
    # are hypothesis's
    opaque = [i for i in range(len(tests)) if hypothesis[i] or spawns[i] > reported[i]]
    sets, index, lines = [], {}, {}
    by_line = {}
    for i, hits in enumerate(per_test):
        for key in hits:
            by_line.setdefault(key, []).append(i)
    for (filename, line), ids in by_line.items():
        key = tuple(ids)
        if key not in index:
            index[key] = len(sets)
            sets.append(ids)
        lines.setdefault(filename[len(root):], {})[line] = index[key]
    imports = {}
    for filename, line in at_import:
        imports.setdefault(filename[len(root):], []).append(line)
    with open(os.environ["REPOGYM_COVERAGE"], "w") as f:
        json.dump({"tests": tests, "seconds": seconds, "sets": sets, "lines": lines, "import_lines": imports,
                   "opaque": opaque}, f)
sys.exit(int(code))
"""
)


@dataclass
class CoverageMap:
    """Per-test line coverage of a repository at its base commit; test ids are pytest node ids."""

    tests: list[str]
    seconds: list[float] = field(default_factory=list)  # each test's duration, traced (slower than a plain run)
    sets: list[list[int]] = field(default_factory=list)  # distinct sets of test indices
    lines: dict[str, dict[int, int]] = field(default_factory=dict)  # file -> line -> index into sets
    import_lines: dict[str, set[int]] = field(default_factory=dict)  # run outside any test, or in a class/module body
    opaque: list[int] = field(default_factory=list)  # tests whose lines the tracer cannot know (see above)

    @classmethod
    def from_json(cls, text: str) -> CoverageMap:
        data = json.loads(text)
        return cls(
            tests=list(data["tests"]),
            seconds=[float(x) for x in data.get("seconds", [])],
            sets=[list(s) for s in data["sets"]],
            lines={f: {int(n): int(i) for n, i in by.items()} for f, by in data["lines"].items()},
            import_lines={f: {int(n) for n in ns} for f, ns in data.get("import_lines", {}).items()},
            opaque=[int(i) for i in data.get("opaque", [])],
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "tests": self.tests,
                "seconds": self.seconds,
                "sets": self.sets,
                "lines": self.lines,
                "import_lines": {f: sorted(ns) for f, ns in self.import_lines.items()},
                "opaque": self.opaque,
            }
        )

    def covered(self, path: str) -> set[int]:
        """Lines of ``path`` that at least one test executes."""
        return set(self.lines.get(path, {}))

    def covering(self, lines: dict[str, list[int]]) -> list[str]:
        """Node ids of the tests that execute any of ``lines`` (file -> line numbers), in suite order."""
        idx: set[int] = set()
        for path, numbers in lines.items():
            by_line = self.lines.get(path, {})
            for n in numbers:
                if n in by_line:
                    idx.update(self.sets[by_line[n]])
        return [self.tests[i] for i in sorted(idx)]

    def selection(self, lines: dict[str, list[int]]) -> list[str]:
        """The tests whose outcome a change of ``lines`` may alter: those that execute them, and the opaque ones."""
        covering, opaque = set(self.covering(lines)), set(self.opaque)
        return [t for i, t in enumerate(self.tests) if t in covering or i in opaque]

    def seconds_of(self, tests: list[str]) -> float:
        """How long ``tests`` took in the traced run (an upper bound of a plain run)."""
        wanted = set(tests)
        return sum(s for t, s in zip(self.tests, self.seconds, strict=False) if t in wanted)

    def traced_seconds(self) -> float:
        """How long the whole suite's tests took traced: against a plain run's time, the tracer's slowdown."""
        return sum(self.seconds)

    def at_import(self, lines: dict[str, list[int]]) -> bool:
        """Whether any of ``lines`` runs outside a test (at import, in a class or module body): a change there
        can reach tests that never execute it."""
        return any(set(numbers) & self.import_lines.get(path, set()) for path, numbers in lines.items())

    def through_calls(self, lines: dict[str, list[int]], sources: dict[str, str | None]) -> dict[str, list[int]] | None:
        """``lines`` (of the ``sources`` they number) with each import-time line of a function's header (its
        decorators and signature: run once, at import, to make the function) replaced by the function's body:
        a change there (a default, a decorator, the function removed) reaches the tests that call it, which run
        its body. None when an import-time line is anything else (a module or class statement), or the function
        itself runs at import (a module constant made by calling it): the change can reach every test. A test
        that only looks at the function (introspection, `hasattr`) is not selected; checks 1 and 3, which run the
        whole suite, reject a task whose lists that makes wrong."""
        out: dict[str, list[int]] = {}
        for path, numbers in lines.items():
            at_import = set(numbers) & self.import_lines.get(path, set())
            text = sources.get(path)
            if at_import and text is None:
                return None
            headers = function_headers(text) if at_import and text is not None else {}
            if not at_import <= headers.keys():
                return None
            bodies = {n for line in at_import for n in headers[line]}
            if bodies & self.import_lines.get(path, set()):
                return None  # the function runs at import too (a module constant made by it): every test
            out[path] = sorted(set(numbers) - at_import | bodies)
        return out


def function_headers(text: str) -> dict[int, range]:
    """Each line of a function's header in ``text`` (decorators to the end of the signature) -> its body's
    lines; {} when the text does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    out: dict[int, range] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            body = node.body[0].lineno
            end = body - 1 if body > node.lineno else node.lineno
            for line in range(first, end + 1):
                out[line] = range(body, (node.end_lineno or body) + 1)
    return out


def probe(spec: EnvSpec, wc: Path, timeout_s: float = 900.0) -> CoverageMap | None:
    """Run the instrumented suite in working copy ``wc``; None when it cannot run (a non-pytest suite). The line
    tracer slows CPU-bound tests 10-20x: the run may take up to TRACE_SLOWDOWN base runs, however short
    ``timeout_s`` (a suite run's timeout) is."""
    if not spec.pytest:
        return None
    if spec.base is not None:
        timeout_s = max(timeout_s, TRACE_SLOWDOWN * spec.base.seconds)
    with open_env_sandbox(spec, wc) as sb:
        out = f"{sb.tmp_inside}/repogym-coverage.json"
        host = sb.host_path(out)
        host.unlink(missing_ok=True)
        cmd = f"{spec.setup_command} && " if spec.setup_command else ""
        cmd += "python3 -c " + shlex.quote(_PROBE)
        env = {
            **spec.test_env,
            "REPOGYM_COVERAGE": out,
            "REPOGYM_PYTEST_ARGS": json.dumps(spec.pytest_args),
            "REPOGYM_SITECUSTOMIZE": _SITECUSTOMIZE,
            "REPOGYM_TRACE_CHILD": _CHILD,
        }
        sb.exec(cmd, env=env, timeout_s=timeout_s, max_output_bytes=100_000)
        if not host.exists():
            return None
        found = CoverageMap.from_json(host.read_text())
    return found if found.tests and found.lines else None  # no line seen: tests ran elsewhere (xdist)


def _cache_path(spec: EnvSpec, src: RepoSource) -> Path:
    name = f"{spec.repo_name.replace('#', '__')}-{spec.backend}-{spec.key}-{src.commit_sha[:12]}-v{FORMAT}.json"
    return cache_dir() / "coverage" / name


def coverage_map(
    src: RepoSource, spec: EnvSpec, timeout_s: float = 900.0, wc: Path | None = None
) -> CoverageMap | None:
    """The coverage map of this environment at this commit: the stored one, or a new probe (stored). ``wc``: a
    working copy at the base to probe in (a fresh one otherwise)."""
    path = _cache_path(spec, src)
    if path.exists():
        return CoverageMap.from_json(path.read_text())
    with stage("coverage map (one traced run of the suite)", 1) as advance:
        if wc is not None:
            found = probe(spec, wc, timeout_s)
        else:
            with temp_working_copy(src) as fresh:
                found = probe(spec, fresh, timeout_s)
        advance(f"{len(found.tests)} tests" if found else "unavailable")
    if found is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(found.to_json())
        tmp.replace(path)
    return found
