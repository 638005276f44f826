"""The page shipped inside the Python package must be the build of the sources in web/: rebuild and compare."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..helpers import missing

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SHIPPED = ROOT / "src" / "sheetstream" / "web"


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_shipped_page_is_the_build_of_web_sources(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        missing("Node.js and npm are needed to rebuild the page")
    if not (WEB / "node_modules" / ".bin" / "vite").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, capture_output=True, timeout=600)
    out = tmp_path / "build"
    subprocess.run([str(WEB / "node_modules" / ".bin" / "vite"), "build", "--outDir", str(out), "--emptyOutDir"],
                   cwd=WEB, check=True, capture_output=True, timeout=300)
    built, shipped = files(out), files(SHIPPED)
    assert sorted(built) == sorted(shipped), "the shipped page is stale: run `npm run build` in web/ and commit"
    for name, data in built.items():
        assert shipped[name] == data, f"{name} differs from a fresh build: run `npm run build` in web/ and commit"
