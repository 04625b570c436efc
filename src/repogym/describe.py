"""Task descriptions: the template that names the changed function, or a GitHub-style issue a model writes.

An issue is written from what a user would see at the task state (the failing tests, their assertion messages
and tracebacks), never from the diff, and must not name the changed functions: the agent has to find them.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from repogym.errors import RepogymError
from repogym.llm import LLM, LLMError, Model, ModelConfig, Usage
from repogym.testresults import TestRun

STYLES = ("template", "issue")
PLACEHOLDER = "<internal>"
CUT = "\n[...]\n"

SYSTEM = (
    "You write bug reports for a software project. Write as a user reporting a bug on its GitHub issue tracker, "
    "from the failing tests and their output that you are given. Do not mention any diff, patch, change or "
    "mutation, and do not name any internal function or method. Do not propose a fix and do not guess where in "
    f"the code the cause is. Names shown as {PLACEHOLDER} are internal: do not mention or guess them."
)

INSTRUCTIONS = """\
These tests fail in my checkout of the project:

{report}

Write the issue: a title on the first line, then a Markdown body that says what I did, what I expected, what \
happened instead, and names the failing tests. Answer with the issue only."""


class DescriptionError(RepogymError):
    """The model could not write a usable issue: unreachable, or it kept naming what it must not."""

    exit_code = 1


def failure_report(run: TestRun, failing: list[str], max_tests: int = 5, max_chars: int = 6000) -> str:
    """What a user sees: for up to max_tests failing tests, the test's name and run.messages[test] (message and
    traceback), cut so the whole stays under max_chars; falls back to the tail of run.output when there are no
    messages."""
    shown = sorted(failing, key=lambda t: t not in run.messages)[:max_tests]
    if not any(t in run.messages for t in shown):
        return _output_report(run, failing, max_chars)
    more = f"\n\n...and {len(failing) - len(shown)} more failing tests" if len(failing) > len(shown) else ""
    budget = (max_chars - len(more)) // len(shown)
    sections = [_section(t, run.messages.get(t, "(no message)"), budget) for t in shown]
    return ("\n\n".join(sections) + more)[:max_chars]


def _section(test: str, message: str, budget: int) -> str:
    """One failing test: its name, then its message cut to fit the section's share of the report."""
    header = f"FAILED {test}\n"
    return header + _cut(message.strip(), budget - len(header) - 2)


def _cut(text: str, limit: int) -> str:
    """The head (the assertion message) and the tail (where it was raised) of a text longer than limit."""
    if len(text) <= limit:
        return text
    if limit <= len(CUT):
        return text[: max(limit, 0)]
    head = (limit - len(CUT)) // 2
    return text[:head] + CUT + text[len(text) - (limit - len(CUT) - head) :]


def _output_report(run: TestRun, failing: list[str], max_chars: int) -> str:
    """The failing tests' names and the end of the runner's output, for runners that report no messages."""
    names = "".join(f"FAILED {t}\n" for t in failing)
    head = f"{names}\nTest output (end):\n"
    return (head + run.output.rstrip()[-max(max_chars - len(head), 0) :])[:max_chars]


def forbidden_names(symbols: list[str]) -> list[str]:
    """Names a description may not contain, from qualified names: 'Env.lookup' -> 'lookup' (and the qualified
    form), 'tokenize' -> 'tokenize'; a name's '(...)' suffix (e.g. 'Foo(Base)') stripped."""
    out: list[str] = []
    for symbol in symbols:
        qualified = symbol.split("(")[0].strip()
        for name in (qualified, qualified.rpartition(".")[2]):
            if name and name not in out:
                out.append(name)
    return out


def _pattern(name: str) -> re.Pattern[str]:
    """``name`` as a whole identifier: a test name such as test_lookup_nested does not contain ``lookup``."""
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")


def named(text: str, names: list[str]) -> str | None:
    """The first forbidden name that appears in text as a whole identifier (word boundaries, case-sensitive),
    else None."""
    return next((n for n in names if _pattern(n).search(text)), None)


def redact(text: str, names: list[str]) -> str:
    """``text`` with each forbidden name replaced by a placeholder, so that the model is not tempted to use it;
    qualified names go first, so 'Env.lookup' becomes one placeholder rather than 'Env.<internal>'."""
    for name in sorted(names, key=len, reverse=True):
        text = _pattern(name).sub(PLACEHOLDER, text)
    return text


def _unwrap(reply: str) -> str:
    """The reply without surrounding whitespace or a wrapping ``` fence."""
    text = reply.strip()
    fenced = re.fullmatch(r"```[\w-]*\n(.*?)\n?```", text, re.DOTALL)
    return fenced.group(1).strip() if fenced else text


def _correction(text: str, name: str | None) -> str:
    """What the next request asks of the model after a reply that cannot be used."""
    if not text:
        return "Your reply was empty. Write the issue."
    return (
        f"Your issue names `{name}`, an internal name that must not appear in it. Rewrite the whole issue "
        f"without `{name}`: describe the behaviour the user sees instead."
    )


async def write_issue(llm: Model, report: str, forbidden: list[str], attempts: int = 3) -> tuple[str, Usage]:
    """Ask the model for an issue (title line + body: what the user did, what they expected, what happened, the
    failing tests by name; no fix, no guess at the cause's location); when the text names a forbidden name, ask
    again saying which name must go; after `attempts`, raise DescriptionError. Usage summed over all calls."""
    prompt = INSTRUCTIONS.format(report=redact(report, forbidden))
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    usage = Usage()
    problem = ""
    for _ in range(attempts):
        completion = await llm.chat(messages)
        usage.add(completion.usage)
        text = _unwrap(completion.message.get("content") or "")
        name = named(text, forbidden)
        if text and name is None:
            return text, usage
        problem = f"it named `{name}`" if text else "the reply was empty"
        messages += [{"role": "assistant", "content": text}, {"role": "user", "content": _correction(text, name)}]
    raise DescriptionError(f"no usable issue after {attempts} attempts: in the last, {problem}")


def issue_description(
    model: ModelConfig, run: TestRun, failing: list[str], symbols: list[str]
) -> tuple[str, dict[str, Any]]:
    """Synchronous (asyncio.run) wrapper for validation workers: returns (description, usage record) where the
    usage record is Usage.record() plus {"model": model name, "calls": n}. Raises DescriptionError (a
    RepogymError) naming the endpoint when the model cannot be reached or never complies."""
    report = failure_report(run, failing)
    forbidden = forbidden_names(symbols)

    async def go() -> tuple[str, Usage]:
        llm = LLM(model)
        try:
            return await write_issue(llm, report, forbidden)
        finally:
            await llm.close()

    try:
        text, usage = asyncio.run(go())
    except LLMError as e:
        raise DescriptionError(f"issue-style description by {model.model}: {e}") from e
    except DescriptionError as e:
        raise DescriptionError(f"issue-style description by {model.model} at {model.base_url()}: {e}") from e
    return text, {**usage.record(), "model": model.model, "calls": usage.calls}
