"""The bytecode cache of a warm working copy's test runs, kept valid by content.

Every cold run compiles the project and rewrites its test modules from source (PYTHONDONTWRITEBYTECODE): on a
real project that is most of a selected run (more-itertools: parsing and rewriting tests/test_more.py takes about
0.25 s of a 0.4 s run). A warm copy runs hundreds of times, so its runs write bytecode where Python and pytest
put it, the copy's ``__pycache__`` folders, which its resets keep (``KEPT``) and its diffs never see (they are in
every working copy's info/exclude). Installed packages keep their own compiled files (a cache prefix elsewhere
would have every worker compile numpy anew).

Python and pytest's assertion rewriter trust a cached file when the source's mtime (in whole seconds) and size
match it, and validation writes same-size versions of one file within a second (`<` for `>`). So before each
run every Python file of the copy gets an mtime drawn from its content (``stamp_sources``): two versions of a
file share a stamp only when they share 29 bits of a hash and their size. Only repogym's own runs (validation,
the checks) use the cache; an agent's grade runs in a fresh copy, without one.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

CACHE_ENV = {"PYTHONDONTWRITEBYTECODE": ""}  # empty is unset: the runs write bytecode
KEPT = "__pycache__"  # what `git clean -e` keeps at a reset
STAMP_EPOCH = 1_000_000_000  # 2001: any write after that moves a file's mtime off its stamp
STAMP_RANGE = 2**29  # seconds (17 years): a stamp stays before 2019, long before any real write
SKIPPED_DIRS = {".git", KEPT}


def stamp_sources(root: Path, stamped: dict[str, tuple[int, int]]) -> None:
    """Set the mtime of every Python file under ``root`` (symbolic links aside) from its content. ``stamped``
    (path -> the mtime and size it was given) skips the files untouched since: any write moves the mtime."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
        for name in filenames:
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or stamped.get(path) == (st.st_mtime_ns, st.st_size):
                continue
            with open(path, "rb") as f:
                digest = hashlib.blake2b(f.read(), digest_size=8).digest()
            ns = (STAMP_EPOCH + int.from_bytes(digest, "big") % STAMP_RANGE) * 1_000_000_000
            os.utime(path, ns=(ns, ns), follow_symlinks=False)
            stamped[path] = (ns, st.st_size)
