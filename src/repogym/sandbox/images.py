"""A local Debian base image with Python, for podman or docker where no registry can be reached.

debootstrap builds a minimal Debian root from Debian's package mirror, and ``podman import`` turns it into an
image. Projects then build their own images FROM it with a Dockerfile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from repogym.errors import RepogymError

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
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            raise RepogymError(f"debootstrap failed: {(p.stderr or p.stdout).strip().splitlines()[-1:]}")
        say(f"importing into {engine} as {name}")
        tar = subprocess.Popen(["tar", "-C", str(work / "root"), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run([engine, "import", "-", name], stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0:
            raise RepogymError(f"{engine} import failed: {imp.stderr.strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return name
