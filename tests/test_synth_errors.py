"""Errors sorted by boundary: a glob that matches nothing is the user's to fix (exit 2), not a model failure."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli

from repogym.scripted_server import ScriptedServer


def test_a_glob_that_matches_nothing_is_a_usage_error_before_any_model_call(scheme_repo: Path) -> None:
    with ScriptedServer([]) as server:
        r = run_cli("synth", str(scheme_repo), "nowhere/*.py", "--model", "openai/boa", "--api-base", server.url)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no file matches nowhere/*.py (globs are relative to the repository root" in r.stderr
    assert server.requests == []
