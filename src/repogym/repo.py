"""Open a repository from a directory, a tarball or a git URL, and work on isolated copies of it.

The user's repository is never modified: every operation runs in a working copy made by ``working_copy``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from repogym.errors import RepogymError

GIT_TIMEOUT_S = 600
# Fixed identity and dates make the base commit of a plain directory reproducible: same files, same sha.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "repogym",
    "GIT_AUTHOR_EMAIL": "repogym@localhost",
    "GIT_COMMITTER_NAME": "repogym",
    "GIT_COMMITTER_EMAIL": "repogym@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
    "GIT_TERMINAL_PROMPT": "0",
}


RUN_ARTIFACTS = ("*.egg-info/", "__pycache__/", ".pytest_cache/", ".coverage", ".coverage.*", ".hypothesis/")


class GitError(RepogymError):
    """A git command failed; the message carries git's own explanation."""


def cache_dir() -> Path:
    """Where clones, copies and environments are cached (``$REPOGYM_CACHE`` or ``~/.cache/repogym``)."""
    return Path(os.environ.get("REPOGYM_CACHE") or Path.home() / ".cache" / "repogym")


def git(args: list[str], cwd: Path | None = None, stdin: str | None = None, check: bool = True) -> str:
    """Run git with a timeout; raise GitError with git's stderr when it fails and ``check`` is set. Bytes,
    decoded by hand: text mode would turn a CRLF file's "\r\n" into "\n", and its diff would not apply."""
    out = git_bytes(args, cwd, stdin.encode() if stdin is not None else None, check)
    return out.decode(errors="replace")


def git_bytes(args: list[str], cwd: Path | None = None, stdin: bytes | None = None, check: bool = True) -> bytes:
    """``git`` with its output as git wrote it (a blob's content).

    The timeout is a timer that kills git's process group (git and what it started: a remote helper, a hook, an
    alias), not subprocess's own: with one, the wait after git closes its output polls with sleeps (1 ms or more on
    about a third of the calls, and validation made six calls a candidate)."""
    env = {**os.environ, **_GIT_ENV}
    with subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    ) as p:
        expired = threading.Event()

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)

        def expire() -> None:
            expired.set()
            kill()

        timer = threading.Timer(GIT_TIMEOUT_S, expire)
        timer.start()
        try:
            stdout, stderr = p.communicate(stdin)
        except BaseException:
            kill()
            raise
        finally:
            timer.cancel()
    if expired.is_set() and p.returncode == -signal.SIGKILL:
        raise GitError(f"git {args[0]} timed out after {GIT_TIMEOUT_S}s")
    if check and p.returncode != 0:
        err, out = stderr.decode(errors="replace").strip(), stdout.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:2])} failed: {err or out}")
    return stdout


@dataclass(frozen=True)
class RepoSource:
    """A repository opened for reading: a git directory to clone from, and the base commit."""

    git_dir: Path
    name: str
    commit_sha: str
    origin: str


def is_url(source: str) -> bool:
    return "://" in source or source.startswith("git@")


def open_repo(source: str | Path, ref: str | None = None, say: Callable[[str], None] | None = None) -> RepoSource:
    """Open REPO as the commands take it: a git work tree, a plain directory, a tarball or a git URL."""
    say = say or (lambda _msg: None)
    text = str(source)
    if is_url(text):
        return _open_url(text, ref)
    path = Path(text).expanduser()
    if not path.exists():
        raise RepogymError(f"{path}: no such file or directory (give a git repo, a directory, a tarball or a URL)")
    if path.is_file():
        return _open_tarball(path, ref)
    if _is_git_worktree(path):
        if ref is None and git(["status", "--porcelain", "--untracked-files=no"], cwd=path).strip():
            say(f"{path} has uncommitted changes; using its last commit (HEAD)")
        return _from_git(path, path.resolve().name, ref, str(path.resolve()))
    return _open_plain_dir(path, say)


def _is_git_worktree(path: Path) -> bool:
    out = git(["rev-parse", "--show-toplevel"], cwd=path, check=False).strip()
    return bool(out) and Path(out).resolve() == path.resolve()


def _from_git(git_path: Path, name: str, ref: str | None, origin: str) -> RepoSource:
    rev = f"{ref or 'HEAD'}^{{commit}}"
    sha = git(["rev-parse", "--verify", "--quiet", rev], cwd=git_path, check=False).strip()
    if not sha:
        raise RepogymError(f"{origin}: ref {ref or 'HEAD'!r} not found (is the repository empty?)")
    return RepoSource(git_dir=git_path.resolve(), name=name, commit_sha=sha, origin=origin)


