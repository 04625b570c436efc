"""A local Debian base image with Python, for podman or docker where no registry can be reached.

debootstrap builds a minimal Debian root from Debian's package mirror, and ``podman import`` turns it into an
image. Projects then build their own images FROM it with a Dockerfile.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from repogym.errors import RepogymError
from repogym.sandbox.base import run_bounded

BASE_IMAGE = "localhost/repogym-base:bookworm"
PACKAGES = ["python3", "python3-pip", "python3-venv", "python3-setuptools", "python3-pytest", "git"]


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (debootstrap must use the same one)."""
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        m = re.search(r"^URIs:\s*(\S+/debian)\s*$", text, flags=re.M) or re.search(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+/debian)\s", text, flags=re.M
        )
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


BUILD_TIMEOUT_S = 1800.0


def _bounded(argv: list[str], what: str) -> None:
    """One build step, bounded in time and output (its process group killed on timeout); an error names it."""
    r = run_bounded(argv, cwd=None, env=None, timeout_s=BUILD_TIMEOUT_S, max_output_bytes=200_000)
    if not r.ok:
        why = f"timed out after {BUILD_TIMEOUT_S:.0f}s" if r.timed_out else (r.stderr or r.stdout).strip()[-300:]
        raise RepogymError(f"{what} failed: {why}")


def build_base_image(
    engine: str = "podman", name: str = BASE_IMAGE, suite: str = "bookworm", say: Callable[[str], None] | None = None
) -> str:
    """debootstrap ``suite`` with Python and import it as ``name``; returns the image name."""
    say = say or (lambda _m: None)
    for tool, pkg in (("debootstrap", "debootstrap"), (engine, engine)):
        if shutil.which(tool) is None:
            raise RepogymError(f"{tool} is not installed: run `apt-get install {pkg}`")
    work = Path(tempfile.mkdtemp(prefix="repogym-rootfs-"))
    try:
        mirror = apt_mirror()
        say(f"debootstrap {suite} from {mirror} (about a minute)")
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(work / "root"), mirror]
        _bounded(cmd, "debootstrap")
        say(f"importing into {engine} as {name}")
        _bounded(["tar", "-C", str(work / "root"), "-cf", str(work / "root.tar"), "."], "tar")
        _bounded([engine, "import", str(work / "root.tar"), name], f"{engine} import")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return name
