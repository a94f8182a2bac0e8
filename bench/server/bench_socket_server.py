#!/usr/bin/env python
"""How many concurrent 16 kHz call streams does the lab's /socket endpoint record in real time?

A benchmark, not a test: it prints figures and asserts nothing about speed (machines are noisy).

For each level N (default 100, 200, 300, 400, 500) and for each of two servers, each in its own
subprocess so that its CPU can be read from /proc/<pid>/stat (utime + stime):

* **lab**: the real ``SocketHub`` behind ``create_app`` on ``ServerRunner`` (uvicorn with
  ``ws="websockets-sansio"``, Flask through a2wsgi, ``/socket`` a native ASGI handler), recording every
  call to its own WAV in a temp dir. The only addition, made in the subprocess and nowhere else, is a
  ``SocketSession.on_frame`` override that notes the frame's latency once the loop has handed the frame
  to the hub's writer thread (which writes it; the files are checked for every frame afterwards).
* **bare websockets** (the baseline): a minimal ``websockets.asyncio.server`` that reads the
  ``websocket:connected`` text message, opens one raw file per connection, then for every binary
  message does one unbuffered ``write()`` of the 640 bytes to that file and notes the latency.

The load generator (this process, asyncio + a ``websockets`` client) opens N connections, sends the
connected message, then sends 50 frames/s per stream on a deadline schedule for ``--seconds``
(phases spread evenly over the 20 ms period). Each frame is 640 bytes: float64 ``time.monotonic()``
at send, int64 sequence number, zeros. ``time.monotonic()`` is CLOCK_MONOTONIC, system-wide on Linux,
so the server computes latency = receipt - send directly. Loss is frames sent vs frames the server
received, and vs frames found, in order, in the files it wrote (WAV sample count / 320 for the lab).

A level passes when nothing is lost, p99 latency < 20 ms, the client kept pace, and TCP never pushed
back on the client. The load generator stands in for the platform (which has machines of its own),
so it runs at a higher priority (``--client-priority``, default real time SCHED_RR, which a server's
hundreds of threads cannot crowd out as they can a nice value; the servers run as ordinary processes)
and is timed: if it still falls behind its schedule (lateness p99 > 20 ms) the level is reported as
CLIENT-LIMITED and that server stops climbing, so its figure is a lower bound; unless the server's
p99 exceeds 20 ms by more than the client's lateness (a client stall of L ms can add about L ms of
queueing at the server), in which case the level still counts as the server's FAIL.

    .venv/bin/python bench/server/bench_socket_server.py [--levels 100,200,300,400,500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RATE = 16000
FRAME_BYTES = 640  # 20 ms of 16-bit mono at 16 kHz
FRAME_S = 0.020
FPS = 50
P99_LIMIT_MS = 20.0
CLIENT_LATE_LIMIT_MS = 20.0  # client lateness p99 above one frame period: the load was not real time
HEAD = struct.Struct("<dq")  # send time (monotonic seconds), sequence number
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere: labkit comes from this checkout
    sys.path.insert(0, str(REPO))
BASELINE_WHAT = ("bare websockets = websockets.asyncio.server on the {loop} loop (same Python, no Flask): reads the "
                 "connected text message, opens one raw .pcm file per connection, then per binary message "
                 "one unbuffered write() of the 640 bytes + a latency note; no WAV header, no threads")
LAB_WHAT = ("lab = labkit SocketHub on create_app/ServerRunner (uvicorn, ws=websockets-sansio, one {loop} event "
            "loop; Flask via a2wsgi on the same port), WavRecorder per call (libsndfile, header valid after every "
            "write; the hub's writer thread writes each call's frames of a 20 ms tick in one write); latency noted "
            "on the loop once the frame is queued for it")


def raise_client_priority(how: str, server_nice: int) -> str:
    """Give the load generator the CPU it needs first; children (the servers) do not inherit it."""
    servers = f"servers at SCHED_OTHER nice {server_nice}"
    if how == "rt":
        try:  # SCHED_RESET_ON_FORK: the server subprocesses start as ordinary processes
            os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(10))
            return f"load generator at SCHED_RR priority 10 (real time), {servers}"
        except (OSError, AttributeError) as exc:
            fallback = f" (real time refused: {exc})"
            how = "nice"
    else:
        fallback = ""
    if how == "nice":
        try:
            os.setpriority(os.PRIO_PROCESS, 0, server_nice - 10)
            return f"load generator at nice {server_nice - 10}{fallback}, {servers}"
        except OSError as exc:
            fallback += f" (nice refused: {exc})"
    return f"load generator at the servers' priority{fallback}, {servers}"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def frame_latency(frame: bytes) -> float:
    return time.monotonic() - HEAD.unpack_from(frame)[0]


# ================================================================ servers (run in a subprocess)

def serve_lab(streams: int, folder: Path, out: Path) -> None:
    """The real SocketHub; a SocketSession subclass (patched in this process only) adds the listener."""
    import labkit.server.sockets as sockets
    from labkit.events import EventLog
    from labkit.server import ServerContext, ServerRunner, create_app

    latencies: list[float] = []
    note = latencies.append

    ready = folder.parent / "ready"  # the WAV is created with the first frame: say "connected" apart
    ready.mkdir(exist_ok=True)

    class BenchSession(sockets.SocketSession):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            (ready / str(self.link)).touch()

        def on_frame(self, frame: bytes) -> None:
            super().on_frame(frame)
            note(frame_latency(frame))

    sockets.SocketSession = BenchSession  # open_session looks the class up in its module at connect time

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    events = EventLog()
    hub = sockets.SocketHub(events, folder=folder)
    runner = ServerRunner(create_app(ServerContext(events=events, answer=lambda p: [], sockets=hub)),
                          on_stop=hub.close_all).start()
    base = f"ws://127.0.0.1:{runner.port}"
    print(json.dumps({"urls": [hub.url(base, f"s{i}") for i in range(streams)]}), flush=True)
    parent = os.getppid()
    while not stop.wait(0.2):
        if os.getppid() != parent:  # the benchmark died: do not linger
            break
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(s.open for s in list(hub.sessions)):
        time.sleep(0.05)
    still_open = sum(s.open for s in hub.sessions)
    recordings = hub.recordings()  # closed sessions leave memory; their recordings stay listed
    runner.stop()
    out.write_text(json.dumps({
        "sessions": len(recordings), "open_at_stop": still_open,
        "received": sum(r.frames_received + r.frames_malformed for r in recordings),
        "malformed": sum(r.frames_malformed for r in recordings),
        "latency_s": latencies,
    }))


def serve_bare(streams: int, folder: Path, out: Path) -> None:
    if os.environ.get("BENCH_BASELINE_LOOP") == "uvloop":
        import uvloop

        uvloop.run(_serve_bare(streams, folder, out))
    else:
        asyncio.run(_serve_bare(streams, folder, out))


async def _serve_bare(streams: int, folder: Path, out: Path) -> None:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    latencies: list[float] = []
    totals = {"sessions": 0, "received": 0, "malformed": 0}
    active = set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def handler(ws) -> None:
        active.add(ws)
        try:
            hello = json.loads(await ws.recv())
            if hello.get("event") != "websocket:connected":
                await ws.close(1008, "expected websocket:connected")
                return
            totals["sessions"] += 1
            name = ws.request.path.strip("/") or "call"
            with open(folder / f"{name}.pcm", "wb", buffering=0) as f:
                try:
                    async for message in ws:
                        if isinstance(message, bytes):
                            totals["received"] += 1
                            if len(message) != FRAME_BYTES:
                                totals["malformed"] += 1
                                continue
                            f.write(message)
                            latencies.append(frame_latency(message))
                except ConnectionClosed:
                    pass
        finally:
            active.discard(ws)

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"urls": [f"ws://127.0.0.1:{port}/s{i}" for i in range(streams)]}), flush=True)
        parent = os.getppid()
        while not stop.is_set() and os.getppid() == parent:
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
        deadline = time.monotonic() + 15
        while active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        still_open = len(active)
    out.write_text(json.dumps({**totals, "open_at_stop": still_open, "latency_s": latencies}))


# ================================================================ measuring (parent)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | str) -> float:
    """utime + stime of a process, in seconds (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy() -> float:
    """CPU seconds all processes used on the whole machine (from /proc/stat; idle and iowait excluded)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


@dataclass
class ClientStats:
    sent: int = 0
    lateness: list[float] = field(default_factory=list)  # actual send time - scheduled time, s
    stalls: int = 0  # sends after which bytes were left in user space: TCP backpressure
    worst_backlog: int = 0
    final_late: float = 0.0  # how late the last frame of the slowest stream went out


@dataclass
class Result:
    kind: str
    n: int
    sent: int = 0
    received: int = 0
    recorded: int = 0
    recorded_in_order: int = 0
    malformed: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    server_cores: float = float("nan")
    server_cpu_s: float = float("nan")
    window_s: float = float("nan")
    seconds: float = float("nan")
    cpu_ms_per_stream_s: float = float("nan")
    client_cores: float = float("nan")
    other_cores: float = float("nan")
    client_late_p99_ms: float = float("nan")
    client_final_late_ms: float = float("nan")
    client_late_max_ms: float = float("nan")
    attempt: int = 1
    stalls: int = 0
    verdict: str = "?"
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.sent - min(self.received, self.recorded_in_order)



LIVE: list[subprocess.Popen] = []


def start_server(kind: str, n: int, folder: Path, out: Path, nice: int) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--streams", str(n),
           "--folder", str(folder), "--out", str(out), "--nice", str(nice)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO, start_new_session=True)
    LIVE.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError(f"the {kind} server did not start (exit code {proc.poll()})")
    return proc, json.loads(line)["urls"]


def stop_server(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout:
        proc.stdout.close()
    if proc in LIVE:
        LIVE.remove(proc)


def read_recordings(kind: str, folder: Path) -> tuple[int, int, list[str]]:
    """(frames in the files, frames whose sequence numbers are exactly 0, 1, 2... per file, notes)."""
    import soundfile as sf

    total = in_order = 0
    notes: list[str] = []
    for path in sorted(folder.iterdir()):
        if kind == "lab":
            info = sf.info(str(path))
            if info.samplerate != RATE or info.channels != 1:
                notes.append(f"{path.name}: {info.samplerate} Hz x {info.channels}")
            data = sf.read(str(path), dtype="int16")[0].astype("<i2").tobytes()
        else:
            data = path.read_bytes()
        if len(data) % FRAME_BYTES:
            notes.append(f"{path.name}: {len(data)} bytes is not a whole number of frames")
        rows = np.frombuffer(data[: len(data) // FRAME_BYTES * FRAME_BYTES], np.uint8).reshape(-1, FRAME_BYTES)
        seqs = rows[:, 8:16].copy().view("<i8").ravel()
        total += len(seqs)
        in_order += int(np.sum(seqs == np.arange(len(seqs))))
    return total, in_order, notes


async def wait_for_files(folder: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for _ in folder.iterdir()) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sum(1 for _ in folder.iterdir())} of {n} streams were set up in {timeout} s")
        await asyncio.sleep(0.05)


async def wait_for_writes(folder: Path, expected_bytes: int, timeout: float = 30) -> None:
    """Until the files hold every frame, or stop growing for a second (the server is done either way)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = sum(p.stat().st_size for p in folder.iterdir())
        if size >= expected_bytes:
            return
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since > 1.0:
            return
        await asyncio.sleep(0.05)


async def pace(sockets: list, t0: float, frames: int, stats: ClientStats) -> None:
    """Send every stream's frames on its deadline schedule from one coroutine (no timer per frame).

    Stream i's frame `seq` is due at t0 + seq * 20 ms + i * 20 ms / N: phases spread over the period,
    so the global order is k = seq * N + i with due time t0 + k * 20 ms / N. Frames already due go out
    in a batch; the send time written into each frame is the moment it is handed to the socket.
    """
    n = len(sockets)
    step = FRAME_S / n
    total = n * frames
    transports = [ws.transport for ws in sockets]
    buf = bytearray(FRAME_BYTES)
    late = stats.lateness
    monotonic = time.monotonic
    k = 0
    while k < total:
        delay = t0 + k * step - monotonic()
        if delay > 0.0002:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)
        now = monotonic()
        while k < total and t0 + k * step <= now + 0.0002:
            seq, i = divmod(k, n)
            sent_at = monotonic()
            late.append(sent_at - (t0 + k * step))
            HEAD.pack_into(buf, 0, sent_at, seq)
            await sockets[i].send(bytes(buf))
            backlog = transports[i].get_write_buffer_size()
            if backlog:  # the kernel's socket buffer is full: the server is not reading fast enough
                stats.stalls += 1
                stats.worst_backlog = max(stats.worst_backlog, backlog)
            k += 1
    stats.sent = k
    stats.final_late = max(0.0, late[-1]) if late else 0.0