def _open_plain_dir(path: Path, say: Callable[[str], None]) -> RepoSource:
    """Commit a copy of the directory; the copy is content-addressed (the commit's sha names it), so concurrent
    openers (threads, Ray workers) never disturb a copy another one is reading."""
    parent = _mkdir(cache_dir() / "plain")
    tmp = Path(tempfile.mkdtemp(prefix=".copy-", dir=parent)) / "repo"
    try:
        shutil.copytree(path, tmp, symlinks=True, ignore=shutil.ignore_patterns(".git", "__pycache__", ".venv"))
        git(["init", "-q", "-b", "main"], cwd=tmp)
        git(["add", "-A"], cwd=tmp)
        git(["commit", "-q", "--allow-empty", "-m", "repogym base"], cwd=tmp)
        sha = git(["rev-parse", "HEAD"], cwd=tmp).strip()
        copy = parent / f"{path.resolve().name}-{sha[:12]}"
        if not copy.exists():
            with contextlib.suppress(OSError):  # another opener won the race: its copy is the same commit
                tmp.rename(copy)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    say(f"{path} is not a git repository; committed a copy as the base at {copy}")
    return _from_git(copy, path.resolve().name, None, str(path.resolve()))


def _open_tarball(path: Path, ref: str | None) -> RepoSource:
    path = path.resolve()
    if not (path.name.endswith((".tar", ".tar.gz", ".tgz"))):
        raise RepogymError(f"{path}: not a directory or a .tar/.tar.gz tarball")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    dest = cache_dir() / "tarballs" / digest
    if not dest.exists():
        tmp = Path(tempfile.mkdtemp(dir=_mkdir(dest.parent)))
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as e:
            shutil.rmtree(tmp)
            raise RepogymError(f"{path}: cannot read the tarball ({e})") from e
        tmp.rename(dest)
    tops = [p for p in dest.iterdir() if not p.name.startswith("._")]
    if len(tops) != 1 or not tops[0].is_dir():
        names = ", ".join(sorted(p.name for p in tops)) or "nothing"
        raise RepogymError(f"{path}: a tarball must hold exactly one directory (a repo); it holds {names}")
    top = tops[0]
    if (top / "HEAD").exists() and (top / "objects").is_dir():
        return _from_git(top, _strip_git(top.name), ref, str(path))
    if (top / ".git").exists():
        return _from_git(top, top.name, ref, str(path))
    raise RepogymError(f"{path}: the directory {top.name!r} is neither a bare repo nor a repo with .git")


def _open_url(url: str, ref: str | None) -> RepoSource:
    m = re.search(r"([^/:]+)/([^/]+?)(?:\.git)?/?$", url)
    owner, name = (m.group(1), m.group(2)) if m else ("repo", "repo")
    dest = cache_dir() / "repos" / f"{owner}#{name}.git"
    if not dest.exists():
        tmp = Path(tempfile.mkdtemp(dir=_mkdir(dest.parent)))
        try:
            git(["clone", "-q", "--bare", url, str(tmp / "r.git")])
        except GitError as e:
            shutil.rmtree(tmp)
            raise RepogymError(f"{url}: cannot clone ({e}); check the URL and your network") from e
        (tmp / "r.git").rename(dest)
        shutil.rmtree(tmp)
    elif ref and not git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=dest, check=False):
        git(["fetch", "-q", "origin", ref], cwd=dest, check=False)
    return _from_git(dest, f"{owner}#{name}", ref, url)


def _strip_git(name: str) -> str:
    return name[:-4] if name.endswith(".git") else name


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def working_copy(src: RepoSource, dest: Path) -> Path:
    """Make an isolated working copy of ``src`` at its base commit under ``dest`` (which must not exist).

    A local clone hard-links the objects instead of pointing at them (--shared): a sandbox that hides the
    source's path (a private /tmp) still sees every object, and git works inside it.
    """
    git(["clone", "-q", "--no-checkout", str(src.git_dir), str(dest)])
    git(["checkout", "-q", "--detach", src.commit_sha], cwd=dest)
    _configure(dest)
    return dest


def _configure(wc: Path) -> None:
    # The committer, written straight into the fresh repository's config (two `git config` runs per working copy
    # were a quarter of the git processes of a task's checks).
    with (wc / ".git" / "config").open("a") as f:
        f.write("[user]\n\tname = repogym\n\temail = repogym@localhost\n")
    # Files that running tests or installing the project leave behind must never show up in a task's diffs.
    exclude = wc / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    exclude.write_text("\n".join(RUN_ARTIFACTS) + "\n")


