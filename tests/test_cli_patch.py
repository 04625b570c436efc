from __future__ import annotations

from pathlib import Path

from conftest import run_cli
from test_patches import TWO_FILE_PATCH


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_help_lists_commands_and_version() -> None:
    out = run_cli("--help").stdout
    assert "patch" in out and "Check or apply SEARCH/REPLACE patches." in out
    assert run_cli("--version").stdout.strip() == "repogym 0.1.0"


def test_patch_apply_multi_file_multi_block(scheme_copy: Path, tmp_path: Path) -> None:
    patch = tmp_path / "p.txt"
    patch.write_text(TWO_FILE_PATCH)
    before = _snapshot(scheme_copy)

    dry = run_cli("patch", "apply", str(patch), "--repo", str(scheme_copy), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would change 2 file(s)" in dry.stdout
    assert _snapshot(scheme_copy) == before

    real = run_cli("patch", "apply", str(patch), "--repo", str(scheme_copy), "--diff")
    assert real.returncode == 0, real.stderr
    assert "diff --git a/scheme/builtins.py b/scheme/builtins.py" in real.stdout
    text = (scheme_copy / "scheme/builtins.py").read_text()
    assert "return sum(args) + 0" in text and '"""Product of the arguments."""' in text
    assert '"#true"[:2]' in (scheme_copy / "scheme/printer.py").read_text()


def test_patch_broken_block_changes_nothing(scheme_copy: Path, tmp_path: Path) -> None:
    patch = tmp_path / "p.txt"
    broken = TWO_FILE_PATCH.replace('        return "#t"\n=', '        return "#yes"\n=')
    patch.write_text(broken)
    before = _snapshot(scheme_copy)
    r = run_cli("patch", "apply", str(patch), "--repo", str(scheme_copy))
    assert r.returncode == 1
    assert "block 3 (scheme/printer.py): SEARCH text not found" in r.stderr
    assert 'return "#yes"' in r.stderr
    assert r.stderr.count("\n") == 1, "one clear line"
    assert _snapshot(scheme_copy) == before


def test_patch_check_missing_divider(scheme_copy: Path, tmp_path: Path) -> None:
    patch = tmp_path / "p.txt"
    patch.write_text("### scheme/types.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n")
    r = run_cli("patch", "check", str(patch), "--repo", str(scheme_copy))
    assert r.returncode == 1 and "missing '======='" in r.stderr


def test_patch_missing_file_is_usage_error(scheme_copy: Path) -> None:
    r = run_cli("patch", "check", "/nonexistent.patch", "--repo", str(scheme_copy))
    assert r.returncode == 2 and "/nonexistent.patch: no such file" in r.stderr