async def drive(urls: list[str], folder: Path, server_pid: int, seconds: float, compression: str | None,
                res: Result) -> None:
    from websockets.asyncio.client import connect

    from labkit import protocol
    from labkit.media.frames import content_type

    n = len(urls)
    frames = int(round(seconds * FPS))
    gate = asyncio.Semaphore(32)
    conns = []

    async def open_one(i: int, url: str):
        async with gate:
            ws = await connect(url, compression=compression, open_timeout=60, ping_interval=None,
                               max_size=None)
            await ws.send(protocol.connected(content_type(RATE), {"stream": i}))
            conns.append(ws)
            return ws

    try:
        sockets = await asyncio.gather(*(open_one(i, u) for i, u in enumerate(urls)))
        await wait_for_files(folder.parent / "ready" if (folder.parent / "ready").is_dir() else folder, n)
        await asyncio.sleep(0.2)
        stats = ClientStats()
        w0, cpu0, me0, sys0 = time.monotonic(), proc_cpu(server_pid), proc_cpu("self"), system_busy()
        t0 = time.monotonic() + 0.05
        await pace(sockets, t0, frames, stats)
        wc, me1 = time.monotonic(), proc_cpu("self")
        await asyncio.gather(*(ws.close() for ws in sockets))
        await wait_for_writes(folder, n * frames * FRAME_BYTES)
        w1, cpu1, sys1 = time.monotonic(), proc_cpu(server_pid), system_busy()
    finally:
        for ws in conns:
            if ws.state.name != "CLOSED":
                ws.transport.abort()
    # cores: over the window from the first frame until the server had written everything (longer than
    # `seconds` when the server lags); cost per stream: CPU seconds per second of audio streamed.
    res.sent = stats.sent
    res.window_s = w1 - w0
    res.seconds = seconds
    res.server_cpu_s = cpu1 - cpu0
    res.server_cores = (cpu1 - cpu0) / (w1 - w0)
    res.client_cores = (me1 - me0) / (wc - w0)
    res.other_cores = max(0.0, ((sys1 - sys0) - (cpu1 - cpu0) - (me1 - me0)) / (w1 - w0))
    res.cpu_ms_per_stream_s = res.server_cpu_s * 1000 / (n * seconds)
    late = np.asarray(stats.lateness) * 1000
    res.client_late_p99_ms = float(np.percentile(late, 99)) if late.size else float("nan")
    res.client_final_late_ms = stats.final_late * 1000
    res.client_late_max_ms = float(late.max()) if late.size else float("nan")
    res.stalls = stats.stalls
    if stats.stalls:
        res.notes.append(f"{stats.stalls} sends hit TCP backpressure (server not reading; up to "
                         f"{stats.worst_backlog} bytes queued in the client)")


