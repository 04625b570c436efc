"""A state dir read as one list of tasks: candidate, validation, check and eval joined by ``task_id``.

The viewer and the exports all need the same join (which candidates were validated, which passed their checks,
why the others were rejected), the same gold patch and the same difficulty, so they read it from here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repogym.errors import RepogymError
from repogym.records import read_jsonl
from repogym.repo import changed_files

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass
class TaskRow:
    """Everything known about one candidate; ``status`` is pending, rejected, validated, passed or failed."""

    task_id: str
    candidate: dict[str, Any] = field(default_factory=dict)
    validated: dict[str, Any] | None = None
    rejected: dict[str, Any] | None = None
    check: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        if self.check is not None:
            return "passed" if self.check.get("ok") else "failed"
        if self.validated is not None:
            return "validated"
        return "rejected" if self.rejected is not None else "pending"

    @property
    def strategy(self) -> str:
        return str(self.candidate.get("strategy") or (self.rejected or {}).get("strategy") or "unknown")

    @property
    def repo(self) -> str:
        return str(self.candidate.get("repo") or (self.validated or {}).get("repo") or "")

    @property
    def description(self) -> str:
        v = self.validated or {}
        return str(v.get("task_description") or self.candidate.get("task_description") or "")

    @property
    def src_diff(self) -> str:
        return str((self.validated or {}).get("src.diff", ""))

    @property
    def tests_diff(self) -> str:
        return str((self.validated or {}).get("tests.diff", ""))

    def test_lists(self) -> tuple[list[str], list[str]]:
        """(FAIL_TO_PASS, PASS_TO_PASS): the checks' lists when there are, else the validator's."""
        for rec in (self.check, self.validated):
            if rec and rec.get("FAIL_TO_PASS"):
                return list(rec["FAIL_TO_PASS"]), list(rec.get("PASS_TO_PASS") or [])
        return [], []

    @property
    def gold_patch(self) -> str:
        return gold_patch(self.src_diff, self.tests_diff)

    @property
    def difficulty(self) -> str:
        given = (self.validated or {}).get("difficulty") or self.candidate.get("difficulty")
        changes = int((self.validated or {}).get("changes") or self.candidate.get("changes") or 1)
        return str(given) if given else difficulty(self.gold_patch, changes)


@dataclass
class StateDir:
    """A workflow state dir: its rows in candidate order and its environment (env.json) when there is one."""

    path: Path
    rows: list[TaskRow]
    env: dict[str, Any]

    def checked_ok(self) -> list[TaskRow]:
        return [r for r in self.rows if r.status == "passed"]


def load_state(state_dir: Path) -> StateDir:
    """Join the state files of ``state_dir``; a missing file is an empty stage, bad lines are skipped."""
    if not state_dir.is_dir():
        raise RepogymError(f"{state_dir}: no such state directory (make one with `repogym workflow`)")
    rows: dict[str, TaskRow] = {}
    for name, attr in (
        ("tasks.jsonl", "candidate"),
        ("validated_tasks.jsonl", "validated"),
        ("rejected_tasks.jsonl", "rejected"),
        ("check_results.jsonl", "check"),
    ):
        for obj in _objects(state_dir / name):
            tid = str(obj["task_id"])
            setattr(rows.setdefault(tid, TaskRow(tid)), attr, obj)
    if not rows:
        raise RepogymError(f"{state_dir}: no task records (tasks.jsonl, validated_tasks.jsonl, ...) found")
    env_path = state_dir / "env.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    return StateDir(state_dir, list(rows.values()), env)


def _objects(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [o for _, o in read_jsonl(path) if isinstance(o, dict) and "task_id" in o]


def split_diff(patch: str) -> list[str]:
    """The per-file sections of a unified git diff, each starting with ``diff --git``."""
    parts = re.split(r"(?m)^(?=diff --git )", patch)
    return [p for p in parts if p.startswith("diff --git ")]


def gold_patch(src_diff: str, tests_diff: str) -> str:
    """reverse(src.diff) outside the files tests.diff touches, as text: what ``git apply -R --exclude`` applies."""
    skip = set(changed_files(tests_diff))
    keep = [s for s in split_diff(src_diff) if not (set(changed_files(s)) & skip)]
    return "".join(_reverse_section(s) for s in keep)


_HUNK = re.compile(r"^@@ -(\d+(?:,\d+)?) \+(\d+(?:,\d+)?) @@(.*)$")
_SWAP_HEADERS = {"new file mode": "deleted file mode", "deleted file mode": "new file mode"}


def _reverse_section(section: str) -> str:
    """One file's diff reversed: - and + lines, hunk ranges, file names and creation/deletion swapped."""
    out: list[str] = []
    header, minus = True, ""
    for line in section.splitlines(keepends=True):
        m = _HUNK.match(line.rstrip("\n"))
        header = header and not m
        if header and line.startswith("--- "):
            minus = _side(line[4:], "b/")
        elif header and line.startswith("+++ "):
            out += ["--- " + _side(line[4:], "a/"), "+++ " + minus]
        elif header and line.startswith("index "):
            a, _, rest = line[6:].partition("..")
            b, sep, mode = rest.partition(" ")
            out.append(f"index {b.strip()}..{a}{sep}{mode}" if sep else f"index {b.strip()}..{a}\n")
        elif m:
            out.append(f"@@ -{m.group(2)} +{m.group(1)} @@{m.group(3)}\n")
        else:
            out.append(_swap_line(line) if not header or "file mode" in line else line)
    return "".join(out)


