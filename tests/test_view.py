"""`repogym view`: the report of a real state dir and a real eval run, opened in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE, make_git_repo, run_cli

from repogym.sandbox.bwrap import bwrap_available
from repogym.scripted_server import ScriptedServer, ToolCall
from repogym.taskset import load_state

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What Chromium needs here as root on a machine with no outside network (see .ci/run).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflow state dir of the example project (procedural, no model): the demo, smaller."""
    root = tmp_path_factory.mktemp("view")
    repo = make_git_repo(EXAMPLE, root / "scheme_interpreter")
    state = root / "state"
    state.mkdir()
    # A candidate no test notices (a docstring), so that the page has a rejection to show beside the checked tasks.
    doc = '"""Render Scheme values as Scheme source text."""\n'
    patch = f"### scheme/printer.py\n<<<<<<< SEARCH\n{doc}=======\n{doc.replace('Render', 'Print')}>>>>>>> REPLACE\n"
    noop = {
        "task_id": "scheme_interpreter/docstring", "repo": str(repo), "commit_sha": git_head(repo),
        "subject": "docstring", "strategy": "procedural:docstring",
        "patches": patch,
    }  # fmt: skip
    (state / "tasks.jsonl").write_text(json.dumps(noop) + "\n")
    r = run_cli("workflow", str(repo), "scheme/*.py", "--state-dir", str(state), "--num-candidates", "12")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(load_state(state).checked_ok()) >= 2
    return state


