"""Where units of work run: threads on this machine (`local`), or Ray tasks across a cluster (`ray`).

A stage hands its units (a candidate to validate, a task to check, an attempt) to ``Executor.run`` and gets each
result back in the calling thread as it completes, so the driver alone appends records and resume,
no-duplicates and kill-safety are the same whatever runs the work. With Ray, a worker process killed mid-unit
(or a node that leaves) makes Ray run the unit again elsewhere, at most ``max_retries`` times; after that the
unit's result is an ``InfrastructureFailure`` naming what happened, which the stage turns into a failed record
kept apart from task and model failures.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from repogym.errors import RepogymError

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'repogym[ray]'"


@dataclass
class InfrastructureFailure:
    """A unit that could not be run (its worker died every time), as opposed to a task that failed."""

    reason: str

    def __str__(self) -> str:
        return f"infrastructure failure: {self.reason}"


class Executor(ABC, Generic[T, R]):
    """Runs ``fn`` over units, at most ``workers`` at once; ``on_done(unit, result)`` runs in the caller."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    @abstractmethod
    def run(
        self, fn: Callable[[T], R], units: Iterable[T], on_done: Callable[[T, R | InfrastructureFailure], None]
    ) -> None: ...


class LocalExecutor(Executor[T, R]):
    """Threads: the units' work is subprocesses (sandboxes), so threads suffice on one machine."""

    def run(
        self, fn: Callable[[T], R], units: Iterable[T], on_done: Callable[[T, R | InfrastructureFailure], None]
    ) -> None:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures: dict[Future[R], T] = {pool.submit(fn, u): u for u in units}
            try:
                for fut in as_completed(futures):
                    on_done(futures[fut], fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


class RayExecutor(Executor[T, R]):
    """Each unit is a Ray task; at most ``workers`` are in flight, so results stream back as they finish."""

    def __init__(self, workers: int, address: str | None = None, max_retries: int = 3) -> None:
        super().__init__(workers)
        self.max_retries = max_retries
        self.ray = connect(address)

    def run(
        self, fn: Callable[[T], R], units: Iterable[T], on_done: Callable[[T, R | InfrastructureFailure], None]
    ) -> None:
        ray = self.ray
        # SPREAD: units go to every node with a free CPU, not to the driver's node first (Ray's default packs a
        # node before it spills over; a unit is sandboxes and test runs, and a cluster is there to share them)
        remote = ray.remote(max_retries=self.max_retries, retry_exceptions=False, scheduling_strategy="SPREAD")(apply)
        fn_ref = ray.put(fn)  # shipped once, not with every unit
        pending: dict[Any, T] = {}
        todo = iter(units)
        try:
            while True:
                while len(pending) < self.workers and (unit := next(todo, None)) is not None:
                    pending[remote.remote(fn_ref, unit)] = unit
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(done[0])
                on_done(unit, self._result(done[0]))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def _result(self, ref: Any) -> R | InfrastructureFailure:
        from ray.exceptions import RayError, RayTaskError

        try:
            result: R = self.ray.get(ref)
            return result
        except RayTaskError as e:
            raise e.as_instanceof_cause() from None  # the unit's own bug: not hidden as an infrastructure failure
        except RayError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return InfrastructureFailure(f"{type(e).__name__} after {self.max_retries} retries: {first}")


def apply(fn: Callable[[T], R], unit: T) -> R:
    """The Ray task of every unit (its process title reads ``ray::apply`` while it runs)."""
    return fn(unit)


def connect(address: str | None) -> Any:
    """Join the Ray cluster at ``address``, else the one running here, else start a local one (on loopback only).

    Raises RepogymError with the install command when Ray is missing, and when ``address`` does not answer.
    """
    if address is None and "ray" not in sys.modules and not _recorded_cluster():
        # A cluster of this machine alone: Ray must bind and dial loopback, not the machine's network address. The
        # setting is read when Ray is imported, so it is made before.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError as e:
        raise RepogymError(f"--executor ray needs Ray: run `{RAY_INSTALL}`") from e
    if ray.is_initialized():
        return ray
    env = {k: v for k, v in os.environ.items() if k.startswith(("REPOGYM_", "RAY_ENABLE"))}
    opts: dict[str, Any] = {
        "runtime_env": {"env_vars": env},
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "include_dashboard": False,
    }
    target = address or _running_cluster()
    if target is None:
        ray.init(**opts)
        return ray
    if not _answers(target):
        raise RepogymError(f"the Ray cluster at {target!r} does not answer; start it (`ray start --head`) or fix "
                           "--ray-address")  # fmt: skip
    ray.init(address=target, **opts)
    return ray


def _recorded_cluster() -> bool:
    """Whether `ray start` (or $RAY_ADDRESS) names a cluster on this machine."""
    return bool(os.environ.get("RAY_ADDRESS")) or (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").exists()


def _running_cluster() -> str | None:
    """The address of the cluster `ray start` left running here ($RAY_ADDRESS or Ray's own record), if it answers."""
    try:
        from ray._private.services import get_ray_address_from_environment

        found: str | None = get_ray_address_from_environment("auto", None)
    except Exception:  # no cluster recorded (Ray raises ConnectionError) or Ray's private API moved
        return None
    return found if found and _answers(found) else None


def _answers(address: str) -> bool:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return True
    except (OSError, ValueError):
        return False


def make_executor(name: str, workers: int, address: str | None = None) -> Executor[Any, Any]:
    """The executor named on the command line (``--executor``), with an error that lists the valid names."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(workers, address)
    raise RepogymError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
