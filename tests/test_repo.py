from __future__ import annotations

import subprocess
import tarfile
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
