from __future__ import annotations

import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from conftest import git, make_git_repo

from repogym import repo
from repogym.errors import RepogymError
from repogym.grading import gold_patch
from repogym.records import ValidatedRecord
from repogym.repo import apply_diff, diff, open_repo, temp_sealed_copy, temp_working_copy


def test_open_worktree_and_copy_is_isolated(scheme_repo: Path) -> None:
    src = repo.open_repo(scheme_repo)
    assert src.commit_sha == git(scheme_repo, "rev-parse", "HEAD").strip()
    with repo.temp_working_copy(src) as wc:
        (wc / "scheme" / "types.py").write_text("broken\n")
        repo.commit_all(wc, "change")
    assert "broken" not in (scheme_repo / "scheme" / "types.py").read_text()
    assert git(scheme_repo, "status", "--porcelain") == ""


def test_plain_directory_is_committed_as_base(scheme_copy: Path) -> None:
    said: list[str] = []
    src = repo.open_repo(scheme_copy, say=said.append)
    assert "not a git repository" in said[0]
    assert not (scheme_copy / ".git").exists()
    again = repo.open_repo(scheme_copy)
    assert again.commit_sha == src.commit_sha, "the same files give the same base commit"
    with repo.temp_working_copy(src) as wc:
        assert (wc / "scheme" / "evaluator.py").is_file()


def test_tarball_with_git_dir_and_bare(scheme_repo: Path, tmp_path: Path) -> None:
    tar_path = tmp_path / "with_git.tar.gz"
    with tarfile.open(tar_path, "w:gz") as t:
        t.add(scheme_repo, arcname="scheme_interpreter")
    assert repo.open_repo(tar_path).commit_sha == git(scheme_repo, "rev-parse", "HEAD").strip()

    bare = tmp_path / "bare" / "scheme_interpreter.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(scheme_repo), str(bare)], check=True)
    bare_tar = tmp_path / "bare.tar"
    with tarfile.open(bare_tar, "w") as t:
        t.add(bare, arcname="scheme_interpreter.git")
    src = repo.open_repo(bare_tar)
    assert src.name == "scheme_interpreter"
    with repo.temp_working_copy(src) as wc:
        assert (wc / "pyproject.toml").is_file()


def test_tarball_with_two_directories_is_refused(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / "src" / d).mkdir(parents=True)
    tar_path = tmp_path / "two.tar"
    with tarfile.open(tar_path, "w") as t:
        t.add(tmp_path / "src" / "a", arcname="a")
        t.add(tmp_path / "src" / "b", arcname="b")
    with pytest.raises(RepogymError, match="exactly one directory.*a, b"):
        repo.open_repo(tar_path)


def test_git_url_with_ref_is_cached(scheme_repo: Path) -> None:
    first = git(scheme_repo, "rev-parse", "HEAD").strip()
    (scheme_repo / "NEW").write_text("x")
    git(scheme_repo, "add", "-A")
    git(scheme_repo, "commit", "-q", "-m", "second")
    url = f"file://{scheme_repo}"
    head = repo.open_repo(url)
    assert head.name.endswith("#scheme_interpreter")
    older = repo.open_repo(url, ref=first)
    assert older.commit_sha == first and older.git_dir == head.git_dir


def test_url_that_cannot_be_cloned(tmp_path: Path) -> None:
    with pytest.raises(RepogymError, match="cannot clone"):
        repo.open_repo(f"file://{tmp_path}/nowhere/repo.git")


def test_missing_path() -> None:
    with pytest.raises(RepogymError, match="no such file or directory"):
        repo.open_repo("/does/not/exist")


def test_apply_diff_names_file_and_hunk(scheme_repo: Path) -> None:
    src = repo.open_repo(scheme_repo)
    with repo.temp_working_copy(src) as wc:
        path = wc / "scheme" / "printer.py"
        path.write_text(path.read_text().replace('return "#t"', 'return "#true"'))
        d = repo.diff(wc)
        assert repo.changed_files(d) == ["scheme/printer.py"]
        repo.apply_diff(wc, d, reverse=True)
        assert 'return "#t"' in path.read_text()
        path.write_text("completely different\n")
        with pytest.raises(repo.GitError, match=r"scheme/printer.py: the hunk at line \d+ does not match"):
            repo.apply_diff(wc, d)
        with pytest.raises(repo.GitError, match="corrupt patch"):
            repo.apply_diff(wc, "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\ngarbage\n")


