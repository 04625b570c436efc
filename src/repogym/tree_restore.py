"""A kept working copy's reset to its commit by rewriting only the files that changed, without a git process.

git's reset (a mixed one that hashes every file again, then a hard one) was two of the three git processes of a
candidate's validation. A kept copy knows its commit's files (mode and blob id of each, from ``git ls-files -s``)
and what each looked like on disk after the last reset (``lstat``: inode, size, times, mode). Every write moves a
file's ctime, which no call can set back, so a file whose ``lstat`` is unchanged holds what it held, unless it
was written within one tick of the file system's clock of the recording: the files the reset itself wrote, which
the next reset checks by content (the blob id of what is there). A changed file gets its blob back (read once with
``git cat-file``, then from memory: validation changes the same few files again and again) and the index its copy
from the last reset by git (its stat data only tells git what it may skip; a file rewritten since is hashed).

Only where the blob is the file: a copy whose repository has attributes (``.gitattributes``, an attributes file
of git's configuration: filters, line-end conversion) or ``core.autocrlf`` is reset by git, as is one whose HEAD
moved or where a file cannot be put back (a folder made where a file was, a link or a file where a folder was).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

from repogym.repo import GitError, git, git_bytes

Signature = tuple[int, int, int, int, int]  # inode, size, mtime, ctime (ns), mode
BLOB_CACHE_BYTES = 64 << 20  # blobs kept in memory, all copies together; more are read from git each time

_blobs: dict[str, bytes] = {}  # blob id -> content (ids name content: one cache serves every repository)
_blobs_lock = threading.Lock()
_cached_bytes = 0


class TreeState:
    """The tracked files of commit ``sha`` in working copy ``wc`` (path -> mode and blob id, submodules aside), as
    the last reset left them."""

    def __init__(self, wc: Path, sha: str, blobs: dict[str, tuple[str, str]], folders: Iterable[str]) -> None:
        self.wc, self.sha, self.blobs = wc, sha, blobs
        self.folders = sorted(f for f in folders if f != ".")
        self.recorded: dict[str, Signature] = {}
        self.racy: set[str] = set()
        self.index = b""

    @staticmethod
    def applies(wc: Path, paths: Iterable[str]) -> bool:
        """Whether every tracked file is its blob, byte for byte: no attributes, no line-end conversion."""
        if any(p.rsplit("/", 1)[-1] == ".gitattributes" for p in paths) or (wc / ".git/info/attributes").exists():
            return False
        found = git(["config", "--get-regexp", r"^core\.(autocrlf|attributesfile)$"], cwd=wc, check=False)
        settings = dict(line.partition(" ")[::2] for line in found.lower().splitlines())  # a bare key: true
        return "core.attributesfile" not in settings and settings.get("core.autocrlf", "false") == "false"

    def record(self, paths: Iterable[str] | None = None) -> None:
        """The ``lstat`` of ``paths`` as they are now, after a reset that wrote them (all of them, and the index:
        after git's reset); until the next reset has looked at their content, they are racy."""
        if paths is None:
            self.index = (self.wc / ".git" / "index").read_bytes()
            self.recorded, paths = {}, list(self.blobs)
        written = list(paths)
        for rel in written:
            try:
                self.recorded[rel] = _signature(os.lstat(self.wc / rel))
            except OSError:
                self.recorded.pop(rel, None)
        self.racy = set(written)

    def restore(self) -> list[str] | None:
        """Put back each tracked file that changed since the last record, and the index; the files written, or
        None when only git's reset can do it (nothing recorded, HEAD moved, a file that cannot be put back)."""
        if not self.index or _head(self.wc) != self.sha or not self._folders_hold():
            return None
        changed = []
        for rel, (mode, oid) in self.blobs.items():
            try:
                st = os.lstat(self.wc / rel)
            except FileNotFoundError:
                changed.append(rel)
                continue
            except OSError:  # a file where a folder of the path was
                return None
            moved = _signature(st) != self.recorded.get(rel)
            if moved or rel in self.racy and not _holds(self.wc / rel, st, mode, oid):
                changed.append(rel)
        try:
            contents = _read_blobs(self.wc, [self.blobs[rel][1] for rel in changed])
            for rel in changed:
                _write(self.wc / rel, self.blobs[rel][0], contents[self.blobs[rel][1]])
            index = self.wc / ".git" / "index"
            index.with_name("index.repogym").write_bytes(self.index)
            os.replace(index.with_name("index.repogym"), index)
        except (OSError, GitError):
            return None
        return changed

    def _folders_hold(self) -> bool:
        """Whether each folder of the commit is a folder or gone, never a link or a file: a file's path through a
        link (a folder a test replaced) would be read, and written, where the link points."""
        for rel in self.folders:
            try:
                if not stat.S_ISDIR(os.lstat(self.wc / rel).st_mode):
                    return False
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return True


def _signature(st: os.stat_result) -> Signature:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode


def _head(wc: Path) -> str:
    try:
        return (wc / ".git" / "HEAD").read_text().strip()
    except OSError:
        return ""


def _holds(path: Path, st: os.stat_result, mode: str, oid: str) -> bool:
    """Whether ``path`` is what git would check out for the entry (its type, executable bit and content)."""
    if mode == "120000":
        if not stat.S_ISLNK(st.st_mode):
            return False
        content = os.fsencode(os.readlink(path))
    else:
        if not stat.S_ISREG(st.st_mode) or bool(st.st_mode & stat.S_IXUSR) != (mode == "100755"):
            return False
        content = path.read_bytes()
    digest = hashlib.sha1 if len(oid) == 40 else hashlib.sha256  # noqa: S324 - git's object ids, not security
    return digest(b"blob %d\0" % len(content) + content).hexdigest() == oid


def _read_blobs(wc: Path, oids: list[str]) -> dict[str, bytes]:
    """The content of each blob, from memory or from one ``git cat-file --batch``."""
    global _cached_bytes
    with _blobs_lock:
        out = {oid: _blobs[oid] for oid in oids if oid in _blobs}
    missing = sorted(set(oids) - set(out))
    if not missing:
        return out
    data, at = git_bytes(["cat-file", "--batch"], cwd=wc, stdin="".join(f"{o}\n" for o in missing).encode()), 0
    for oid in missing:
        header_end = data.find(b"\n", at)
        header = data[at:header_end].split()
        if len(header) != 3 or header[1] != b"blob":
            raise GitError(f"git cat-file could not read blob {oid} in {wc}")
        size = int(header[2])
        out[oid] = data[header_end + 1 : header_end + 1 + size]
        at = header_end + 1 + size + 1
    with _blobs_lock:
        for oid in missing:
            if _cached_bytes + len(out[oid]) <= BLOB_CACHE_BYTES:
                _blobs[oid] = out[oid]
                _cached_bytes += len(out[oid])
    return out


def _write(path: Path, mode: str, content: bytes) -> None:
    """Put the entry back as git checks it out: a new file (or link) in place of whatever is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "120000":
        os.symlink(os.fsdecode(content), path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777 if mode == "100755" else 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
