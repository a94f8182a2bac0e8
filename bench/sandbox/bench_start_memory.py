"""What `labkit sandbox` holds: its resident memory once started, and after a first call.

Starts the real command in its own process (as a user or CI does), waits until its resident size has
settled (the background warm-up is over), places a first call through the Python SDK (a `talk`, which
needs the speech engine and a resample from espeak-ng's 22.05 kHz, then a `stream` of an MP3 served
here), waits for it to end, and reads the process's VmRSS from /proc again. Beside it, in the same run,
the baseline a user would write instead: a bare werkzeug HTTPS server on the same certificate, in its
own process. Also prints which of the heavy libraries each process has mapped (numpy, scipy,
libsndfile), read from /proc/PID/maps.

    python bench/sandbox/bench_start_memory.py
    BENCH_LABKIT_TREE=/path/to/another/checkout python bench/sandbox/bench_start_memory.py   # its labkit
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from labkit.testing.process import SandboxProcess  # noqa: E402

# a library's own folder in site-packages (numpy's wheel bundles a "libscipy_openblas": not scipy)
HEAVY = {"numpy": "/numpy/", "scipy": "/scipy/", "libsndfile": "libsndfile", "matplotlib": "/matplotlib/"}
BARE = """
import ssl, sys
from werkzeug.serving import make_server
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server = make_server("127.0.0.1", 0, lambda e, s: (s("200 OK", []), [b"{}"])[1], threaded=True, ssl_context=ctx)
print(server.server_port, flush=True)
server.serve_forever()
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def mapped(pid: int) -> list[str]:
    """Which of HEAVY have a shared library mapped in the process."""
    maps = Path(f"/proc/{pid}/maps").read_text().lower()
    return [name for name, mark in HEAVY.items() if mark in maps] or ["none of them"]


def settled_rss(pid: int, quiet: float = 2.0, limit: float = 30.0) -> tuple[float, float]:
    """(RSS in MB once it has not grown for `quiet` seconds, seconds waited)."""
    start = time.monotonic()
    last, since = rss_mb(pid), time.monotonic()
    while time.monotonic() - start < limit:
        time.sleep(0.1)
        now = rss_mb(pid)
        if now > last + 0.2:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last, time.monotonic() - start


def children_rss(pid: int) -> float:
    """The resident memory of the process's children (the speech worker), in MB."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += rss_mb(int(child))
            except (OSError, RuntimeError):
                pass
    return total


def first_call(sandbox: SandboxProcess, audio_url: str) -> None:
    """A talk then a stream to a virtual phone that answers at once; returns when the call has ended."""
    from vonage import Auth, HttpClientOptions, Vonage
    from vonage_voice import CreateCallRequest, Phone, Stream, Talk, ToPhone

    os.environ["REQUESTS_CA_BUNDLE"] = sandbox.bundle or ""
    client = Vonage(Auth(application_id=sandbox.rows["application id"], private_key=sandbox.rows["private key"]),
                    HttpClientOptions(api_host=sandbox.host, timeout=10))
    sandbox.remote.phone("447700900001").set(answer_after=0)
    created = client.voice.create_call(CreateCallRequest(
        to=[ToPhone(number="447700900001")], from_=Phone(number=sandbox.rows["number"]),
        ncco=[Talk(text="Hello, this is the first call."), Stream(streamUrl=[audio_url])]))
    view = sandbox.remote.call(created.uuid, until="ended", timeout=30)
    if view.get("status") != "completed":
        raise RuntimeError(f"the first call ended {view.get('status')}: {view}")


class _App(http.server.SimpleHTTPRequestHandler):
    """The app's side: serves audio/ and takes the event webhooks (204)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_App, directory=str(ROOT / "audio")))
    threading.Thread(target=app.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{app.server_port}"
    with tempfile.TemporaryDirectory() as home:
        t0 = time.monotonic()
        tree = os.environ.get("BENCH_LABKIT_TREE")
        sandbox = SandboxProcess(Path(home), "--event-url", f"{base}/event", speed=5.0,
                                 env={"PYTHONPATH": tree} if tree else None)
        banner_s = time.monotonic() - t0
        pid = sandbox.proc.pid
        try:
            at_banner = rss_mb(pid)
            before, waited = settled_rss(pid)
            libs_before = mapped(pid)
            t1 = time.monotonic()
            first_call(sandbox, f"{base}/prompt.mp3")
            call_s = time.monotonic() - t1
            after, _ = settled_rss(pid, quiet=1.0, limit=10.0)
            libs_after = mapped(pid)
            worker = children_rss(pid)
            tls = Path(home) / "tls"
            bare = subprocess.Popen([sys.executable, "-c", BARE, str(tls / "server.pem"), str(tls / "server.key")],
                                    stdout=subprocess.PIPE, text=True)
            try:
                bare.stdout.readline()  # type: ignore[union-attr]
                bare_rss, _ = settled_rss(bare.pid, quiet=0.5, limit=5)
                bare_libs = mapped(bare.pid)
            finally:
                bare.terminate()
                bare.wait(5)
        finally:
            sandbox.stop()
    app.shutdown()
    load = os.getloadavg()
    tree = os.environ.get("BENCH_LABKIT_TREE") or str(ROOT)
    print(f"`labkit sandbox` ({tree}) resident memory (VmRSS), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}:")
    print(f"  at the banner ({banner_s:.2f} s after launch)      {at_banner:6.1f} MB")
    print(f"  settled after start ({waited:.1f} s later)           {before:6.1f} MB  mapped: {', '.join(libs_before)}")
    print(f"  after a first call (talk + MP3 stream, {call_s:.1f} s) {after:6.1f} MB  mapped: {', '.join(libs_after)}")
    print(f"  its speech worker (a child process, espeak-ng)   {worker:6.1f} MB")
    print(f"  bare werkzeug HTTPS server, same run              {bare_rss:6.1f} MB  mapped: {', '.join(bare_libs)}")
    print(f"  ratio to bare: before the first call {before / bare_rss:.1f}x, after it {after / bare_rss:.1f}x")


if __name__ == "__main__":
    main()
