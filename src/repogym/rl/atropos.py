"""Send scored groups to an Atropos-compatible trajectory API, or write them to JSONL without any server.

The API's protocol: an environment registers (/register-env, once the trainer has registered), watches
/status-env so that it never runs more than ``max_batches_offpolicy`` batches ahead of the trainer, and posts
groups to /scored_data (or several to /scored_data_list).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from repogym.errors import RepogymError
from repogym.records import append_record
from repogym.rl.scored import ScoredGroup


class AtroposError(RepogymError):
    exit_code = 1


class AtroposClient:
    """A client of the trajectory API at ``url`` (e.g. http://127.0.0.1:8000)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.env_id: int | None = None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise AtroposError(f"{self.url}{path}: HTTP {e.code}: {e.read()[:300]!r}") from e
        except OSError as e:
            raise AtroposError(f"{self.url}{path}: cannot reach the trajectory API ({e}); is `run-api` running?") from e

    def register_env(
        self, name: str, max_token_length: int, group_size: int, weight: float = 1.0, wait_s: float = 600.0
    ) -> dict[str, Any]:
        """Register this environment, waiting (up to ``wait_s``) for the trainer to register first."""
        body = {"max_token_length": max_token_length, "desired_name": name, "weight": weight, "group_size": group_size}
        deadline = time.monotonic() + wait_s
        while True:
            out = self._call("POST", "/register-env", body)
            if out.get("status") == "success":
                self.env_id = int(out["env_id"])
                return dict(out)
            if time.monotonic() > deadline:
                raise AtroposError(f"{self.url}: the trainer has not started within {wait_s:.0f}s ({out})")
            time.sleep(1)

    def info(self) -> dict[str, Any]:
        return dict(self._call("GET", "/info"))

    def status(self) -> dict[str, Any]:
        if self.env_id is None:
            raise AtroposError("register the environment first")
        return dict(self._call("GET", "/status-env", {"env_id": self.env_id}))

    def wait_for_room(
        self, group_size: int, max_batches_offpolicy: int = 3, poll_s: float = 1.0, wait_s: float = 3600.0
    ) -> None:
        """Block while the queue already holds ``max_batches_offpolicy`` batches the trainer has not taken."""
        batch = max(1, int(self.info().get("batch_size", 1)))
        deadline = time.monotonic() + wait_s
        while self.status().get("queue_size", 0) * group_size >= max_batches_offpolicy * batch:
            if time.monotonic() > deadline:
                raise AtroposError(f"the trainer took no batch for {wait_s:.0f}s")
            time.sleep(poll_s)

    def send(self, group: ScoredGroup) -> dict[str, Any]:
        return dict(self._call("POST", "/scored_data", self._payload(group)))

    def send_many(self, groups: list[ScoredGroup]) -> dict[str, Any]:
        return dict(self._call("POST", "/scored_data_list", [self._payload(g) for g in groups]))

    def _payload(self, group: ScoredGroup) -> dict[str, Any]:
        if group.mode != "managed":
            raise AtroposError("a trainer needs token ids: OpenAI-mode groups (messages and scores only) go to JSONL")
        return group.trainer_payload() | ({"env_id": self.env_id} if self.env_id is not None else {})


class JsonlSink:
    """``process`` mode: every group appended to a JSONL file, one line each; no server involved."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, group: ScoredGroup) -> None:
        append_record(self.path, group.model_dump(exclude_none=True))
