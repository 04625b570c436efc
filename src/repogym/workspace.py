"""Where validation and the checks run tests: a working copy at the base commit (validation, checks 1-2) or a
sealed copy of a task state (check 3, as an agent's grade sees it), and the test runs over it.

Cold: a fresh copy per candidate and a fresh sandbox per run, as in every other stage. Warm: a pool keeps copies
of each kind, each serving one caller at a time, reset between candidates (to the base with git reset and clean,
or sealed anew; the private /tmp emptied), and one sandbox per copy whose server has imported pytest, so that a
run is a fork (sandbox/session_server.py). A workflow keeps the pool open from before synthesis to the end of the
checks: validation's copies open while the coverage map runs, and checks 1-2 reuse them.
A small suite's run is mostly the interpreter's start and pytest's import: warm, the example's selected run
takes 0.07 s instead of 0.26 s. A suite that is not plain pytest, or a backend without sessions, runs cold in
the warm working copy.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from repogym import bytecode_cache, env_venv
from repogym.environment import EnvSpec, open_env_sandbox, run_tests
from repogym.repo import (
    RUN_ARTIFACTS,
    RepoSource,
    diff,
    git,
    sealed_copy,
    temp_sealed_copy,
    temp_working_copy,
    working_copy,
)
from repogym.sandbox import Sandbox
from repogym.testresults import TestRun
from repogym.tree_restore import TreeState

SERVER_FILES = "repogym-session-"  # the warm server's output files, in the private /tmp
WARM_PREFIX = "repogym-warm-"  # + the owning process's id: a dead owner's copy is removed by the next one


class Workspace:
    """A working copy and how to run its suite: in a sandbox of its own per run, or in a kept warm one."""

    def __init__(
        self, spec: EnvSpec, wc: Path, sandbox: Sandbox | None = None, native_tracebacks: bool = False
    ) -> None:
        self.spec, self.wc, self.sandbox, self.native_tracebacks = spec, wc, sandbox, native_tracebacks
        self.bytecode = sandbox is not None and bytecode_cache.usable(wc)  # a kept copy's runs keep their bytecode
        self._stamped: dict[str, tuple[int, int]] = {}
        self._tracked: dict[str, Tracked | None] = {}  # commit -> its files, for the resets' clean
        self._trees: dict[str, TreeState] = {}  # commit -> its files as the last reset left them
        self._key = os.urandom(16)

    def run(self, timeout_s: float, select: list[str] | None = None) -> TestRun:
        """The suite (or the ``select``ed tests) over the working copy as it is now; a kept copy's runs share a
        bytecode cache (bytecode_cache.py)."""
        native = self.native_tracebacks
        if self.sandbox is None:
            with open_env_sandbox(self.spec, self.wc) as sb:
                return run_tests(self.spec, sb, timeout_s, select=select, native_tracebacks=native)
        env = None
        if self.bytecode:
            bytecode_cache.stamp_sources(self.wc, self._stamped, self._key)
            env = bytecode_cache.CACHE_ENV
        return run_tests(self.spec, self.sandbox, timeout_s, select=select, env=env, native_tracebacks=native)

    def diff(self, sha: str) -> str:
        """The copy's change against ``sha``, new files included (repo.diff). A kept copy whose reset listed what
        ``sha`` tracks diffs its working tree with one git process when nothing new is there: staging first, as
        repo.diff must for new files, takes a second (six a candidate made)."""
        tracked = self._tracked.get(sha)
        keep = bytecode_cache.KEPT if self.bytecode else None
        if tracked is None or any(
            rel not in self.spec.overlay and not _git_ignores(entry)
            for rel, entry in tracked.untracked(self.wc, keep, replaced=True)
        ):
            return diff(self.wc, sha)  # something new, maybe ignored: git decides
        return git(["diff", "--binary", sha], cwd=self.wc)

    def seal(self, src: RepoSource, src_diff: str) -> None:
        """Become a sealed copy of ``src``'s task state (repo.sealed_copy, in place), with an empty /tmp."""
        sealed_copy(src, src_diff, self.wc)
        self._tidy()

    def reset(self, sha: str) -> None:
        """Back to commit ``sha`` with nothing else: no change, no file a test left (the bytecode cache aside,
        see bytecode_cache.py), an empty /tmp.

        Once git has reset the copy, the files that changed since are rewritten from their blobs without it
        (tree_restore.py). git's reset drops the index first: git's index trusts file stat data, and an edit that
        keeps a file's size within the same timestamp tick as the last reset looks unchanged to it (seen on
        pluggy: another task's change survived `reset --hard`); the mixed reset rebuilds it by hashing every
        file, and the hard reset then rewrites exactly the files whose content differs."""
        tree = self._trees.get(sha)
        written = tree.restore() if tree is not None else None
        if written is None:
            (self.wc / ".git" / "index").unlink(missing_ok=True)
            git(["reset", "-q", sha], cwd=self.wc)
            git(["reset", "-q", "--hard", sha], cwd=self.wc)
        keep = bytecode_cache.KEPT if self.bytecode else None
        if sha not in self._tracked:
            listing = git(["ls-files", "-s", "-z"], cwd=self.wc)
            self._tracked[sha] = Tracked(listing) if "\ufffd" not in listing else None  # names not UTF-8: git cleans
        tracked = self._tracked[sha]
        if tracked is None:
            git(["clean", "-q", "-ff", "-d", "-x", *(["-e", keep] if keep else [])], cwd=self.wc)
        else:
            tracked.clean(self.wc, keep)
        if self.bytecode:
            bytecode_cache.prune(self.wc)
            for rel in written or ():
                if rel.endswith(".py"):  # stamped now, so that the next run leaves it as recorded
                    bytecode_cache.stamp(str(self.wc / rel), self._stamped, self._key)
        if written is not None and tree is not None:
            tree.record(written)
        elif tracked is not None and TreeState.applies(self.wc, tracked.paths):
            self._trees[sha] = TreeState(self.wc, sha, tracked.blobs, tracked.folders)
            self._trees[sha].record()
        self._tidy()

    def _tidy(self) -> None:
        """The environment's overlay back in place, and the private /tmp emptied (the server's files aside)."""
        env_venv.place_overlay(self.spec, self.wc)
        if self.sandbox is not None:
            kept = _mount_points(self.sandbox)
            for entry in self.sandbox.tmp_dir.iterdir():
                if entry.name.startswith(SERVER_FILES) or entry.name in kept:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        shutil.rmtree(self.wc.parent, ignore_errors=True)


