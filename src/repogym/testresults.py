"""Per-test outcomes from JUnit XML (pytest, go-junit-report, cargo2junit, jest-junit, Maven Surefire).

A suite that writes no JUnit XML falls back to its exit code, and the result says so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

Outcome = Literal["passed", "failed", "error", "skipped"]
DOC_SUFFIXES = (".md", ".rst", ".txt")  # text files of doctests (pytest --doctest-glob)
_RANK: dict[str, int] = {"skipped": 0, "passed": 1, "failed": 2, "error": 3}


@dataclass
class TestRun:
    """One run of a test suite: per-test outcomes, or only an exit code when there was no JUnit XML."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    source: Literal["junit", "exit-code"] = "junit"
    exit_code: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    output: str = ""
    note: str = ""
    collection_errors: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)  # failed test id -> what the runner reported

    __test__ = False  # not a pytest test class

    def ids(self, *states: Outcome) -> list[str]:
        return sorted(t for t, o in self.outcomes.items() if o in states)

    @property
    def passed(self) -> list[str]:
        return self.ids("passed")

    @property
    def failed(self) -> list[str]:
        """Failed or errored tests."""
        return self.ids("failed", "error")

    @property
    def all_passed(self) -> bool:
        """Every test that ran passed (skips aside), at least one ran, and the suite did not time out."""
        if self.timed_out:
            return False
        if self.source == "exit-code":
            return self.exit_code == 0
        return bool(self.passed) and not self.failed

    def without(self, excluded: set[str]) -> TestRun:
        """The same run judged without ``excluded`` tests (known failures and flaky tests of the base)."""
        kept = {t: o for t, o in self.outcomes.items() if t not in excluded}
        return replace(self, outcomes=kept)

    def tail(self, lines: int = 15) -> str:
        """The last lines the runner printed: what a person reads first when a run goes wrong."""
        return "\n".join(self.output.rstrip().splitlines()[-lines:])

    def summary(self) -> dict[str, int]:
        counts = {k: 0 for k in _RANK}
        for o in self.outcomes.values():
            counts[o] += 1
        return counts


def parse_junit(xml_text: str) -> dict[str, Outcome]:
    """Map each test case to its outcome. Ids are ``classname::name`` (or ``suite::name``), stable across runs.

    A test reported twice (pytest reports a teardown error as a second case) keeps its worst outcome.
    Raises ValueError when the text is not JUnit XML.
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        raise ValueError(f"not valid XML: {e}") from e
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"not JUnit XML (root element <{root.tag}>)")
    results: dict[str, Outcome] = {}
    for suite in root.iter("testsuite"):
        for case in suite.findall("testcase"):
            tid = _case_id(case, suite.get("name", ""))
            outcome = _case_outcome(case)
            if tid not in results or _RANK[outcome] > _RANK[results[tid]]:
                results[tid] = outcome
    return results


def _case_id(case: ET.Element, suite: str) -> str:
    name = case.get("name", "")
    cls = case.get("classname") or ""
    if cls and cls != name:
        return f"{cls}::{name}"
    return f"{suite}::{name}" if suite and suite != name else name


def _case_outcome(case: ET.Element) -> Outcome:
    tags = {child.tag for child in case}
    if "error" in tags:
        return "error"
    if "failure" in tags or "rerunFailure" in tags and "flakyFailure" not in tags:
        return "failed"
    if "skipped" in tags or case.get("status") in ("skipped", "disabled", "notrun"):
        return "skipped"
    return "passed"


def _root_or_none(xml_text: str) -> ET.Element | None:
    """The XML's root, or None for text that is not XML (parse_junit, which must say why, raises instead)."""
    try:
        return ET.fromstring(xml_text)
    except ET.ParseError:
        return None


def failure_messages(xml_text: str, max_chars: int = 4000) -> dict[str, str]:
    """Failed or errored test id -> the runner's message and traceback (cut to ``max_chars``), from JUnit XML:
    what a user sees when the test fails."""
    root = _root_or_none(xml_text)
    out: dict[str, str] = {}
    for suite in root.iter("testsuite") if root is not None else ():
        for case in suite.findall("testcase"):
            for child in case:
                if child.tag in ("failure", "error"):
                    text = "\n".join(p for p in (child.get("message", ""), child.text or "") if p).strip()
                    tid = _case_id(case, suite.get("name", ""))
                    out[tid] = (out.get(tid, "") + "\n" + text).strip()[:max_chars]
    return out


def collection_errors(xml_text: str) -> dict[str, str]:
    """Modules pytest could not collect (``tests.test_x`` -> the first line of the error), from its JUnit XML.

    pytest reports each as a test case without a class whose error message is "collection failure".
    """
    root = _root_or_none(xml_text)
    out: dict[str, str] = {}
    for case in root.iter("testcase") if root is not None else ():
        error = case.find("error")
        if error is not None and error.get("message") == "collection failure" and not case.get("classname"):
            lines = [line for line in (error.text or "").splitlines() if line.strip().startswith("E ")]
            out[case.get("name", "")] = (lines[-1].strip()[1:].strip() if lines else "collection failure")[:300]
    return out


def split_test_id(test_id: str) -> tuple[str, str]:
    """(JUnit class name, function name) of an id; parameters may hold '::', spaces, brackets or slashes."""
    head = test_id.split("[", 1)[0]
    cls, _, name = head.rpartition("::")
    return cls, name


def test_location(wc: Path, test_id: str) -> tuple[str, list[str], str]:
    """(file, class path, function name) of a JUnit test id such as ``tests.test_a.TestK::test_x[1]``."""
    cls, func = split_test_id(test_id)
    if Path(func).suffix in DOC_SUFFIXES and (wc / func).is_file():
        return func, [], ""  # a text file of doctests (--doctest-glob): it moves whole
    parts = [p for p in cls.split(".") if p]
    if not parts and func:
        parts, func = func.split("."), ""  # a module-level error: the name is the module
    for k in range(len(parts), 0, -1):
        rel = "/".join(parts[:k]) + ".py"
        if (wc / rel).is_file():
            return rel, parts[k:], func
    raise ValueError(f"cannot find the file of test {test_id!r}")
