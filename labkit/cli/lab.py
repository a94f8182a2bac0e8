"""`labkit lab`: start JupyterLab on the notebooks and print the URL to open."""

from __future__ import annotations

import argparse
import os
import secrets as _secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from labkit.cli.ports import first_free_port as _first_free_port
from labkit.config import Settings

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


def notebooks_dir(explicit: str | None = None) -> Path | None:
    """The notebooks folder: the one given, the repo's (next to the package), or ./notebooks."""
    candidates = [Path(explicit).expanduser()] if explicit else [PACKAGE_ROOT / "notebooks",
                                                                 Path.cwd() / "notebooks"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def lab_command(port: int, notebooks: Path) -> list[str]:
    """The JupyterLab command line (the token travels in JUPYTER_TOKEN, not in argv where ps shows it)."""
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebooks}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines often run as root; Jupyter refuses it
    return command


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def cmd_lab(args: argparse.Namespace) -> int:
    settings = Settings.load()
    notebooks = notebooks_dir(args.notebooks)
    if notebooks is None:
        print("labkit: no notebooks folder found (looked next to the labkit package and in ./notebooks); "
              "run from the repository, or pass --notebooks DIR.", file=sys.stderr)
        return 1
    port = args.port or _first_free_port(8888)
    token = _secrets.token_hex(24)
    if settings.mode == "live":
        mode = "live mode: calls go to the real Vonage Voice API (credentials found)"
    else:
        mode = "sandbox mode: the local Voice API sandbox stands in for Vonage (no live credentials in " \
               ".env); put VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY in .env for live mode"
    print(f"labkit lab: {mode}")
    print(f"Starting JupyterLab on {notebooks} ...", flush=True)
    env = dict(os.environ, JUPYTER_TOKEN=token)
    proc = subprocess.Popen(lab_command(port, notebooks), cwd=notebooks, env=env)
    try:
        if _wait_for_port(port, proc):
            url = f"http://127.0.0.1:{port}/lab?token={token}"
            rule = "=" * min(len(url) + 4, 100)
            print(f"\n{rule}\n  Open the lab in your browser:\n  {url}\n  ({mode.split(':')[0]}; Ctrl-C stops "
                  f"it)\n{rule}\n", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        print("\nStopping JupyterLab...", flush=True)
        proc.terminate()
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def add_parser(commands: Any) -> None:
    lab = commands.add_parser("lab", help="open JupyterLab on the notebooks")
    lab.add_argument("--port", type=int, default=0, help="JupyterLab port (default: 8888 or the next free)")
    lab.add_argument("--notebooks", help="notebooks folder (default: the repository's notebooks/)")
    lab.set_defaults(func=cmd_lab)
