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


def test_busy_port_gets_the_next_free_one_and_the_url_of_the_server_started(tmp_path):
    squatter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Anything)
    busy = squatter.server_address[1]
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    env = {**os.environ, "LABKIT_MODE": "sandbox", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "labkit.cli", "lab", "--port", str(busy)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:(\d+)/lab\?token=(\w+))", line)
            if found:
                url = found
        out = "".join(lines)
        assert url is not None, f"no URL printed:\n{out}"
        port, token = int(url.group(2)), url.group(3)
        assert port != busy and f"Port {busy} is in use" in out, out
        status = requests.get(f"http://127.0.0.1:{port}/api/status", params={"token": token}, timeout=10)
        assert status.status_code == 200 and "started" in status.json(), status.text  # it is our Jupyter
        wrong = requests.get(f"http://127.0.0.1:{port}/api/status", params={"token": "0" * 48}, timeout=10)
        assert wrong.status_code == 403  # and the token printed is the one that opens it
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a person stops it
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stdout.close()
        squatter.shutdown()
        squatter.server_close()
    assert proc.returncode is not None
    with socket.socket() as s:  # the port is free again once it stopped (as servers bind: reuse TIME_WAIT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
