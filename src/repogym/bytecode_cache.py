"""The bytecode cache of a warm working copy's test runs, kept valid by content.

Every cold run compiles the project and rewrites its test modules from source (PYTHONDONTWRITEBYTECODE): on a
real project that is most of a selected run (more-itertools: parsing and rewriting tests/test_more.py takes about
0.25 s of a 0.4 s run). A warm copy runs hundreds of times, so its runs write bytecode where Python and pytest
put it, the copy's ``__pycache__`` folders, which its resets keep (``KEPT``; ``prune`` then drops what belongs to
no file left) and its diffs never see (they are in every working copy's info/exclude). Installed packages keep
their own compiled files (a cache prefix elsewhere would have every worker compile numpy anew). A repository that
tracks compiled files gets no cache: its runs would rewrite them into src.diff.

Python and pytest's assertion rewriter trust a cached file when the source's mtime (in whole seconds) and size
match it, and validation writes same-size versions of one file within a second (`<` for `>`). So before each
run every Python file of the copy gets an mtime drawn from its content and a key of the copy's own
(``stamp_sources``): two versions of a file share a stamp only when they share 29 bits of a keyed hash and their
size, and code in the copy cannot tell the stamp of a version it has not seen. Only repogym's own code runs in a
warm copy (its mutations, auto-validated tasks, gold patches); an agent's grade runs in a fresh copy, without one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from repogym.repo import git

CACHE_ENV = {"PYTHONDONTWRITEBYTECODE": ""}  # empty is unset: the runs write bytecode
KEPT = "__pycache__"  # what `git clean -e` keeps at a reset
STAMP_EPOCH = 1_000_000_000  # 2001: any write after that moves a file's mtime off its stamp
STAMP_RANGE = 2**29  # seconds (17 years): a stamp stays before 2019, long before any real write


def usable(wc: Path) -> bool:
    """Whether the copy can keep a cache: not when the repository tracks compiled files."""
    return not git(["ls-files", "--", "*.pyc", "*.pyo"], cwd=wc).strip()


def stamp_sources(root: Path, stamped: dict[str, tuple[int, int]], key: bytes) -> None:
    """Set the mtime of every Python file under ``root`` (symbolic links aside) from its content and ``key``
    (``stamp``)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", KEPT)]
        for name in filenames:
            if name.endswith(".py"):
                stamp(os.path.join(dirpath, name), stamped, key)


def stamp(path: str, stamped: dict[str, tuple[int, int]], key: bytes) -> None:
    """Set the mtime of Python file ``path`` from its content and ``key``. ``stamped`` (path -> the mtime and size
    it was given) skips a file untouched since: any write moves the mtime. A file that cannot be stamped (gone,
    unreadable) loses its cached bytecode instead."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or stamped.get(path) == (st.st_mtime_ns, st.st_size):
            return
        with open(path, "rb") as f:
            digest = hashlib.blake2b(f.read(), digest_size=8, key=key).digest()
        ns = (STAMP_EPOCH + int.from_bytes(digest, "big") % STAMP_RANGE) * 1_000_000_000
        os.utime(path, ns=(ns, ns), follow_symlinks=False)
        stamped[path] = (ns, st.st_size)
    except OSError:
        stamped.pop(path, None)
        folder, name = os.path.split(path)
        cache = Path(folder, KEPT)
        for cached in () if cache.is_symlink() else cache.glob(f"{name[:-3]}.*.pyc"):
            cached.unlink(missing_ok=True)


def prune(root: Path) -> None:
    """After a reset's clean: drop the compiled files whose source is gone, and the folders only they kept (a
    folder a test made would otherwise survive, as a namespace package, into the next candidate's runs)."""
    caches = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        if KEPT in dirnames:
            caches.append(Path(dirpath, KEPT))
            dirnames.remove(KEPT)
    for cache in reversed(caches):  # the deepest first: a folder emptied below can empty the one above
        if cache.is_symlink():  # never followed: it may point out of the copy
            cache.unlink()
        for entry in [] if not cache.is_dir() else list(cache.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif not (cache.parent / (entry.name.split(".", 1)[0] + ".py")).is_file():
                entry.unlink()
        folder = cache
        while folder != root and not (folder.is_dir() and any(folder.iterdir())):
            if folder.is_dir():
                folder.rmdir()
            folder = folder.parent