class Tracked:
    """The paths a commit tracks (from ``git ls-files -s -z``), and the folders that hold them: what a reset's
    clean keeps, and what tells a kept copy's diff that something new is there."""

    def __init__(self, listing: str) -> None:
        entries = [line.split("\t", 1) for line in listing.split("\0") if "\t" in line]
        self.paths = frozenset(path for _, path in entries)
        self.submodules = frozenset(path for head, path in entries if head.startswith("160000 "))
        # path -> (mode, blob id) of each file and link, stage 0 (a reset leaves no conflict)
        self.blobs = {path: (head[:6], head[7:].split()[0]) for head, path in entries if path not in self.submodules}
        self.folders = frozenset(str(parent) for p in self.paths for parent in PurePosixPath(p).parents)

    def clean(self, root: Path, keep: str | None = None) -> None:
        """What ``git clean -ffdx [-e KEEP]`` does after a hard reset, followed by bytecode_cache.prune, without a
        git process (one of six a candidate made): remove every file, link and folder the commit does not track
        (ignored ones too, and repositories a test made); what is named ``keep`` stays where the commit tracks its
        folder. Links are removed, never followed."""
        for _rel, entry in self.untracked(root, keep):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)

    def untracked(
        self, root: Path, keep: str | None = None, replaced: bool = False
    ) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """The entries under ``root`` the commit does not track (a folder whole, not what is in it), with their
        paths, ``.git`` and anything named ``keep`` aside; with ``replaced``, also a tracked file that is now a
        folder (whose files would be new)."""
        stack = [""]
        while stack:
            folder = stack.pop()
            with os.scandir(root / folder) as it:
                entries = list(it)
            for entry in entries:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                if rel == ".git" or entry.name == keep:
                    continue
                if rel in self.paths:
                    if replaced and rel not in self.submodules and entry.is_dir(follow_symlinks=False):
                        yield rel, entry
                elif rel in self.folders and entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                else:
                    yield rel, entry


def _git_ignores(entry: os.DirEntry[str]) -> bool:
    """Whether every working copy's info/exclude (repo.RUN_ARTIFACTS) ignores the entry: a pattern ending in `/`
    names folders only."""
    is_dir = entry.is_dir(follow_symlinks=False)
    return any(fnmatch(entry.name, p.rstrip("/")) and (is_dir or not p.endswith("/")) for p in RUN_ARTIFACTS)


def _mount_points(sandbox: Sandbox) -> set[str]:
    """The entries of the private /tmp that hold a path bound into it (a virtualenv under /tmp, as in tests):
    removing one from the host would unmount it inside the running sandbox."""
    binds: dict[str, str] = getattr(sandbox, "ro_binds", None) or {}
    return {Path(inside).relative_to("/tmp").parts[0] for inside in binds.values() if inside.startswith("/tmp/")}


Key = tuple[str, str, str, bool]  # repository, commit, environment, sealed or not


