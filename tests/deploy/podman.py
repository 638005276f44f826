"""Rootful podman for the image and compose tests, the way these machines run containers without a registry:

- the runtime is runc (crun fails on this host's limits and cgroup layout) and the default ulimits are set, by a
  test-only ``containers.conf`` (``CONTAINERS_CONF``);
- the base image is made from Debian's own archive (``debootstrap --variant=minbase`` of the release the host
  runs, from the mirror apt uses) and imported once: later runs find it in podman's store;
- pip inside the build uses the host's pip configuration, passed at build time (``PIP_*`` build arguments and
  read-only mounts of the files and folders it names), never baked into the image;
- host network only (``--network host``): no bridge, no change to forwarding or the firewall; traffic stays on
  loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..helpers import missing

ROOT = Path(__file__).resolve().parents[2]
CONF = Path(__file__).with_name("containers.conf")
#: The Debian base image, made once and kept (podman's store is the cache between runs).
BASE = "localhost/sheetstream-base"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def podman(*args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout,
                          **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])}... failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def require_podman() -> None:
    """Skip (fail under CI=true) unless rootful podman, runc and debootstrap are here (scripts/test installs them)."""
    for tool in ("podman", "runc", "debootstrap"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            missing(f"{tool} is not installed (Debian packages podman, runc, debootstrap: scripts/test installs them)")
    if os.geteuid() != 0:
        missing("the container tests run rootful podman (as root)")


def os_release() -> dict[str, str]:
    text = Path("/etc/os-release").read_text()
    return dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', text, re.M))


def apt_mirror() -> str:
    """The Debian mirror apt already uses (deb822 sources or a sources.list line)."""
    for path in [*Path("/etc/apt/sources.list.d").glob("*.sources"), Path("/etc/apt/sources.list"),
                 *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if not path.exists():
            continue
        text = path.read_text()
        for url in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M):
            if "security" not in url:
                return url
    return "http://deb.debian.org/debian"


def base_image() -> str:
    """The host's Debian release as a minimal image (made once, then found in podman's store: ~1 min the first
    time, nothing after)."""
    release = os_release()
    if release.get("ID") != "debian":
        missing(f"the base image is made with debootstrap from Debian's archive; this host runs {release.get('ID')}")
    codename = release["VERSION_CODENAME"]
    tag = f"{BASE}:{codename}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory(prefix="sheetstream-rootfs-") as rootfs:
        subprocess.run(["debootstrap", "--variant=minbase", codename, rootfs, apt_mirror()], check=True,
                       capture_output=True, timeout=900)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        podman("import", "-", tag, stdin=tar.stdout, timeout=300)
        tar.wait(60)
    return tag


#: Where the host's pip files are mounted in the build (beside, not over, the image's own: its ca-certificates
#: package rewrites /etc/ssl/certs/ca-certificates.crt, which a mount there would block).
PIP_HOST = "/pip-host"


def pip_build_options() -> list[str]:
    """``--build-arg PIP_...`` for each setting of the host's pip, and read-only mounts (under :data:`PIP_HOST`)
    of the local files and folders they name (a CA bundle, find-links, file:// indexes, a constraints file)."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            timeout=60).stdout
    settings: dict[str, str] = {}
    for line in listed.splitlines():  # global.cert='/etc/ssl/...' or :env:.find-links='/opt/wheels'
        match = re.match(r"^[^.]*\.([\w-]+)='(.*)'$", line.strip())
        if match:
            settings[match.group(1)] = match.group(2)
    options, mounts = [], set()
    for key, value in settings.items():
        words = []
        for word in value.split():
            scheme = "file://" if word.startswith("file://") else ""
            path = word.removeprefix(scheme)
            if path.startswith("/") and Path(path).exists():
                # an index's pages link to files beside it (../../files/...): its parent goes in too
                mounts.add(str(Path(path).parent) if scheme else path)
                word = f"{scheme}{PIP_HOST}{path}"
            words.append(word)
        options += ["--build-arg", f"PIP_{key.upper().replace('-', '_')}={' '.join(words)}"]
    for path in sorted(mounts):
        options += ["--volume", f"{path}:{PIP_HOST}{path}:ro"]
    return options


def build_image(tag: str) -> None:
    """deploy/Dockerfile on the Debian base, in docker format (OCI drops HEALTHCHECK), on the host network."""
    podman("build", "--format", "docker", "--network", "host", "--build-arg", f"BASE={base_image()}",
           *pip_build_options(), "-f", str(ROOT / "deploy" / "Dockerfile"), "-t", tag, str(ROOT), timeout=900)
