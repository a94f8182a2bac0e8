"""The Express IVR's own Node tests (`node --test`), run against the plugin's sandbox as a CI job would
run them against `labkit sandbox` as a service: the sandbox's settings reach Node through env()."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent

pytestmark = pytest.mark.vonage_sandbox(speed=10)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """Express, installed once with npm (skipped where npm cannot reach its registry)."""
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        pytest.skip("node/npm are not installed (make system-deps installs them)")
    if not (HERE / "node_modules" / "express").is_dir():
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"npm could not install express (offline?): {proc.stderr[-300:]}")
    return HERE / "node_modules"


def test_the_node_tests_pass_against_the_sandbox(vonage_sandbox, node_modules):
    env = {**os.environ, **vonage_sandbox.env()}
    proc = subprocess.run(["node", "--test"], cwd=HERE, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "# pass 2" in proc.stdout and "# fail 0" in proc.stdout, proc.stdout