class _Pool:
    """The warm workspaces no caller is using, by kind, and how many of each kind are being opened ahead of
    need. A workspace serves one caller at a time, on whichever thread, and goes back when the caller is done.
    ``generation`` moves on when the pool is closed: a workspace in use or being opened then is closed when it
    comes back."""

    def __init__(self) -> None:
        self.idle: dict[Key, list[Workspace]] = {}
        self.opening: Counter[Key] = Counter()
        self.generation = 0
        self.scopes = 0
        self.changed = threading.Condition()

    def take(self, key: Key) -> tuple[Workspace | None, int]:
        """An idle workspace of this kind, after waiting for those being opened (None: open one), and the
        generation to give it back under."""
        with self.changed:
            while not self.idle.get(key) and self.opening[key] > 0:
                self.changed.wait()
            ws = self.idle[key].pop() if self.idle.get(key) else None
            return ws, self.generation

    def give(self, key: Key, ws: Workspace | None, generation: int, opened_ahead: bool = False) -> None:
        """Back into the pool (``ws`` None: an opening ahead of need that failed); closed if the pool was."""
        with self.changed:
            if opened_ahead:
                self.opening[key] -= 1
            usable = ws is not None and ws.sandbox is not None and not ws.sandbox.closed
            if ws is not None and usable and generation == self.generation:
                self.idle.setdefault(key, []).append(ws)
                ws = None
            self.changed.notify_all()
        if ws is not None:
            ws.close()

    def close(self, unless_kept: bool = False) -> None:
        """Close the idle copies (and, when given back, those in use or being opened); ``unless_kept``: only when
        no scope keeps them, decided in the same hold of the lock as the closing."""
        with self.changed:
            if unless_kept and self.scopes > 0:
                return
            kept = [ws for idle in self.idle.values() for ws in idle]
            self.idle.clear()
            self.generation += 1
            self.changed.notify_all()
        for ws in kept:
            ws.close()


_pool = _Pool()


@contextmanager
def workspace(
    src: RepoSource, spec: EnvSpec, warm: bool, prefix: str = "repogym-validate-", sealed: str | None = None
) -> Iterator[Workspace]:
    """A working copy of ``src`` at its base, or with ``sealed`` (a src.diff) a sealed copy of that task state
    (repo.sealed_copy): a warm one from the pool (reset, or sealed anew; opened when none is free), or a fresh one
    removed afterwards. Their runs (validation's and the checks') report failures in Python's format (see
    environment.run_tests)."""
    if not warm:
        with (
            temp_working_copy(src, prefix=prefix) if sealed is None else temp_sealed_copy(src, sealed, prefix=prefix)
        ) as wc:
            yield Workspace(spec, wc, native_tracebacks=True)
        return
    key = _key(src, spec, sealed is not None)
    ws, generation = _pool.take(key)
    if ws is not None and (ws.sandbox is None or ws.sandbox.closed):
        ws.close()  # its server died while it waited
        ws = None
    try:
        if ws is None:
            ws = _open(src, spec, sealed)
        elif sealed is None:
            ws.reset(src.commit_sha)
        else:
            ws.seal(src, sealed)
    except BaseException:
        if ws is not None:
            ws.close()  # half reset or sealed: never the next caller's
        raise
    try:
        yield ws
    finally:
        _pool.give(key, ws, generation)


def _key(src: RepoSource, spec: EnvSpec, sealed: bool) -> Key:
    return str(src.git_dir), src.commit_sha, spec.key, sealed


def _open(src: RepoSource, spec: EnvSpec, sealed: str | None) -> Workspace:
    """A new warm workspace: its own copy, and a sandbox over it whose server has imported pytest."""
    _sweep_orphans()
    root = Path(tempfile.mkdtemp(prefix=f"{WARM_PREFIX}{os.getpid()}-"))
    dest = root / src.name.replace("#", "__")
    try:
        wc = working_copy(src, dest) if sealed is None else sealed_copy(src, sealed, dest)
        return Workspace(spec, wc, open_env_sandbox(spec, wc, warm=True), native_tracebacks=True)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def open_ahead(src: RepoSource, spec: EnvSpec, count: int) -> list[threading.Thread]:
    """Start opening ``count`` warm workspaces at ``src``'s base in the background, for a stage that comes
    later (the workflow's validation and checks open theirs while the coverage map and synthesis run, on the core
    they leave idle); the threads that open them. A stage that wants one waits for those still opening; one that
    fails to open is left to the stage, which opens its own and meets the error there."""
    key = _key(src, spec, False)
    with _pool.changed:
        _pool.opening[key] += count
        generation = _pool.generation

    def open_one() -> None:
        ws = None
        try:
            ws = _open(src, spec, None)
            if ws.sandbox is not None:
                ws.sandbox.start()
        except Exception:  # noqa: BLE001, S110 - the stage opens its own and reports the error
            pass
        finally:
            _pool.give(key, ws, generation, opened_ahead=True)

    threads = [threading.Thread(target=open_one, name="repogym-open-ahead", daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


@contextmanager
def kept_warm() -> Iterator[None]:
    """Warm workspaces stay open while a caller is inside this; the last one out closes them. A stage run alone
    closes its own at its end; a workflow around its stages lets the checks reuse validation's copies."""
    with _pool.changed:
        _pool.scopes += 1
    try:
        yield
    finally:
        with _pool.changed:
            _pool.scopes -= 1
        _pool.close(unless_kept=True)


def _sweep_orphans() -> None:
    """Remove the warm working copies of processes that are gone (a Ray worker killed without running atexit)."""
    for root in Path(tempfile.gettempdir()).glob(f"{WARM_PREFIX}*-*"):
        pid = root.name.removeprefix(WARM_PREFIX).split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(root, ignore_errors=True)
        except PermissionError:
            continue  # alive, someone else's


def close_warm() -> None:
    """Close every warm workspace (their sandboxes and working copies); those in use close when given back."""
    _pool.close()


atexit.register(close_warm)
