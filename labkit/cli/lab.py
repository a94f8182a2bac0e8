"""`labkit lab`: start JupyterLab on the notebooks and print the URL to open."""

from __future__ import annotations

import argparse
import os
import secrets as _secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from labkit.cli.ports import first_free_port as _first_free_port
from labkit.config import Settings

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_PORT = 8888  # JupyterLab's own default; the next free port is used when it is taken
START_ATTEMPTS = 5  # another program can take the chosen port before JupyterLab binds it: try again


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


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0, *, token: str = "") -> bool:
    """True once the JupyterLab we started answers on `port` and accepts `token`.

    An open port alone proves nothing: another server may hold it while ours fails to bind, and its
    URL with our token would belong to nothing. So ask Jupyter's status API with our token, and give
    up as soon as our process exits.
    """
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200 and proc.poll() is None:
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)
    return False


def _die_with_parent() -> None:
    """In JupyterLab's process, before it runs (Linux): end it if `labkit lab` dies, even by SIGKILL, so
    no JupyterLab is ever left serving the notebooks with nobody to stop it."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1  # noqa: N806 - prctl(2)'s name
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class _Stop(Exception):
    """`labkit lab` was asked to stop: Ctrl-C, `kill`, or its terminal closed."""


def _raise_stop(signum: int, _frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def _port_taken(port: int) -> bool:
    """True when a server listens on `port` (bound as servers bind, so TIME_WAIT leftovers are free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def cmd_lab(args: argparse.Namespace) -> int:
    settings = Settings.load()
    notebooks = notebooks_dir(args.notebooks)
    if notebooks is None:
        print("labkit: no notebooks folder found (looked next to the labkit package and in ./notebooks); "
              "run from the repository, or pass --notebooks DIR.", file=sys.stderr)
        return 1
    wanted = args.port or DEFAULT_PORT
    token = _secrets.token_hex(24)
    if settings.mode == "live":
        mode = "live mode: calls go to the real Vonage Voice API (credentials found)"
    else:
        mode = "sandbox mode: the local Voice API sandbox stands in for Vonage (no live credentials in " \
               ".env); put VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY in .env for live mode"
    print(f"labkit lab: {mode}")
    env = dict(os.environ, JUPYTER_TOKEN=token)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    proc: subprocess.Popen | None = None
    try:
        proc, port = _start(wanted, notebooks, env, token)
        if proc is None:
            return 1
        url = f"http://127.0.0.1:{port}/lab?token={token}"
        rule = "=" * min(len(url) + 4, 100)
        print(f"\n{rule}\n  Open the lab in your browser:\n  {url}\n  ({mode.split(':')[0]}; Ctrl-C stops "
              f"it)\n{rule}\n", flush=True)
        code = proc.wait()
        if code:
            print(f"labkit lab: JupyterLab stopped on its own (exit status {code}; see its messages above).",
                  file=sys.stderr)
        return code
    except (KeyboardInterrupt, _Stop):
        if proc is not None and proc.poll() is None:
            print("\nStopping JupyterLab...", flush=True)
            _stop(proc)
            print("JupyterLab stopped.", flush=True)
        return 0  # stopping was asked for: that is success, so `make lab` ends quietly
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(wanted: int, notebooks: Path, env: dict[str, str], token: str) -> tuple[subprocess.Popen | None, int]:
    """JupyterLab answering with `token` on `wanted` or the next free port, as (process, port); (None, port)
    when it would not start."""
    port = wanted
    for _attempt in range(START_ATTEMPTS):
        port = wanted if not _port_taken(wanted) else _first_free_port(wanted + 1)
        if port != wanted:
            print(f"Port {wanted} is in use (another Jupyter or server?): using port {port} instead.")
        print(f"Starting JupyterLab on {notebooks} at port {port} ...", flush=True)
        # Its own session: Ctrl-C reaches `labkit lab` only, which stops JupyterLab itself (JupyterLab
        # would otherwise ask "Shutdown this Jupyter server (y/[n])?" and race the stop).
        proc = subprocess.Popen(lab_command(port, notebooks), cwd=notebooks, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent)
        try:
            if _wait_for_port(port, proc, token=token):
                return proc, port
        except BaseException:
            _stop(proc)  # Ctrl-C or kill while it starts: never leave it behind
            raise
        if proc.poll() is None:  # still running but never answered: say so and stop it
            print(f"labkit lab: JupyterLab did not answer on port {port} within 60 s; stopping it.",
                  file=sys.stderr)
            _stop(proc)
            return None, port
        wanted = port + 1  # it exited: most likely the port was taken meanwhile; try the next one
    print(f"labkit lab: JupyterLab did not start after {START_ATTEMPTS} tries (see its messages above).",
          file=sys.stderr)
    return None, port

def _stop(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def add_parser(commands: Any) -> None:
    lab = commands.add_parser("lab", help="open JupyterLab on the notebooks")
    lab.add_argument("--port", type=int, default=0,
                     help="JupyterLab port (default 8888); when it is taken, the next free one")
    lab.add_argument("--notebooks", help="notebooks folder (default: the repository's notebooks/)")
    lab.set_defaults(func=cmd_lab)
