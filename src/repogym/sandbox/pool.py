"""A pool of sandbox slots for concurrent rollouts.

A slot is a directory with a sandbox over it (for bwrap a whole sandbox: one is cheap). The pool caps how many
sandboxes are being created at once (an unbounded burst of creation is a known cause of deadlocks), checks a
slot's health when it comes back, and replaces a dead sandbox without touching the other slots' rollouts.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repogym.errors import SandboxError
from repogym.sandbox.base import Sandbox


@dataclass
class Slot:
    index: int
    dir: Path
    sandbox: Sandbox | None = None

    @property
    def repo(self) -> Path:
        """Where the rollout's working copy goes (the sandbox's /repo)."""
        return self.dir / "repo"


class SandboxPool:
    """``size`` slots; ``acquire`` waits for a free one, ``release`` resets it for the next rollout."""

    def __init__(self, factory: Callable[[Path], Sandbox], size: int, max_creating: int = 4, root: Path | None = None):
        self.factory = factory
        self.root = Path(tempfile.mkdtemp(prefix="repogym-pool-", dir=root))
        self.free: asyncio.Queue[Slot] = asyncio.Queue()
        for k in range(size):
            self.free.put_nowait(Slot(k, self.root / f"slot{k}"))
        self.creating = asyncio.Semaphore(max_creating)
        self.replaced = 0
        self.created = 0
        self.size = size
        self.busy_seconds = 0.0  # slot-seconds between acquire and release: how full the pool was kept
        self.opened = time.monotonic()
        self._since: dict[int, float] = {}

    async def acquire(self, prepare: Callable[[Path], None]) -> Slot:
        """A slot whose /repo was filled by ``prepare(repo_dir)`` and whose sandbox is fresh."""
        slot = await self.free.get()
        self._since[slot.index] = time.monotonic()
        try:
            async with self.creating:
                await asyncio.to_thread(self._fill, slot, prepare)
        except BaseException:
            self._free(slot)
            raise
        return slot

    def _free(self, slot: Slot) -> None:
        self.busy_seconds += time.monotonic() - self._since.pop(slot.index, time.monotonic())
        self.free.put_nowait(slot)

    def busy_mean(self) -> float:
        """Slots busy on average since the pool opened (``size`` would be a pool never idle)."""
        elapsed = time.monotonic() - self.opened
        return self.busy_seconds / elapsed if elapsed > 0 else 0.0

    def _fill(self, slot: Slot, prepare: Callable[[Path], None]) -> None:
        shutil.rmtree(slot.dir, ignore_errors=True)
        slot.dir.mkdir(parents=True)
        prepare(slot.repo)
        slot.repo.mkdir(exist_ok=True)
        slot.sandbox = self.factory(slot.repo)
        self.created += 1

    def healthy(self, slot: Slot) -> bool:
        if slot.sandbox is None:
            return False
        try:
            return slot.sandbox.exec("true", timeout_s=30).exit_code == 0
        except SandboxError:
            return False

    async def release(self, slot: Slot) -> None:
        """Close the slot's sandbox; a dead one is counted as replaced (the next acquire builds a new one)."""
        if not await asyncio.to_thread(self.healthy, slot):
            self.replaced += 1
        if slot.sandbox is not None:
            slot.sandbox.close()
            slot.sandbox = None
        await asyncio.to_thread(shutil.rmtree, slot.dir, True)
        self._free(slot)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