def run_level(kind: str, n: int, seconds: float, compression: str | None, root: Path, nice: int) -> Result:
    res = Result(kind, n)
    level_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-{n}-", dir=root))
    folder = level_dir / "recordings"
    folder.mkdir()
    out = level_dir / "server.json"
    proc, urls = start_server(kind, n, folder, out, nice)
    try:
        asyncio.run(drive(urls, folder, proc.pid, seconds, compression, res))
    finally:
        stop_server(proc)
    try:
        if not out.exists():
            raise RuntimeError(f"the {kind} server wrote no results (exit code {proc.returncode})")
        server = json.loads(out.read_text())
        res.received = server["received"]
        res.malformed = server["malformed"]
        if server["sessions"] != n:
            res.notes.append(f"server saw {server['sessions']} of {n} streams")
        if server["open_at_stop"]:
            res.notes.append(f"{server['open_at_stop']} sessions still open at stop")
        lat = np.asarray(server["latency_s"]) * 1000
        if lat.size:
            res.p50_ms, res.p99_ms = (float(x) for x in np.percentile(lat, [50, 99]))
            res.max_ms = float(lat.max())
        res.recorded, res.recorded_in_order, notes = read_recordings(kind, folder)
        res.notes += notes
    finally:
        shutil.rmtree(level_dir, ignore_errors=True)
    client_behind = (res.client_late_p99_ms > CLIENT_LATE_LIMIT_MS
                     or res.client_final_late_ms > 5 * FRAME_S * 1000)
    if res.stalls or res.lost or res.malformed:  # caused by the server whatever the client did
        res.verdict = "FAIL"
    elif client_behind and res.p99_ms > P99_LIMIT_MS + res.client_late_max_ms:
        # A client stall of L ms makes a burst of L ms of frames, which can add up to about L ms of queueing
        # at the server; latency beyond the limit plus the worst stall is the server's own.
        res.verdict = "FAIL"
        res.notes.append(f"the client was also behind (late p99 {res.client_late_p99_ms:.0f} ms, max "
                         f"{res.client_late_max_ms:.0f} ms), but the server's p99 exceeds {P99_LIMIT_MS:g} ms "
                         "by more than that")
    elif client_behind:  # the load was not the real-time load asked for: the level says nothing
        res.verdict = "CLIENT-LIMITED"
        res.notes.append(f"the client (at high priority) fell behind its schedule: late p99 "
                         f"{res.client_late_p99_ms:.0f} ms, max {res.client_late_max_ms:.0f} ms, last frame "
                         f"{res.client_final_late_ms:.0f} ms late; a stall of the whole machine or a client that "
                         "cannot keep pace: level inconclusive")
    elif not res.p99_ms < P99_LIMIT_MS:
        res.verdict = "FAIL"
    else:
        res.verdict = "PASS"
    return res