def sealed_copy(src: RepoSource, src_diff: str, dest: Path, message: str = "task") -> Path:
    """A repository at ``dest`` with one commit, the task state (base + ``src_diff``), and nothing else.

    What an agent gets: no base commit, no other ref, tag, remote, reflog or stash, and no object but those of
    the task state, so no git command can bring back the code that ``src_diff`` removed. Only the objects
    reachable from a parentless commit are fetched (a local clone would hard-link every object of the source).
    A ``dest`` that exists is sealed in place: its ``.git`` is replaced and its files become the task state's,
    untracked ones removed (a kept working copy, see workspace.py). Raises GitError when ``src_diff`` does not
    apply.
    """
    in_place = dest.exists()
    with task_commit(src, src_diff, message) as (scratch, _commit):
        if (dest / ".git").exists():
            shutil.rmtree(dest / ".git")  # raises rather than leave an object behind
        git(["init", "-q", "-b", "main", str(dest)])
        git(["fetch", "-q", "--no-tags", "--update-head-ok", str(scratch), "main:refs/heads/main"], cwd=dest)
    git(["reset", "-q", "--hard", "main"], cwd=dest)
    if in_place:
        git(["clean", "-q", "-ff", "-d", "-x"], cwd=dest)  # -ff: a repository a test made goes too
    # FETCH_HEAD names the host path it came from; ORIG_HEAD and the reflog are noise. None may reach the agent.
    for name in ("FETCH_HEAD", "ORIG_HEAD"):
        (dest / ".git" / name).unlink(missing_ok=True)
    shutil.rmtree(dest / ".git" / "logs", ignore_errors=True)
    _configure(dest)
    return dest


@contextmanager
def task_commit(src: RepoSource, src_diff: str, message: str = "task") -> Iterator[tuple[Path, str]]:
    """(a scratch repository, its one parentless commit: the task state, at branch main), removed afterwards.

    Built without a working copy: the scratch repository borrows ``src``'s objects (git's alternates) and holds
    only what ``src_diff`` adds; its index is read from the base tree and ``src_diff`` is applied to it. Nothing
    is written to ``src``. Raises GitError when ``src_diff`` does not apply."""
    with tempfile.TemporaryDirectory(prefix="repogym-seal-") as tmp:
        scratch = Path(tmp) / "scratch"
        git(["init", "-q", "-b", "main", str(scratch)])
        (scratch / ".git" / "objects" / "info" / "alternates").write_text(f"{objects_dir(src.git_dir)}\n")
        git(["read-tree", src.commit_sha], cwd=scratch)
        apply_diff(scratch, src_diff, extra=["--cached"])
        tree = git(["write-tree"], cwd=scratch).strip()
        commit = git(["commit-tree", tree, "-m", message], cwd=scratch).strip()
        git(["update-ref", "refs/heads/main", commit], cwd=scratch)
        yield scratch, commit


@functools.lru_cache(maxsize=64)
def objects_dir(git_dir: Path) -> Path:
    """The object store of a repository (bare or not)."""
    out = Path(git(["rev-parse", "--git-path", "objects"], cwd=git_dir).strip())
    return out if out.is_absolute() else (git_dir / out).resolve()


@contextmanager
def _temp_root(src: RepoSource, prefix: str) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root / src.name.replace("#", "__")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def temp_working_copy(src: RepoSource, prefix: str = "repogym-wc-") -> Iterator[Path]:
    """A working copy in a temporary directory, removed afterwards."""
    with _temp_root(src, prefix) as dest:
        yield working_copy(src, dest)


@contextmanager
def temp_sealed_copy(
    src: RepoSource, src_diff: str, prefix: str = "repogym-task-", message: str = "task"
) -> Iterator[Path]:
    """A ``sealed_copy`` in a temporary directory, removed afterwards."""
    with _temp_root(src, prefix) as dest:
        yield sealed_copy(src, src_diff, dest, message)


def diff(wc: Path, base: str = "HEAD") -> str:
    """The unified diff of the working copy (tracked and new files) against ``base``."""
    git(["add", "-A"], cwd=wc)
    return git(["diff", "--cached", "--binary", base], cwd=wc)


_PLAIN_SECTION = re.compile(r"diff --git a/(\S+) b/(\S+)")


