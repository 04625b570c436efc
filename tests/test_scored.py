"""Scored groups: advantages, filters, JSONL, and a round trip through the real Atropos trajectory API."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from repogym.rl.atropos import AtroposClient, AtroposError, JsonlSink
from repogym.rl.scored import ScoredItem, advantages, build_group, filter_groups


def item(score: float, n: int = 4, k: int = 0) -> ScoredItem:
    tokens = [100 + k * 10 + i for i in range(n)]
    return ScoredItem(
        score=score,
        tokens=tokens,
        masks=[-100, -100, *tokens[2:]],
        inference_logprobs=[1.0, 1.0, *[-0.25 * (i + 1) for i in range(n - 2)]],
        messages=[{"role": "assistant", "content": f"answer {k}"}],
    )


def test_group_relative_advantages() -> None:
    assert advantages([1.0, 0.0, 0.0, 1.0]) == [0.5, -0.5, -0.5, 0.5]
    normed = advantages([1.0, 0.0], normalize_std=True)
    assert normed[0] == pytest.approx(1.0, abs=1e-5) and normed[1] == pytest.approx(-1.0, abs=1e-5)
    g = build_group([item(1.0, k=0), item(0.0, k=1)])
    assert g.mode == "managed" and g.advantages == [[0.5] * 4, [-0.5] * 4]
    assert g.inference_logprobs == [[1.0, 1.0, -0.25, -0.5]] * 2


def test_openai_mode_group_says_so() -> None:
    g = build_group([ScoredItem(score=1.0, messages=[{"role": "assistant", "content": "x"}]), ScoredItem(score=0.0)])
    assert g.mode == "openai" and g.tokens is None and g.scores == [1.0, 0.0]
    with pytest.raises(AtroposError, match="OpenAI-mode groups"):
        AtroposClient("http://127.0.0.1:9").send(g)


def test_filters_say_what_they_dropped() -> None:
    groups = [
        build_group([item(1.0), item(1.0)]),
        build_group([item(1.0, n=50), item(0.0)]),
        build_group([item(1.0), item(0.0)]),
    ]
    kept, dropped = filter_groups(groups, max_tokens=20)
    assert kept == [groups[2]]
    assert dropped == [
        "group 0: every rollout scored 1.0 (no learning signal)",
        "group 1: 1 rollout(s) longer than 20 tokens; group dropped",
    ]


def test_jsonl_sink(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "groups.jsonl")
    sink.send(build_group([item(1.0), item(0.0)]))
    sink.send(build_group([item(0.0), item(1.0)]))
    rows = [json.loads(line) for line in (tmp_path / "groups.jsonl").read_text().splitlines()]
    assert [r["scores"] for r in rows] == [[1.0, 0.0], [0.0, 1.0]] and rows[0]["mode"] == "managed"


def _post(url: str, body: object) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


def test_round_trip_through_the_real_trajectory_api(trajectory_api: str) -> None:
    trainer = {
        "wandb_group": "g",
        "wandb_project": "p",
        "batch_size": 4,
        "max_token_len": 64,
        "checkpoint_dir": "/tmp/ck",
        "save_checkpoint_interval": 10,
        "starting_step": 0,
        "num_steps": 5,
    }
    assert "uuid" in _post(trajectory_api + "/register", trainer)
    assert json.loads(urllib.request.urlopen(trajectory_api + "/batch").read())["batch"] is None  # starts the trainer

    client = AtroposClient(trajectory_api)
    reg = client.register_env("repogym-test", max_token_length=64, group_size=2, wait_s=30)
    assert reg["status"] == "success" and client.env_id == 0
    client.wait_for_room(group_size=2)
    first, second = build_group([item(1.0, k=0), item(0.0, k=1)]), build_group([item(0.0, k=2), item(1.0, k=3)])
    assert client.send(first)["status"] == "received"
    assert client.send_many([second])["groups_processed"] == 1

    batch = json.loads(urllib.request.urlopen(trajectory_api + "/batch").read())["batch"]
    assert len(batch) == 2
    for got, sent in zip(batch, (first, second), strict=True):
        assert got["tokens"] == sent.tokens and got["masks"] == sent.masks and got["scores"] == sent.scores
        assert got["inference_logprobs"] == sent.inference_logprobs and got["advantages"] == sent.advantages
        assert got["messages"] == sent.messages and got["env_id"] == 0
