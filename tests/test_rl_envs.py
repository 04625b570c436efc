"""RL environments end to end: gsm8k in managed mode, swe with scripted agents, the pool, the Atropos trainer."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest
from conftest import _free_port, run_cli, run_workflow_with_model
from test_feature_removal import LIST_REF_PATCH, REVERSE_PATCH, answer
from test_scored import _post
from test_tokens import CHATML, make_tokenizer

from repogym.agents.loop import AgentConfig
from repogym.rl.envs.base import run_group
from repogym.rl.envs.gsm8k import Gsm8kEnv, extract_boxed
from repogym.rl.run import RlConfig, make_model
from repogym.sandbox.bwrap import bwrap_available
from repogym.sandbox.pool import SandboxPool
from repogym.scripted_server import ScriptedGenerateServer, ScriptedServer, ToolCall

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")

ANSWERS = [
    "6 * 7 = 42, so the answer is \\boxed{42}.",  # right
    "The answer is \\boxed{41}.",  # wrong
    "<think>maybe \\boxed{41}</think> The answer is \\boxed{42}.",  # a decoy in <think> is ignored: right
    "<think>it is \\boxed{42}</think> I say \\boxed{40}.",  # the decoy would be right; the answer is wrong
]
EXPECTED = [1.0, 0.0, 1.0, 0.0]


def test_extract_boxed() -> None:
    assert extract_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_boxed("<think>\\boxed{9}</think> none") is None
    assert extract_boxed("x <think>unclosed \\boxed{3}") is None


@pytest.fixture
def gsm_data(tmp_path: Path) -> Path:
    row = {"question": "What is 6 * 7?", "answer": "6 * 7 = <<6*7=42>>42\n#### 42"}
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for _ in range(10)))
    return path


def generate_script(tok):
    """Rollout k: a bash call marked rk, then ANSWERS[k]; the mark in the prompt tells the rollouts apart."""
    lock = threading.Lock()
    first = {"n": 0}

    def reply(prompt_ids: list[int]) -> tuple[list[int], list[float]]:
        prompt = tok.decode(prompt_ids)
        with lock:
            if "<tool_call>" not in prompt:
                k = first["n"] % 4
                first["n"] += 1
                command = f"python3 -c 'print(6 * 7)' # r{k}"
                call = json.dumps({"name": "bash", "arguments": {"command": command}})
                text = f"<tool_call>\n{call}\n</tool_call><|im_end|>"
            else:
                k = int(prompt.split("# r")[-1][0])
                text = ANSWERS[k] + "<|im_end|>"
        ids = tok.encode(text)
        return ids, [-0.01 * (i + 1) for i in range(len(ids))]

    return reply


def _tokenizer_files(tmp_path: Path):
    tok = make_tokenizer()
    tok.tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "template.jinja").write_text(CHATML)
    return tok, tmp_path / "tokenizer.json", tmp_path / "template.jinja"


def test_gsm8k_managed_mode_groups(gsm_data: Path, tmp_path: Path) -> None:
    tok, tokenizer, template = _tokenizer_files(tmp_path)
    out = tmp_path / "groups.jsonl"
    with ScriptedGenerateServer(generate_script(tok)) as server:
        r = run_cli(
            "rl",
            "process",
            "gsm8k",
            str(gsm_data),
            "--items",
            "1",
            "--group-size",
            "4",
            "--out",
            str(out),
            "--server-format",
            "vllm",
            "--api-base",
            server.url,
            "--tokenizer",
            str(tokenizer),
            "--chat-template",
            str(template),
            "--parser",
            "hermes",
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "infrastructure_failures=0" in r.stdout and "mode=managed" in r.stdout
    group = json.loads(out.read_text())
    assert group["mode"] == "managed" and sorted(group["scores"]) == sorted(EXPECTED)
    for tokens, masks, lps, messages, score in zip(
        group["tokens"], group["masks"], group["inference_logprobs"], group["messages"], group["scores"], strict=True
    ):
        assert len(tokens) == len(masks) == len(lps)
        trained = [t for t, m in zip(tokens, masks, strict=True) if m != -100]
        said = tok.decode(trained)
        k = int(said.split("# r")[1][0])
        assert said.endswith(ANSWERS[k] + "<|im_end|>") and score == EXPECTED[k]
        assert [lp for lp, m in zip(lps, masks, strict=True) if m != -100][:2] == [-0.01, -0.02], "both turns' logprobs"
        assert tok.decode(tokens) == tok.render(messages, add_generation_prompt=False)
        tool = [m for m in messages if m["role"] == "tool"][0]
        assert tool["content"].startswith("exit code: 0\nstdout:\n42"), "python ran in the rollout's sandbox"
    assert group["advantages"][0][0] == group["scores"][0] - 0.5


@pytest.fixture(scope="module")
def swe_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import EXAMPLE, make_git_repo

    root = tmp_path_factory.mktemp("swe")
    repo = make_git_repo(EXAMPLE, root / "scheme_interpreter")
    with ScriptedServer([answer("reverse", REVERSE_PATCH), answer("list-ref", LIST_REF_PATCH)]) as server:
        r = run_workflow_with_model(repo, root / "state", server.url, 2)
    assert r.returncode == 0, r.stderr[-2000:]
    return root / "state"


def agent_script(fixes: dict[int, str]):
    """OpenAI mode: rollout k (by arrival) writes fixes[k] to scheme/builtins.py, then submits."""
    lock = threading.Lock()
    seen: dict[str, int] = {}

    def reply(req: dict):
        msgs = req["messages"]
        with lock:
            if len(msgs) == 2:
                k = len(seen)
                seen[f"pending{k}"] = k
                return {
                    "tool_calls": [
                        {
                            "id": f"w{k}",
                            "type": "function",
                            "function": {
                                "name": "write_file",
                                "arguments": json.dumps({"path": "scheme/builtins.py", "content": fixes[k]}),
                            },
                        }
                    ]
                }
            return ToolCall("submit")

    return reply


def test_swe_env_scores_gold_and_wrong_fixes(swe_state: Path, tmp_path: Path) -> None:
    from conftest import EXAMPLE

    gold = (EXAMPLE / "scheme" / "builtins.py").read_text()
    fixes = {
        0: gold,
        1: gold.replace("result = Pair(item, result)", "result = result"),
        2: gold,
        3: gold + "\n\nBROKEN = 1/0\n",
    }
    out = tmp_path / "groups.jsonl"
    with ScriptedServer(agent_script(fixes)) as server:
        r = run_cli(
            "rl",
            "process",
            "swe",
            str(swe_state),
            "--items",
            "1",
            "--group-size",
            "4",
            "--out",
            str(out),
            "--api-base",
            server.url,
            "--max-turns",
            "4",
        )
    assert r.returncode == 0, r.stdout + r.stderr
    group = json.loads(out.read_text())
    assert group["mode"] == "openai" and "tokens" not in group or group["tokens"] is None
    by_fix = {}
    for messages, score, meta in zip(group["messages"], group["scores"], group["meta"]["item_meta"], strict=True):
        k = int(messages[2]["tool_calls"][0]["id"][1:])
        by_fix[k] = (score, meta)
    assert {k: s for k, (s, _) in by_fix.items()} == {0: 1.0, 1: 0.0, 2: 1.0, 3: 0.0}
    assert all(set(m["fail_to_pass"].values()) == {"passed"} for s, m in by_fix.values() if s == 1.0)
    assert "failed" in by_fix[1][1]["fail_to_pass"].values() or by_fix[1][1]["pass_to_pass_failed"]


def test_swe_partial_reward_credits_a_fix_that_breaks_other_tests(swe_state: Path, tmp_path: Path) -> None:
    """--reward partial: (share of FAIL_TO_PASS passing) x (share of PASS_TO_PASS still passing); the run reports how
    full it kept the sandbox pool."""
    from conftest import EXAMPLE

    gold = (EXAMPLE / "scheme" / "builtins.py").read_text()
    no_reverse = gold.replace('        "reverse": reverse,\n', "")
    assert no_reverse != gold
    out = tmp_path / "groups.jsonl"
    with ScriptedServer(agent_script({0: gold, 1: no_reverse})) as server:
        r = run_cli("rl", "process", "swe", str(swe_state), "--items", "1", "--group-size", "2", "--out", str(out),
                    "--api-base", server.url, "--max-turns", "4", "--reward", "partial")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "slots_busy_mean=" in r.stdout
    group = json.loads(out.read_text())
    scores = {int(m[2]["tool_calls"][0]["id"][1:]): s for m, s in zip(group["messages"], group["scores"], strict=True)}
    assert scores[0] == 1.0
    if "test_list_ref" in json.dumps(group["meta"]["item_meta"]):  # its own test passes, reverse's breaks
        assert 0.0 < scores[1] < 1.0
    else:  # the reverse task: its own test fails, so nothing is credited
        assert scores[1] == 0.0


def test_killed_sandbox_is_an_infrastructure_failure(gsm_data: Path) -> None:
    env = Gsm8kEnv(gsm_data)
    item = env.next_item()
    holder: dict[str, SandboxPool] = {}
    killed: list[bool] = []

    counter = iter(range(100))

    def script(req: dict):
        msgs = req["messages"]
        if len(msgs) == 2:
            return ToolCall("bash", {"command": f"touch mark{next(counter)} && python3 -c 'print(6 * 7)'"})
        if not killed and len(msgs) == 4:
            # This rollout loses its own sandbox between two tool calls, as a crash would.
            killed.append(True)
            mark = json.loads(msgs[2]["tool_calls"][0]["function"]["arguments"])["command"].split()[1]
            mine = [d for d in holder["pool"].root.iterdir() if (d / "repo" / mark).exists()]
            shutil.rmtree(mine[0])
            return ToolCall("bash", {"command": "echo after"})
        return "So \\boxed{42}."

    with ScriptedServer(script) as server:
        cfg = RlConfig(env="gsm8k", api_base=server.url)
        model = make_model(cfg, 1.0)

        async def go():
            pool = SandboxPool(env.make_sandbox, size=3)
            holder["pool"] = pool
            try:
                return await run_group(env, item, 3, model, pool, AgentConfig(max_turns=4)), pool
            finally:
                await model.close()

        result, pool = asyncio.run(go())
    assert len(result.failures) == 1 and result.failures[0]["stop_reason"] == "infrastructure_error"
    assert "closed or its working copy is gone" in result.failures[0]["error"]
    assert result.group is not None and result.group.scores == [1.0, 1.0], "the other rollouts finished"
    assert all(m[-1]["role"] == "assistant" for m in result.group.messages or []), "a plain answer ended them"
    assert pool.replaced == 1 and pool.free.qsize() == 3, "the slot came back, with its sandbox replaced"
    pool.close()


def test_rl_serve_delivers_groups_to_the_trainer(gsm_data: Path, tmp_path: Path, trajectory_api: str) -> None:
    tok, tokenizer, template = _tokenizer_files(tmp_path)
    url = trajectory_api
    _post(
        url + "/register",
        {
            "wandb_group": "g",
            "wandb_project": "p",
            "batch_size": 8,
            "max_token_len": 4096,
            "checkpoint_dir": str(tmp_path),
            "save_checkpoint_interval": 10,
            "starting_step": 0,
            "num_steps": 3,
        },
    )
    urllib.request.urlopen(url + "/batch").read()
    with ScriptedGenerateServer(generate_script(tok)) as server:
        r = run_cli(
            "rl",
            "serve",
            "gsm8k",
            str(gsm_data),
            "--api",
            url,
            "--items",
            "2",
            "--group-size",
            "4",
            "--server-format",
            "sglang",
            "--api-base",
            server.url,
            "--tokenizer",
            str(tokenizer),
            "--chat-template",
            str(template),
        )
    assert r.returncode == 0, r.stdout + r.stderr
    batch = json.loads(urllib.request.urlopen(url + "/batch").read())["batch"]
    assert len(batch) == 2 and all(len(g["tokens"]) == 4 for g in batch)
    for g in batch:
        assert sorted(g["scores"]) == sorted(EXPECTED)
        for tokens, masks, lps in zip(g["tokens"], g["masks"], g["inference_logprobs"], strict=True):
            assert len(tokens) == len(masks) == len(lps) and any(m != -100 for m in masks)
            assert tok.decode([t for t, m in zip(tokens, masks, strict=True) if m != -100]).endswith("<|im_end|>")


def test_unreachable_model_server_fails_the_run(gsm_data: Path, tmp_path: Path) -> None:
    r = run_cli(
        "rl",
        "process",
        "gsm8k",
        str(gsm_data),
        "--api-base",
        f"http://127.0.0.1:{_free_port()}/v1",
        "--items",
        "1",
        "--group-size",
        "2",
        "--max-turns",
        "1",
        "--out",
        str(tmp_path / "g.jsonl"),
    )
    assert r.returncode == 1 and "infrastructure_failures=2" in r.stdout
    assert "cannot connect (is the server running? check --api-base)" in r.stdout
    assert not (tmp_path / "g.jsonl").exists(), "no group is written from failed rollouts"


def test_rl_eval_takes_items_from_the_toml_config(gsm_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "rl.toml"
    config.write_text("items = 1\nmax-turns = 2\n")
    with ScriptedServer(lambda _req: "6 * 7 = 42, so \\boxed{42}.") as server:
        by_toml = run_cli("rl", "eval", "gsm8k", str(gsm_data), "--config", str(config), "--api-base", server.url)
        every = run_cli("rl", "eval", "gsm8k", str(gsm_data), "--api-base", server.url)
    assert by_toml.returncode == 0, by_toml.stdout + by_toml.stderr
    assert "gsm8k held-out: 1 item(s), accuracy 1.0" in by_toml.stdout
    assert "gsm8k held-out: 2 item(s), accuracy 1.0" in every.stdout, "without it: every held-out item"
    config.write_text("itemz = 1\n")
    bad = run_cli("rl", "eval", "gsm8k", str(gsm_data), "--config", str(config), "--api-base", server.url)
    assert bad.returncode == 2 and f"{config}: bad RL config: itemz: Extra inputs are not permitted" in bad.stderr


class _Unresolvable(Gsm8kEnv):
    """An environment whose items' working copies cannot be made (a repository that is gone, say)."""

    def prepare(self, item: dict, repo_dir: Path) -> None:
        raise RuntimeError(f"cannot resolve the repository of {item['id']}")


def test_an_item_that_cannot_be_prepared_is_a_failure_record_not_a_crash(gsm_data: Path) -> None:
    env = _Unresolvable(gsm_data)
    item = env.next_item()
    with ScriptedServer(lambda _req: "\\boxed{42}") as server:
        model = make_model(RlConfig(env="gsm8k", api_base=server.url), 1.0)

        async def go():
            pool = SandboxPool(env.make_sandbox, size=2)
            try:
                return await run_group(env, item, 3, model, pool, AgentConfig(max_turns=2)), pool
            finally:
                await model.close()

        result, pool = asyncio.run(go())
    assert result.group is None and [f["stop_reason"] for f in result.failures] == ["prepare_error"] * 3
    assert f"cannot resolve the repository of {item['id']}" in result.failures[0]["error"]
    assert server.requests == [] and pool.free.qsize() == 2, "no model call; every slot came back"
    pool.close()
