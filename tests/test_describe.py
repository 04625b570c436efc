from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import pytest

from repogym.describe import (
    PLACEHOLDER,
    DescriptionError,
    failure_report,
    forbidden_names,
    issue_description,
    named,
    redact,
    write_issue,
)
from repogym.llm import LLM, ModelConfig
from repogym.scripted_server import ScriptedServer
from repogym.testresults import TestRun

FAILING = ["tests.test_calc::test_addition_of_nested_groups", "tests.test_calc::test_evaluate_empty"]
TRACEBACK = """\
AssertionError: assert 3 == 4
def test_addition_of_nested_groups():
>       assert Parser().evaluate("(1 + (1 + 2))") == 4
E       AssertionError: assert 3 == 4
E        +  where 3 = <bound method Parser.evaluate of <calc.Parser object>>('(1 + (1 + 2))')

tests/test_calc.py:9: AssertionError"""
EMPTY = "ValueError: empty expression\ncalc.py:21: in evaluate\n    raise ValueError('empty expression')"
NAMING = "Parser.evaluate returns 3 for (1 + (1 + 2))\n\nI called evaluate and expected 4."
CLEAN = (
    "Nested groups add up wrong\n\nI parsed `(1 + (1 + 2))` and expected 4 but got 3.\n"
    "Failing: test_addition_of_nested_groups, test_evaluate_empty"
)


def _run() -> TestRun:
    outcomes = {t: "failed" for t in FAILING} | {"tests.test_calc::test_ok": "passed"}
    return TestRun(outcomes=outcomes, messages={FAILING[0]: TRACEBACK, FAILING[1]: EMPTY})  # type: ignore[arg-type]


def _cfg(url: str) -> ModelConfig:
    return ModelConfig(model="openai/boa", api_base=url, max_retries=0, timeout_s=5)


def _user_messages(request: dict) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def test_retry_drops_the_forbidden_name_and_sums_usage() -> None:
    second_reply = f"```markdown\n{CLEAN}\n```\n"
    with ScriptedServer([NAMING, second_reply]) as server:
        text, usage = issue_description(_cfg(server.url), _run(), FAILING, ["Parser.evaluate"])
    assert text == CLEAN, "the second reply, without its fence and surrounding whitespace"
    first, second = server.requests
    assert usage["calls"] == 2 and usage["model"] == "openai/boa"
    assert usage["prompt_tokens"] == sum(len(json.dumps(r["messages"])) // 4 for r in (first, second))
    replies = ({"role": "assistant", "content": c} for c in (NAMING, second_reply))
    assert usage["completion_tokens"] == sum(len(json.dumps(m)) // 4 for m in replies)
    correction = _user_messages(second)[-1]
    assert "`Parser.evaluate`" in correction and "must not appear" in correction
    assert second["messages"][-2] == {"role": "assistant", "content": NAMING}


def test_report_sent_holds_test_names_and_assertion_but_not_the_name() -> None:
    with ScriptedServer([CLEAN]) as server:
        issue_description(_cfg(server.url), _run(), FAILING, ["Parser.evaluate"])
    system, user = (m["content"] for m in server.requests[0]["messages"])
    for test in FAILING:
        assert test in user
    assert "AssertionError: assert 3 == 4" in user and "ValueError: empty expression" in user
    assert named(user, ["evaluate", "Parser.evaluate"]) is None
    assert f"<bound method {PLACEHOLDER} of" in user and f"in {PLACEHOLDER}" in user
    assert "test_evaluate_empty" in user, "a test name that contains the name is left alone"
    for rule in ("user reporting a bug", "diff", "patch", "mutation", "internal function", "fix"):
        assert rule in system


def test_model_that_always_names_it_fails_after_attempts() -> None:
    with ScriptedServer([NAMING] * 5) as server:
        with pytest.raises(
            DescriptionError, match=rf"boa at {re.escape(server.url)}: no usable issue after 3 attempts.*evaluate"
        ):
            issue_description(_cfg(server.url), _run(), FAILING, ["Parser.evaluate"])
    assert len(server.requests) == 3


def test_empty_reply_is_asked_again() -> None:
    async def go(url: str) -> str:
        llm = LLM(_cfg(url))
        try:
            return (await write_issue(llm, "FAILED t", ["evaluate"], attempts=2))[0]
        finally:
            await llm.close()

    with ScriptedServer(["  \n", "Title\n\nbody"]) as server:
        assert asyncio.run(go(server.url)) == "Title\n\nbody"
    assert "empty" in _user_messages(server.requests[1])[-1]


def test_unreachable_endpoint_names_the_url_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    start = time.monotonic()
    with pytest.raises(DescriptionError, match=re.escape(f"{url}: cannot connect")):
        issue_description(_cfg(url), _run(), FAILING, ["evaluate"])
    assert time.monotonic() - start < 10


def test_forbidden_names() -> None:
    assert forbidden_names(["Env.lookup"]) == ["Env.lookup", "lookup"]
    assert forbidden_names(["tokenize", "Foo(Base)", "Outer.Inner.run", "tokenize"]) == [
        "tokenize",
        "Foo",
        "Outer.Inner.run",
        "run",
    ]
    assert forbidden_names(["Env.lookup(self, key)"]) == ["Env.lookup", "lookup"]


def test_named_matches_whole_identifiers_only() -> None:
    names = forbidden_names(["Env.lookup"])
    assert named("test_lookup_nested fails", names) is None
    assert named("lookups and Lookup differ; lookup_table too", names) is None
    assert named("calling env.lookup('x') raises", names) == "lookup"
    assert named("Env.lookup raises", names) == "Env.lookup"
    assert named("`lookup` raises", names) == "lookup"
    assert named("Foo() breaks", forbidden_names(["Foo(Base)"])) == "Foo"
    assert named("FooBar breaks", forbidden_names(["Foo(Base)"])) is None


def test_redact_replaces_qualified_names_whole() -> None:
    text = "Env.lookup(k) -> lookup(k) in test_lookup_nested"
    assert (
        redact(text, forbidden_names(["Env.lookup"])) == f"{PLACEHOLDER}(k) -> {PLACEHOLDER}(k) in test_lookup_nested"
    )


def test_failure_report_limits() -> None:
    failing = [f"tests.t::test_{i}" for i in range(8)]
    run = TestRun(messages={t: f"AssertionError: case {i}\n" + "x" * 3000 + "\nE  end" for i, t in enumerate(failing)})
    report = failure_report(run, failing, max_tests=3, max_chars=2000)
    assert len(report) <= 2000
    assert [line for line in report.splitlines() if line.startswith("FAILED")] == [f"FAILED {t}" for t in failing[:3]]
    assert "AssertionError: case 0" in report and "E  end" in report, "head and tail of each traceback"
    assert "5 more failing tests" in report


def test_failure_report_prefers_tests_with_messages_and_falls_back_to_output() -> None:
    run = TestRun(messages={"b": "boom"}, output="collected 2\n" + "noise\n" * 2000 + "2 failed in 0.1s")
    assert failure_report(run, ["a", "b"], max_tests=1).startswith("FAILED b\nboom")
    bare = failure_report(TestRun(output=run.output), ["a", "b"], max_chars=500)
    assert bare.startswith("FAILED a\nFAILED b\n") and bare.endswith("2 failed in 0.1s") and len(bare) <= 500