def describe(r: Result) -> str:
    name = "lab" if r.kind == "lab" else "bare websockets"
    recorded = f"recorded {r.recorded_in_order}/{r.sent} in order"
    if r.recorded != r.recorded_in_order:
        recorded += f" ({r.recorded} frames in files)"
    tag = f" (try {r.attempt})" if r.attempt > 1 or r.verdict != "PASS" else ""
    line = (f"{name:<15} N={r.n:<4}{tag}: received {r.received}/{r.sent} ({r.lost} lost), {recorded}, "
            f"latency p50 {r.p50_ms:.1f} ms p99 {r.p99_ms:.1f} ms max {r.max_ms:.0f} ms, "
            f"server CPU {r.server_cores:.2f} core ({r.cpu_ms_per_stream_s:.2f} ms/s per stream); "
            f"client {r.client_cores:.2f} core, late p99 {r.client_late_p99_ms:.1f} ms "
            f"max {r.client_late_max_ms:.0f} ms; "
            f"others {r.other_cores:.2f} core -> {r.verdict}")
    notes = list(r.notes)
    if r.window_s > r.seconds + 1.0:
        notes.append(f"the server needed {r.window_s:.1f} s to take in {r.seconds:g} s of audio")
    return line + "".join(f"\n{'':<24}note: {n}" for n in notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="100,200,300,400,500", help="concurrent streams to try, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of audio per stream per level")
    ap.add_argument("--servers", default="lab,bare", help="which servers to measure (lab, bare)")
    ap.add_argument("--tries", type=int, default=2, help="runs of a level before it counts as not passed")
    ap.add_argument("--compression", choices=["none", "deflate"], default="none",
                    help="permessage-deflate offered by the client (both servers accept it if offered)")
    ap.add_argument("--client-priority", choices=["rt", "nice", "none"], default="rt",
                    help="priority of the load generator, which stands in for the platform's own machines: "
                         "rt = SCHED_RR 10 (falls back to nice), nice = nice -10; servers keep this shell's")
    ap.add_argument("--baseline-loop", choices=["asyncio", "uvloop"], default="asyncio",
                    help="the bare server's event loop (websockets' default is asyncio); the lab's follows "
                         "LABKIT_EVENT_LOOP")
    ap.add_argument("--serve", choices=["lab", "bare"], help=argparse.SUPPRESS)
    ap.add_argument("--nice", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--streams", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    raise_fd_limit()
    if args.serve:
        if args.nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        (serve_lab if args.serve == "lab" else serve_bare)(args.streams, args.folder, args.out)
        return 0

    from labkit.server.runner import loop_runner

    os.environ["BENCH_BASELINE_LOOP"] = args.baseline_loop  # the servers are subprocesses: they inherit it
    levels = sorted(int(x) for x in args.levels.split(","))
    kinds = [k for k in ("lab", "bare") if k in args.servers.split(",")]
    compression = None if args.compression == "none" else "deflate"

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    server_nice = os.getpriority(os.PRIO_PROCESS, 0)
    priority = raise_client_priority(args.client_priority, server_nice)
    root = Path(tempfile.mkdtemp(prefix="labkit-bench-socket-"))
    results: dict[str, list[Result]] = {k: [] for k in kinds}
    climbing = set(kinds)
    print(f"machine: {os.cpu_count()} CPUs, load average {loadavg()} at start; python "
          f"{sys.version.split()[0]}; {args.seconds:g} s per level, 16 kHz, 640-byte frames at 50/s per stream; "
          f"client compression: {args.compression}; {priority}")
    print(f"pass = 0 lost, p99 < {P99_LIMIT_MS:g} ms, no TCP backpressure, client late p99 < "
          f"{CLIENT_LATE_LIMIT_MS:g} ms; a level that does not pass is tried again (at most {args.tries} runs)")
    print("core figures = CPU seconds / wall seconds of the window (first frame -> all written); ms/s per "
          "stream = server CPU ms per second of audio per stream; others = the rest of the machine's busy CPU")
    print(LAB_WHAT.format(loop=loop_runner()[0]))
    print(BASELINE_WHAT.format(loop=args.baseline_loop), flush=True)
    try:
        for n in levels:
            for kind in kinds:
                if kind not in climbing:
                    continue
                for attempt in range(1, args.tries + 1):  # best of `tries`: a noisy machine stalls now and then
                    res = run_level(kind, n, args.seconds, compression, root, server_nice)
                    res.attempt = attempt
                    print(describe(res), flush=True)
                    if res.verdict == "PASS":
                        break
                results[kind].append(res)
                if res.verdict != "PASS":
                    climbing.discard(kind)
            if not climbing:
                break
    except KeyboardInterrupt:
        print("\ninterrupted: stopping servers and removing temp files", file=sys.stderr)
        return 130
    finally:
        for proc in list(LIVE):
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            LIVE.remove(proc)
        shutil.rmtree(root, ignore_errors=True)

    print(f"load average {loadavg()} at end")
    summary(results, levels)
    return 0


def summary(results: dict[str, list[Result]], levels: list[int]) -> None:
    def best(kind: str) -> tuple[int, str]:
        rs = results.get(kind, [])
        passed = [r.n for r in rs if r.verdict == "PASS"]
        top = max(passed, default=0)
        last = rs[-1] if rs else None
        if last is None:
            return 0, "not run"
        if last.verdict == "PASS":
            return top, f"{top} (the highest level tried)"
        if last.verdict == "CLIENT-LIMITED":
            return top, f">={top} (client could not keep pace at {last.n})"
        return top, f"{top} (failed at {last.n})" if top else f"<{last.n} (failed at {last.n})"

    lab_n, lab_s = best("lab")
    bare_n, bare_s = best("bare")
    ratio = f"{lab_n / bare_n:.2f}" if bare_n else "n/a"
    print(f"max real-time streams: lab {lab_s}, bare websockets {bare_s} (lab/baseline = {ratio})")
    common = [n for n in levels
              if any(r.n == n and r.verdict == "PASS" for r in results.get("lab", []))
              and any(r.n == n and r.verdict == "PASS" for r in results.get("bare", []))]
    if common:
        n = max(common)
        lab = next(r for r in results["lab"] if r.n == n)
        bare = next(r for r in results["bare"] if r.n == n)
        print(f"CPU per stream (at N={n}, the highest level both passed): lab {lab.cpu_ms_per_stream_s:.2f} ms/s, "
              f"baseline {bare.cpu_ms_per_stream_s:.2f} ms/s "
              f"(ratio {lab.cpu_ms_per_stream_s / bare.cpu_ms_per_stream_s:.1f})")
    else:
        print("CPU per stream: no level that both servers passed")


if __name__ == "__main__":
    sys.exit(main())