def reversed_diff(patch: str, paths: list[str]) -> str | None:
    """The sections of git's diff ``patch`` for ``paths``, taken back hunk by hunk: their exact inverse, in the form
    ``git diff -R`` prints (which is the same text but where its diff, not symmetric, aligns a hunk otherwise, or a
    hunk's function context differs). None where a section is not plain text edits, a new or a deleted file (a
    rename, a mode change, a binary file, a quoted path): git then has to say."""
    wanted, out = set(paths), []
    for section in re.split(r"(?m)^(?=diff --git )", patch):
        if not section:
            continue
        m = _PLAIN_SECTION.match(section.split("\n", 1)[0])
        if not m or m.group(1) != m.group(2) or section.split("\n", 1)[0] != m.group(0):
            return None
        if m.group(1) in wanted:
            taken_back = _reversed_section(section.split("\n"))
            if taken_back is None:
                return None
            out.append(taken_back)
    return "".join(out)


def _reversed_section(lines: list[str]) -> str | None:
    """One file's section (split at newlines only), reversed; None when it has a line this does not know."""
    out, i = [lines[0]], 1
    swap_mode = {"new file mode ": "deleted file mode ", "deleted file mode ": "new file mode "}
    old = new = ""
    while i < len(lines) and not lines[i].startswith("@@ "):
        line = lines[i]
        mode = next((k for k in swap_mode if line.startswith(k)), None)
        if mode:
            out.append(swap_mode[mode] + line[len(mode) :])
        elif m := re.fullmatch(r"index ([0-9a-f]+)\.\.([0-9a-f]+)( \d+)?", line):
            out.append(f"index {m.group(2)}..{m.group(1)}{m.group(3) or ''}")
        elif line.startswith("--- "):
            old = line[4:]
        elif line.startswith("+++ "):
            new = line[4:]
            out += ["--- " + ("a/" + new[2:] if new != "/dev/null" else new),
                    "+++ " + ("b/" + old[2:] if old != "/dev/null" else old)]  # fmt: skip
        elif line or i != len(lines) - 1:
            return None
        else:
            out.append(line)  # the end of a section without hunks (an empty file)
        i += 1
    removed: list[str] = []  # a run of changed lines, reversed: its removals come first, as git prints them
    added: list[str] = []
    last = out  # where the line before went: a "\\ No newline at end of file" follows it
    for k, line in enumerate(lines[i:], i):
        if line.startswith(("@@ ", " ")) or not line and k == len(lines) - 1:
            out += removed + added
            removed, added, last = [], [], out
            m = re.match(r"@@ -(\d+(?:,\d+)?) \+(\d+(?:,\d+)?) @@", line)
            if line.startswith("@@ ") and not m:
                return None
            out.append(f"@@ -{m.group(2)} +{m.group(1)} @@{line[m.end() :]}" if m else line)
        elif line.startswith("-"):
            added.append("+" + line[1:])
            last = added
        elif line.startswith("+"):
            removed.append("-" + line[1:])
            last = removed
        elif line.startswith("\\"):
            last.append(line)
        else:
            return None
    out += removed + added
    return "\n".join(out)


def apply_diff(
    wc: Path, patch: str, reverse: bool = False, check_only: bool = False, extra: list[str] | None = None
) -> None:
    """Apply a unified diff with git; a failure names the file and the hunk that did not apply."""
    if not patch.strip():
        return
    args = ["apply", "--whitespace=nowarn", *(extra or [])]
    args += (["-R"] if reverse else []) + (["--check"] if check_only else [])
    try:
        git([*args, "-"], cwd=wc, stdin=patch)
    except GitError as e:
        raise GitError(f"diff does not apply{' in reverse' if reverse else ''}: {_explain_apply(str(e))}") from e


def _explain_apply(msg: str) -> str:
    m = re.search(r"patch failed: (.+?):(\d+)", msg)
    if m:
        return f"{m.group(1)}: the hunk at line {m.group(2)} does not match"
    m = re.search(r"corrupt patch at line (\d+)", msg)
    if m:
        return f"corrupt patch at line {m.group(1)} of the diff"
    m = re.search(r"error: (.+?): (No such file|does not exist in index|already exists)", msg)
    if m:
        return f"{m.group(1)}: {m.group(2).lower()}"
    return msg.split("failed: ", 1)[-1]


def commit_all(wc: Path, message: str) -> str:
    """Commit every change in the working copy; returns the new commit sha."""
    git(["add", "-A"], cwd=wc)
    git(["commit", "-q", "--allow-empty", "--no-verify", "-m", message], cwd=wc)
    return git(["rev-parse", "HEAD"], cwd=wc).strip()


def changed_files(patch: str) -> list[str]:
    """Paths a unified diff touches (new side, or old side for deletions), in order."""
    files: list[str] = []
    for m in re.finditer(r"^diff --git [ab]/(\S+) [ab]/(\S+)$", patch, flags=re.M):
        if m.group(2) not in files:
            files.append(m.group(2))
    return files