def git_head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def eval_dir(state: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two attempts by a scripted agent: one applies the gold patch (resolved), one submits nothing."""
    out = tmp_path_factory.mktemp("eval") / "scripted-agent"
    good, bad = load_state(state).checked_ok()[:2]
    fix = f"cat > /tmp/gold.diff <<'EOF'\n{good.gold_patch}EOF\ngit apply /tmp/gold.diff && echo applied"
    for task, script in ((good, [ToolCall("bash", {"command": fix}), ToolCall("submit")]), (bad, [ToolCall("submit")])):
        with ScriptedServer(script) as server:
            r = run_cli(
                *("eval", "--validated", str(state / "validated_tasks.jsonl"), "--task-id", task.task_id),
                *("--model", "openai/boa", "--api-base", server.url, "--output-dir", str(out)),
            )
        assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def report(state: Path, eval_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    r = run_cli("view", str(state), "--eval", str(eval_dir), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "1 eval run(s), 2 attempt(s)" in r.stdout
    return out


@pytest.fixture(scope="module")
def page(report: Path) -> Iterator[Any]:
    """The report open in headless Chromium; ``page.requests`` lists every URL the page asked for."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        requests: list[str] = []
        pg.on("request", lambda req: requests.append(req.url))
        pg.goto(report.as_uri())
        pg.wait_for_function("() => window.repogymReady !== undefined")
        pg.requests = requests
        yield pg
        browser.close()


def _shown(page: Any) -> list[str]:
    return page.eval_on_selector_all("tr.task-row:not([hidden])", "rows => rows.map(r => r.dataset.id)")


def test_every_task_is_listed_and_the_summary_counts_them(page: Any, state: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    rows = load_state(state).rows
    assert sorted(_shown(page)) == sorted(r.task_id for r in rows)
    assert page.inner_text("#count") == f"{len(rows)} of {len(rows)} tasks"
    passed = sum(r.status == "passed" for r in rows)
    assert page.inner_text("#yield") == f"{round(100 * passed / len(rows))}%"
    chart = page.text_content("#summary svg.chart") or ""
    assert "no test fails with the change" in chart or "N of N tests fail" in chart


def test_filter_by_check_outcome_and_search_by_test_name(page: Any, state: Path) -> None:
    rows = load_state(state).rows
    page.select_option("#f-status", "rejected")
    assert sorted(_shown(page)) == sorted(r.task_id for r in rows if r.status == "rejected")
    page.select_option("#f-status", "passed")
    passed = [r for r in rows if r.status == "passed"]
    assert sorted(_shown(page)) == sorted(r.task_id for r in passed)
    test_name = passed[0].test_lists()[0][0]
    page.fill("#q", test_name)
    _wait_count(page, len(_with(rows, test_name)))
    assert sorted(_shown(page)) == sorted(_with(rows, test_name))
    page.fill("#q", "")
    page.select_option("#f-status", "")
    _wait_count(page, len(rows))


def _wait_count(page: Any, n: int) -> None:
    """Wait for the debounced search to settle on ``n`` tasks shown."""
    page.wait_for_function("n => document.querySelector('#count').textContent.startsWith(n + ' of')", arg=n)


def _with(rows: list[Any], test_name: str) -> list[str]:
    return [r.task_id for r in rows if test_name in r.test_lists()[0]]


def test_a_task_shows_its_diffs_tests_and_checks(page: Any, state: Path) -> None:
    task = load_state(state).checked_ok()[0]
    page.click(f"tr.task-row[data-id='{task.task_id}']")
    page.wait_for_selector("#diff-view .diff")
    hunks = task.gold_patch.split("\n@@", 1)[1].splitlines()[1:]
    changed = [line for line in hunks if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    lines = "#diff-view .diff .add, #diff-view .diff .del"
    shown = page.eval_on_selector_all(lines, "els => els.map(e => e.textContent)")
    assert changed and changed == shown
    assert page.locator("#diff-view .tok-kw").count() > 0  # syntax colouring of Python keywords
    page.click("#detail .tabs button[data-tab='tests']")
    assert "def test_" in page.inner_text("#diff-view")
    f2p = page.eval_on_selector_all(".tests-FAIL_TO_PASS li", "els => els.map(e => e.textContent)")
    assert f2p == task.test_lists()[0]
    assert page.inner_text("table.checks").count("yes") == 3
    assert task.description[:40] in page.inner_text("#detail .description")


def test_attempts_and_a_trajectory_render_as_a_conversation(page: Any, state: Path, eval_dir: Path) -> None:
    results = [json.loads(line) for line in (eval_dir / "results.jsonl").read_text().splitlines()]
    resolved = next(r for r in results if r["resolved"])
    assert any(not r["resolved"] for r in results)
    page.evaluate(f"location.hash = 'task={resolved['task_id']}'")
    page.wait_for_selector("table.attempts")
    assert "resolved" in page.inner_text("table.attempts .badge") and "submitted" in page.inner_text("table.attempts")
    page.click("button.open-trajectory")
    page.wait_for_selector(".conversation .msg.role-assistant")
    roles = page.eval_on_selector_all(".conversation .msg .role", "els => els.map(e => e.textContent)")
    assert roles[:3] == ["system", "user", "assistant"] and "tool" in roles
    assert "bash(" in page.inner_text(".conversation .tool-call") and "git apply" in page.inner_text(".conversation")
    assert "applied" in page.inner_text(".conversation .msg.role-tool")


def test_the_page_made_no_network_request(page: Any, report: Path) -> None:
    assert page.requests == [report.as_uri()]


def test_text_that_could_close_the_script_is_embedded_as_data(tmp_path: Path) -> None:
    hostile = "Fix it.</script><script>alert(1)</script> \u2028 <!-- done"
    state = tmp_path / "state"
    state.mkdir()
    (state / "tasks.jsonl").write_text(json.dumps({"task_id": "x/1", "repo": "r", "task_description": hostile}) + "\n")
    from repogym.view import build_report

    out = tmp_path / "r.html"
    build_report(state, [], out)
    html = out.read_text()
    assert html.count("</script>") == 2 and "alert(1)</script>" not in html
    start = html.index('type="application/json">') + len('type="application/json">')
    data = json.loads(html[start : html.index("</script>", start)])
    assert data["tasks"][0]["description"] == hostile and data["tasks"][0]["status"] == "pending"


def test_bad_directories_get_one_line_naming_what_to_do(tmp_path: Path) -> None:
    r = run_cli("view", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.html"))
    assert r.returncode == 2 and "no such state directory (make one with `repogym workflow`)" in r.stderr
    state = tmp_path / "state"
    state.mkdir()
    (state / "tasks.jsonl").write_text(json.dumps({"task_id": "x/1", "repo": "r"}) + "\n")
    r = run_cli("view", str(state), "--eval", str(tmp_path), "--out", str(tmp_path / "r.html"))
    assert r.returncode == 2 and "no results.jsonl (make one with `repogym eval --output-dir" in r.stderr
    assert not (tmp_path / "r.html").exists()
