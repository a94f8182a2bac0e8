"""Node packages for the tests that run Vonage's Node SDK and apps built on it, installed once per checkout.

Under pytest-xdist several workers can need the same folder at once (worksteal splits a module's tests
over workers, and each builds the module's fixtures): an install is done under a file lock, and "done"
is a marker written after npm finished, not the package's folder, which exists mid-install (a worker
once ran node there without `@vonage/accounts`, MODULE_NOT_FOUND, on a fresh clone)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def npm_folder(name: str, packages: list[str]) -> Path:
    """`.pytest_cache/<name>` with `packages` installed (skips where node/npm or the registry are missing)."""
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        pytest.skip("node/npm are not installed (make system-deps installs them)")
    folder = REPO / ".pytest_cache" / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait here for the one installing
        if not (folder / "installed").is_file():
            shutil.rmtree(folder / "node_modules", ignore_errors=True)  # what an interrupted install left
            (folder / "package-lock.json").unlink(missing_ok=True)
            (folder / "package.json").write_text(f'{{"name": "labkit-{name}-test", "private": true}}\n')
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", *packages], cwd=folder,
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                pytest.skip(f"npm could not install {' '.join(packages)} (offline?): {proc.stderr[-300:]}")
            (folder / "installed").touch()
    return folder


def write_script(folder: Path, name: str, text: str) -> Path:
    """Write a script whole (a temporary file renamed over it): another worker's node never reads half."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # as write_text would: the no-root tests run node as `nobody`
    os.replace(tmp, folder / name)
    return folder / name
