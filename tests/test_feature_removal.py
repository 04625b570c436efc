from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, run_workflow_with_model

from repogym.sandbox.bwrap import bwrap_available
from repogym.scripted_server import Hang, ScriptedServer

REVERSE_PATCH = """### scheme/builtins.py
<<<<<<< SEARCH
def reverse(lst):
    result = NIL
    for item in lst:
        result = Pair(item, result)
    return result


=======
>>>>>>> REPLACE

<<<<<<< SEARCH
        "reverse": reverse,
=======
>>>>>>> REPLACE
"""

LIST_REF_PATCH = """### scheme/builtins.py
<<<<<<< SEARCH
        "list-ref": list_ref,
=======
>>>>>>> REPLACE
"""


def answer(subject: str, patch: str) -> str:
    return (
        f"Here is my pick.\n<subject>{subject}</subject>\n<task_description>\nAdd `{subject}` to the Scheme "
        f"interpreter. Example: (reverse '(1 2 3)) gives (3 2 1).\n</task_description>\n"
        f"<reasoning>It is tested and used by other primitives.</reasoning>\n<patches>\n{patch}</patches>\n"
    )


BROKEN = REVERSE_PATCH.replace("def reverse(lst):", "def reverse(items):")


def _synth(server: ScriptedServer, repo: Path, *extra: str):
    return run_cli(
        "synth",
        str(repo),
        "scheme/*.py",
        "tests/*.py",
        "--model",
        "openai/boa",
        "--api-base",
        server.url,
        "--json",
        *extra,
    )


def test_clean_answer_and_avoid_list_grows(scheme_repo: Path) -> None:
    script = [answer("reverse", REVERSE_PATCH), answer("list-ref", LIST_REF_PATCH)]
    with ScriptedServer(script) as server:
        r = _synth(server, scheme_repo, "--num-candidates", "2", "--avoid", "printer")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["subject"] for x in records] == ["reverse", "list-ref"]
    assert [x["task_id"] for x in records] == ["scheme_interpreter/0", "scheme_interpreter/1"]
    first, second = (req["messages"][1]["content"] for req in server.requests)
    assert "already taken): printer." in first and "reverse" not in first.split("already taken")[1][:50]
    assert "already taken): printer; reverse." in second
    rec = records[0]
    assert rec["strategy"] == "feature_removal" and rec["model"] == "openai/boa"
    assert rec["usage"]["calls"] == 1 and rec["usage"]["cost_usd"] == "unknown"
    assert rec["patches"].count("<<<<<<< SEARCH") == 2 and "### scheme/builtins.py" in rec["patches"]
    assert "tests/test_builtins.py" in rec["matching_files"], "the model sees the tests too"


def test_malformed_patch_is_normalized(scheme_repo: Path) -> None:
    with ScriptedServer([answer("reverse", BROKEN), f"<patches>\n{REVERSE_PATCH}</patches>"]) as server:
        r = _synth(server, scheme_repo, "--num-candidates", "1")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["usage"]["calls"] == 2 and "def reverse(lst):" in rec["patches"]
    normalize = server.requests[1]["messages"][0]["content"]
    assert "Your patch could not be used: block 1 (scheme/builtins.py): SEARCH text not found" in normalize


def test_patch_that_never_repairs_is_dropped(scheme_repo: Path) -> None:
    with ScriptedServer([answer("reverse", BROKEN), f"<patches>{BROKEN}</patches>", BROKEN]) as server:
        r = _synth(server, scheme_repo, "--num-candidates", "1", "--num-attempts", "3")
    assert r.returncode == 2
    assert "candidate 1: dropped, its patch never applied after 3 attempts" in r.stderr
    assert "attempt 3: block 1 (scheme/builtins.py): SEARCH text not found" in r.stderr
    assert len(server.requests) == 3


def test_hanging_server_is_a_clear_error(scheme_repo: Path) -> None:
    with ScriptedServer(lambda _req: Hang(10)) as server:
        r = _synth(server, scheme_repo, "--num-candidates", "1", "--timeout", "1", "--max-retries", "1")
    assert r.returncode == 1 and "no answer within 1s" in r.stderr


def test_max_input_tokens_truncates_with_warning(scheme_repo: Path) -> None:
    with ScriptedServer([answer("reverse", REVERSE_PATCH)]) as server:
        r = _synth(server, scheme_repo, "--num-candidates", "1", "--max-input-tokens", "3000")
    assert r.returncode == 0, r.stderr
    assert "--max-input-tokens 3000: showing the model" in r.stderr
    assert len(server.requests[0]["messages"][1]["content"]) < 3000 * 4 + 4000


@pytest.mark.slow
@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")
def test_workflow_with_a_model_end_to_end(scheme_repo: Path, tmp_path: Path) -> None:
    with ScriptedServer([answer("reverse", REVERSE_PATCH), answer("list-ref", LIST_REF_PATCH)]) as server:
        r = run_workflow_with_model(scheme_repo, tmp_path / "s", server.url, 2)
    assert r.returncode == 0, r.stderr[-2000:]
    checks = {json.loads(x)["task_id"]: json.loads(x) for x in (tmp_path / "s" / "check_results.jsonl").open()}
    assert all(c["ok"] for c in checks.values()) and len(checks) == 2
    assert checks["scheme_interpreter/0"]["FAIL_TO_PASS"] == ["tests.test_builtins::test_reverse"]
    assert "feature_removal" in r.stdout
