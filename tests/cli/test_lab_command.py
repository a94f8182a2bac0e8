"""`labkit lab` (what `make lab` runs) on a busy port: a real JupyterLab, started as a user would.

The port asked for is held by another HTTP server that answers everything with 200, which is the
case that used to print a URL whose token belonged to nothing.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


class _Anything(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"not jupyter")

    def log_message(self, *args) -> None:
        pass


def _as_from_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a suite started in the background (`nohup`, `cmd &` in a script)
    hands its children SIGINT ignored, and Python then never turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_lab(tmp_path: Path, port: int) -> tuple[subprocess.Popen, re.Match, list[str]]:
    """`labkit lab --port PORT` as its own process group (as a terminal runs it), up to the URL it prints."""
    env = {**os.environ, "LABKIT_MODE": "sandbox", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "labkit.cli", "lab", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_as_from_a_terminal)
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"(http://127\.0\.0\.1:(\d+)/lab\?token=(\w+))", line)
        if found:
            return proc, found, lines
    _kill(proc)
    raise AssertionError("no URL printed:\n" + "".join(lines))


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _stopped(proc: subprocess.Popen, lines: list[str]) -> str:
    """What `labkit lab` printed until it exited (it must exit within 30 s)."""
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise AssertionError("labkit lab did not stop within 30 s") from None
    return "".join(lines) + rest


def _port_free(port: int) -> bool:
    with socket.socket() as s:  # as servers bind: TIME_WAIT leftovers do not count
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_busy_port_gets_the_next_free_one_and_the_url_of_the_server_started(tmp_path):
    squatter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Anything)
    busy = squatter.server_address[1]
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    try:
        proc, url, lines = _start_lab(tmp_path, busy)
        try:
            out = "".join(lines)
            port, token = int(url.group(2)), url.group(3)
            assert port != busy and f"Port {busy} is in use" in out, out
            status = requests.get(f"http://127.0.0.1:{port}/api/status", params={"token": token}, timeout=10)
            assert status.status_code == 200 and "started" in status.json(), status.text  # it is our Jupyter
            wrong = requests.get(f"http://127.0.0.1:{port}/api/status", params={"token": "0" * 48}, timeout=10)
            assert wrong.status_code == 403  # and the token printed is the one that opens it
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        out = _stopped(proc, lines)
    finally:
        squatter.shutdown()
        squatter.server_close()
    # Ctrl-C is how a person stops it: exit status 0, so `make lab` ends without "make: *** Error"
    assert proc.returncode == 0, out
    assert "JupyterLab stopped." in out and "Traceback" not in out and "Shutdown this Jupyter server" not in out, out
    assert _port_free(port)  # the port is free again once it stopped


def test_a_plain_kill_of_labkit_lab_stops_jupyterlab_too(tmp_path):
    proc, url, lines = _start_lab(tmp_path, 0)
    port = int(url.group(2))
    proc.terminate()  # `kill PID`: SIGTERM to labkit lab alone, not to JupyterLab
    out = _stopped(proc, lines)
    assert proc.returncode == 0 and "JupyterLab stopped." in out, out
    assert _port_free(port), f"JupyterLab still holds port {port} after labkit lab was killed"
