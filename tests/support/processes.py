"""Killing a child process while it writes, as a crashed Jupyter kernel is killed mid-call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def kill_while_writing(code: str, path: Path, until: int) -> int:
    """Run `code` (python -c, `path` as argv[1]; it prints a growing count) and SIGKILL it once it printed a
    count of at least `until`, while it keeps writing; the last count it printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                             cwd=REPO, env=env)
    last = -1
    try:
        assert child.stdout is not None
        for line in child.stdout:
            last = int(line)
            if last >= until:
                break
        os.kill(child.pid, signal.SIGKILL)  # while it keeps writing
    finally:
        child.kill()
        child.wait(10)
        if child.stdout:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL, f"the writer ended by itself ({child.returncode})"
    return last