def test_the_gold_patch_restores_files_with_spaces_renames_and_keeps_the_tests(tmp_path: Path) -> None:
    """The gold patch is reverse(src.diff) outside the files tests.diff touches, whatever their names."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "my mod.py").write_text("x = 1\n")
    (root / "b.py").write_text("".join(f"y{i} = {i}\n" for i in range(20)))
    (root / "test_b.py").write_text("def test_b():\n    pass\n")
    src = open_repo(make_git_repo(root, tmp_path / "repo"))
    with temp_working_copy(src) as wc:
        (wc / "my mod.py").write_text("x = 2\n")
        git(wc, "mv", "b.py", "c.py")
        (wc / "test_b.py").write_text("")
        src_diff = diff(wc)
    tests_diff = "diff --git a/test_b.py b/test_b.py\n"  # touches the test file: its part of src.diff stays
    rec = ValidatedRecord(
        task_id="t/1", repo=str(tmp_path / "repo"), **{"src.diff": src_diff, "tests.diff": tests_diff}
    )
    with temp_sealed_copy(src, src_diff) as wc:
        apply_diff(wc, gold_patch(src, rec))
        assert (wc / "my mod.py").read_text() == "x = 1\n"
        assert (wc / "b.py").is_file() and not (wc / "c.py").exists()
        assert (wc / "test_b.py").read_text() == ""


def test_a_diff_taken_back_is_what_git_prints_with_R(tmp_path: Path) -> None:
    """reversed_diff gives, for the files asked, what `git diff -R` gives: edits at the start, middle and end, a
    file that loses its last newline or gains one, CRLF lines, a deleted file, a new and an empty new file; other
    files are left out. A rename or a binary file is git's to say (None)."""
    src = tmp_path / "src"
    (src / "tests").mkdir(parents=True)
    body = "".join(f"def test_{i}():\n    assert {i} == {i}\n\n\n" for i in range(30))
    (src / "tests" / "test_a.py").write_text(body)
    (src / "tests" / "test_b.py").write_text("x = 1\ny = 2")
    (src / "tests" / "test_c.py").write_text("x = 1\ny = 2\n")
    (src / "tests" / "test_crlf.py").write_bytes(b"a = 1\r\nb = 2\r\nc = 3\r\n")
    (src / "tests" / "test_gone.py").write_text("def test_gone():\n    pass\n")
    (src / "lib.py").write_text("X = 1\n")
    (src / "logo.bin").write_bytes(bytes(range(256)))
    wc = make_git_repo(src, tmp_path / "wc")
    base = git(wc, "rev-parse", "HEAD").strip()
    lines = body.splitlines(keepends=True)
    (wc / "tests" / "test_a.py").write_text("".join(lines[4:40] + ["# moved\n"] + lines[52:100] + lines[110:]))
    (wc / "tests" / "test_b.py").write_text("x = 1\ny = 3\n")
    (wc / "tests" / "test_c.py").write_text("x = 1\ny = 3")
    (wc / "tests" / "test_crlf.py").write_bytes(b"a = 1\r\nc = 3\r\n")
    (wc / "tests" / "test_gone.py").unlink()
    (wc / "tests" / "test_new.py").write_text("def test_new():\n    pass\n")
    (wc / "tests" / "test_empty.py").write_text("")
    (wc / "lib.py").write_text("X = 2\n")
    forward = diff(wc, base)
    tests = ["tests/test_a.py", "tests/test_b.py", "tests/test_c.py", "tests/test_crlf.py", "tests/test_empty.py",
             "tests/test_gone.py", "tests/test_new.py"]  # fmt: skip
    by_git = repo.git(["diff", "--cached", "--binary", "-R", "--src-prefix=b/", "--dst-prefix=a/", base, "--", *tests],
                      cwd=wc)  # fmt: skip
    assert repo.reversed_diff(forward, tests) == by_git
    assert "lib.py" not in by_git and "\r\n" in by_git and "No newline at end of file" in by_git
    shuffled = "".join(lines[:8] + lines[4:8] + lines[:4] + lines[8:])  # repeated lines: alignments git may choose
    (wc / "tests" / "test_a.py").write_text(shuffled)
    apply_diff(wc, repo.reversed_diff(diff(wc, base), tests) or "")
    assert diff(wc, base).count("diff --git") == 1, "the inverse takes every test file back (lib.py stays changed)"
    (wc / "logo.bin").write_bytes(bytes(range(255, -1, -1)))
    assert repo.reversed_diff(diff(wc, base), ["logo.bin"]) is None
    git(wc, "mv", "tests/test_b.py", "tests/test_d.py")
    assert repo.reversed_diff(diff(wc, base), ["tests/test_d.py"]) is None


def test_a_git_command_past_its_timeout_is_killed_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The timeout is a timer of its own (subprocess's polls with sleeps); it kills git and what git started (here
    an alias's shell, which holds git's output open), and the error names the command."""
    monkeypatch.setattr(repo, "GIT_TIMEOUT_S", 0.5)
    nap = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "alias.nap", "GIT_CONFIG_VALUE_0": "!sleep 30"}
    for key, value in nap.items():
        monkeypatch.setenv(key, value)
    start = time.monotonic()
    with pytest.raises(repo.GitError, match="git nap timed out after 0.5s"):
        repo.git(["nap"], cwd=tmp_path)
    assert time.monotonic() - start < 10, "the alias's sleep was killed with git"
    assert repo.git(["--version"]).startswith("git version")