def _side(name: str, prefix: str) -> str:
    """A file name of the other side of the diff: ``a/x`` and ``b/x`` trade prefixes, /dev/null stays."""
    return name if name.startswith("/dev/null") else prefix + name[2:]


def _swap_line(line: str) -> str:
    for old, new in _SWAP_HEADERS.items():
        if line.startswith(old):
            return new + line[len(old) :]
    if line.startswith("+"):
        return "-" + line[1:]
    if line.startswith("-"):
        return "+" + line[1:]
    return line


LEVELS = ("easy", "medium", "hard")


def difficulty(gold: str, changes: int = 1) -> str:
    """easy / medium / hard by the size of the fix (lines the gold patch changes, files it touches), one level up
    for each separate change beyond the first (a combined task: the bugs must all be found)."""
    changed = sum(1 for line in gold.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---")))
    files = len(split_diff(gold))
    size = 0 if changed <= 4 and files <= 1 else 1 if changed <= 20 and files <= 2 else 2
    return LEVELS[min(2, size + max(0, changes - 1))]


def rejection_kind(reason: str) -> str:
    """A rejection reason without its numbers and details, so reasons can be counted: '78 of 96 tests fail'."""
    head = reason.split(":", 1)[0].strip()
    return re.sub(r"\d+", "N", head) or "unknown"


def summarize(state: StateDir) -> dict[str, Any]:
    """Per-strategy counts (candidates, validated, checked, passed), yield, and rejection kinds counted."""
    by: dict[str, Counter[str]] = {}
    for r in state.rows:
        c = by.setdefault(r.strategy, Counter())
        c["candidates"] += 1
        c["validated"] += r.validated is not None
        c["checked"] += r.check is not None
        c["passed"] += r.status == "passed"
    total = sum(by.values(), Counter())
    kinds = Counter(rejection_kind(str(r.rejected.get("reason", ""))) for r in state.rows if r.rejected)
    failed = [r.check for r in state.rows if r.check and not r.check.get("ok")]
    kinds.update(f"check: {rejection_kind(str(c.get('reason', '')))}" for c in failed)
    return {
        "by_strategy": {k: dict(v) for k, v in sorted(by.items())},
        "total": dict(total),
        "yield": round(total["passed"] / total["candidates"], 4) if total["candidates"] else 0.0,
        "rejections": dict(kinds.most_common()),
    }
