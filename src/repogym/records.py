"""Task records and crash-safe JSONL files.

Every stage reads and writes one record per task, keyed by ``task_id``. Files are append-only; a torn last line
left by a killed process is dropped and the file truncated to whole lines on the next read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repogym.errors import RepogymError

SCHEMA_VERSION = 1


class Record(BaseModel):
    """Base of all records: unknown fields are kept when a record is rewritten."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


def task_id(repo_name: str, n: int) -> str:
    """The id of a repository's n-th candidate: ``<repo name>/<n>`` (the owner of an ``owner#name`` dropped)."""
    return f"{repo_name.split('#')[-1]}/{n}"


def next_task_number(ids: Iterable[str]) -> int:
    """The number the next candidate takes after ``ids`` (resumed synthesis never reuses one)."""
    return 1 + max((int(i.rsplit("/", 1)[-1]) for i in ids if i.rsplit("/", 1)[-1].isdigit()), default=-1)


class TaskRecord(Record):
    """One synthesized task candidate (tasks.jsonl)."""

    task_id: str
    repo: str
    commit_sha: str
    matching_files: list[str] = Field(default_factory=list)
    subject: str = ""
    task_description: str = ""
    patches: str = ""
    reasoning: str = ""
    strategy: str = ""
    model: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    changed_symbols: list[str] = Field(
        default_factory=list, description="Qualified names of the functions or classes the change touches."
    )
    lines: dict[str, list[int]] = Field(
        default_factory=dict, description="File -> lines of the base version the change replaces (1-based)."
    )
    covering_tests: int | None = Field(None, description="How many tests execute the changed lines at the base.")
    changes: int = Field(1, description="Separate changes the task undoes: its difficulty.")
    members: list[str] = Field(
        default_factory=list, description="combine: the task ids of the single-change candidates it is made of."
    )
    schema_version: int = SCHEMA_VERSION


class ValidatedRecord(Record):
    """A task turned into src.diff + tests.diff (validated_tasks.jsonl), Build-A-Bench field names."""

    task_id: str
    repo: str
    container: str = ""
    src_diff: str = Field(alias="src.diff")
    tests_diff: str = Field(alias="tests.diff")
    tips: str = ""
    log: str = ""
    commit_message: str = ""
    validator: str = ""
    commit_sha: str | None = None
    task_description: str = ""
    FAIL_TO_PASS: list[str] | None = None
    PASS_TO_PASS: list[str] | None = None
    changes: int = Field(1, description="Separate changes the task undoes: its difficulty.")
    description_style: str = Field("template", description="How task_description was written: template or issue.")
    description_usage: dict[str, Any] = Field(
        default_factory=dict, description="Model and token usage of an issue-style description."
    )


class RejectedRecord(Record):
    """A candidate that validation turned down (rejected_tasks.jsonl), with the reason."""

    task_id: str
    strategy: str = ""
    reason: str
    schema_version: int = SCHEMA_VERSION


class CheckOutcome(BaseModel):
    """One of the three checks on one task."""

    name: str
    ok: bool
    exit_code: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    failed_tests: list[str] = Field(default_factory=list)
    passed_tests: list[str] = Field(default_factory=list)
    note: str = ""


class CheckRecord(Record):
    """The LLM-free checks of one task (check_results.jsonl)."""

    task_id: str
    ok: bool
    flaky: bool = False
    checks: list[CheckOutcome] = Field(default_factory=list)
    reason: str = ""
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    schema_version: int = SCHEMA_VERSION


R = TypeVar("R", bound=Record)


@dataclass
class BadLine:
    """A JSONL line that could not be read, kept so the caller can report it and go on."""

    path: Path
    line_no: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_no}: {self.message}"


def repair_torn_tail(path: Path) -> bool:
    """Truncate ``path`` to its last whole line. Returns True if a torn tail was dropped."""
    if not path.exists():
        return False
    with path.open("rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return False
        cut = data.rfind(b"\n") + 1
        f.truncate(cut)
    return True


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    """Yield (line number, object or BadLine) for every non-empty line; a torn last line is repaired first."""
    repair_torn_tail(path)
    with path.open(encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield no, BadLine(path, no, f"not valid JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(obj, dict):
                yield no, BadLine(path, no, "not a JSON object")
                continue
            yield no, obj


def load_records(path: Path, model: type[R]) -> tuple[list[R], list[BadLine]]:
    """Read every record of ``model`` from ``path``; bad lines are returned, never raised."""
    if not path.exists():
        raise RepogymError(f"{path}: no such file")
    good: list[R] = []
    bad: list[BadLine] = []
    for no, obj in read_jsonl(path):
        if isinstance(obj, BadLine):
            bad.append(obj)
            continue
        try:
            good.append(model.model_validate(obj))
        except ValidationError as e:
            bad.append(BadLine(path, no, _describe(e)))
    return good, bad


def existing_ids(path: Path) -> set[str]:
    """Task ids already present in a JSONL file (for resuming a stage)."""
    if not path.exists():
        return set()
    return {str(o["task_id"]) for _, o in read_jsonl(path) if isinstance(o, dict) and "task_id" in o}


def append_record(path: Path, record: Record | dict[str, Any]) -> None:
    """Append one record as a single write followed by fsync, so a crash leaves at most a torn last line."""
    obj = record.to_json() if isinstance(record, Record) else record
    line = (json.dumps(obj, ensure_ascii=False) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        field = ".".join(str(x) for x in err["loc"]) or "record"
        parts.append(f"field {field!r}: {err['msg'].lower()}")
    return "; ".join(parts)
