#!/usr/bin/env python
"""The lab's /socket endpoint against what a user would write instead, in one run: streams held, CPU per
frame, latency, and pacing drift, on an idle machine and with two CPU-bound processes beside it.

A benchmark, not a test: it prints figures and ratios and asserts nothing about speed (machines are noisy;
only ratios measured in the same run mean anything).

For each condition (``--conditions idle,loaded``; loaded = two ``python3 -c "while True: pass"`` running
for the whole condition), for each level N (default 100, 200, 300, 400, 600, 800), each server in turn
(interleaved, so a noisy neighbour hits them alike), each in its own subprocess so that its CPU can be read
from /proc/<pid>/stat (utime + stime); servers in bench/server/socket_servers.py:

* **lab**: the real ``SocketHub`` behind ``create_app`` on ``ServerRunner`` (uvicorn, ``/socket`` a native
  ASGI handler whose binary messages uvicorn's protocol hands straight to the session), recording every
  call to its own crash-safe WAV (frames copied through a map of the file's end, labkit.media.wav_tail;
  ``lab-write`` writes them with os.write instead, ``lab-norec`` not at all, ``lab-queue`` takes every frame
  through the ASGI queue). The only addition, made in the
  subprocess, is a ``SocketSession.on_frame`` override noting the frame's latency once it is queued for
  the hub's writer thread (the WAVs are read afterwards with ``wave``, which trusts the header, and every
  frame must be there in order).
* **bare**: a minimal ``websockets.asyncio.server`` on the same event loop (uvloop unless
  ``--baseline-loop asyncio``): per binary message one unbuffered ``write()`` of the 640 bytes to a raw
  file. Not crash-safe as a WAV (no header at all).
* **aiohttp** (when installed): the same handler on aiohttp's WebSocket server, same loop.

The load generator (bench/server/socket_load.py, this process) opens N connections and sends 50 frames/s
per stream on a deadline schedule for ``--seconds``. A level passes when nothing is lost, p99 latency
< 20 ms, the client kept pace and TCP never pushed back. The load generator stands in for the platform,
so it runs at real-time priority (``--client-priority``) and is timed: if it falls behind, the level is
CLIENT-LIMITED (inconclusive) unless the server's p99 exceeds the limit by more than the client's lateness.

Pacing drift: bench/server/pacing_drift.py in its own process per condition (``--pace-seconds``).

    .venv/bin/python bench/server/bench_socket_server.py [--levels 100,200,300,400,600,800] [--seconds 8]
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
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _path in (str(REPO), str(HERE)):  # run as a script from anywhere: labkit comes from this checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

from socket_load import FRAME_S, RATE, drive, loadavg  # noqa: E402
from socket_servers import FRAME_BYTES, SERVERS, serve  # noqa: E402

P99_LIMIT_MS = 20.0
CLIENT_LATE_LIMIT_MS = 20.0  # client lateness p99 above one frame period: the load was not real time
WHAT = {
    "lab": "lab = labkit SocketHub on create_app/ServerRunner (uvicorn, one {loop} event loop), a crash-safe WAV "
           "per call (each frame copied on the loop through a shared map of the file's end, space reserved 64 KiB "
           "ahead, the header's sizes patched in the map after each; frames handed from uvicorn's protocol "
           "straight to the session; the file made by the writer thread with the first frame, which then hands "
           "the call back to the loop; the writer thread takes over if the disk is slow); latency noted once "
           "written or queued",
    "bare": "bare = websockets.asyncio.server on the {loop} loop: per binary message one unbuffered write() of "
            "the 640 bytes to a raw .pcm file + a latency note; no WAV header, no threads",
    "aiohttp": "aiohttp = aiohttp.web WebSocketResponse on the {loop} loop: the same handler as bare",
    "lab-norec": "lab-norec = the lab with recording off (no file): lab minus lab-norec is what recording costs",
    "lab-write": "lab-write = the lab writing each frame with os.write instead of through the map of the WAV's end",
    "lab-queue": "lab-queue = the lab taking each frame through uvicorn's ASGI queue (a task switch per frame), as "
                 "before its protocol handed frames straight to the session",
}


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


# ================================================================ measuring (parent)

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
    server_kernel_s: float = float("nan")  # of server_cpu_s, what the kernel ran for it (stime)
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
    def us_per_frame(self) -> float:
        """Server CPU per frame received, in microseconds (all its threads)."""
        return self.server_cpu_s * 1e6 / self.received if self.received else float("nan")

    @property
    def kernel_us_per_frame(self) -> float:
        """Of `us_per_frame`, what the kernel ran for the server (system calls, page faults)."""
        return self.server_kernel_s * 1e6 / self.received if self.received else float("nan")

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
    """(frames in the files, frames whose sequence numbers are exactly 0, 1, 2... per file, notes).

    The lab's WAVs are read with `wave`, which believes the header's sizes: a header that undercounts
    shows as frames missing, one that overcounts as an error."""
    total = in_order = 0
    notes: list[str] = []
    for path in sorted(folder.iterdir()):
        if kind.startswith("lab"):  # the lab's WAVs, whichever way they were written
            with wave.open(str(path)) as w:
                if w.getframerate() != RATE or w.getnchannels() != 1:
                    notes.append(f"{path.name}: {w.getframerate()} Hz x {w.getnchannels()}")
                data = w.readframes(w.getnframes())
        else:
            data = path.read_bytes()
        if len(data) % FRAME_BYTES:
            notes.append(f"{path.name}: {len(data)} bytes is not a whole number of frames")
        rows = np.frombuffer(data[: len(data) // FRAME_BYTES * FRAME_BYTES], np.uint8).reshape(-1, FRAME_BYTES)
        seqs = rows[:, 8:16].copy().view("<i8").ravel()
        total += len(seqs)
        in_order += int(np.sum(seqs == np.arange(len(seqs))))
    return total, in_order, notes


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
        if server.get("recorded") is not None:  # lab-norec writes no files: what it received is all there is
            res.recorded = res.recorded_in_order = server["recorded"]
        else:
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
    recorded = f"recorded {r.recorded_in_order}/{r.sent} in order"
    if r.recorded != r.recorded_in_order:
        recorded += f" ({r.recorded} frames in files)"
    tag = f" (try {r.attempt})" if r.attempt > 1 or r.verdict != "PASS" else ""
    line = (f"  {r.kind:<8} N={r.n:<4}{tag}: {r.lost} lost, {recorded}, latency p50 {r.p50_ms:.1f} p99 "
            f"{r.p99_ms:.1f} max {r.max_ms:.0f} ms, server {r.server_cores:.2f} core = {r.us_per_frame:.1f} us/frame "
            f"({r.kernel_us_per_frame:.1f} in the kernel); "
            f"client late p99 {r.client_late_p99_ms:.1f} ms; others {r.other_cores:.2f} core -> {r.verdict}")
    notes = list(r.notes)
    if r.window_s > r.seconds + 1.0:
        notes.append(f"the server needed {r.window_s:.1f} s to take in {r.seconds:g} s of audio")
    return line + "".join(f"\n{'':<12}note: {n}" for n in notes)


def start_hogs(n: int) -> list[subprocess.Popen]:
    """Two CPU-bound processes (`python3 -c "while True: pass"`), as on a machine doing other work."""
    python = shutil.which("python3") or sys.executable
    hogs = [subprocess.Popen([python, "-c", "while True: pass"], start_new_session=True) for _ in range(n)]
    LIVE.extend(hogs)
    return hogs


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for proc in hogs:
        proc.kill()
        proc.wait(5)
        LIVE.remove(proc)


def pacing(seconds: float) -> dict:
    """Run bench/server/pacing_drift.py in its own process; its JSON figures (or an error)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(HERE / "pacing_drift.py"), "--seconds", str(seconds)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=seconds * 4 + 60)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def climb(kinds: list[str], levels: list[int], args, root: Path, nice: int, compression: str | None
          ) -> dict[str, list[Result]]:
    """Each level, each server in turn (interleaved), until every server has failed a level."""
    results: dict[str, list[Result]] = {k: [] for k in kinds}
    climbing = list(kinds)
    for n in levels:
        for kind in list(climbing):
            for attempt in range(1, args.tries + 1):  # best of `tries`: a noisy machine stalls now and then
                res = run_level(kind, n, args.seconds, compression, root, nice)
                res.attempt = attempt
                print(describe(res), flush=True)
                if res.verdict == "PASS":
                    break
            results[kind].append(res)
            if res.verdict != "PASS":
                climbing.remove(kind)
        if not climbing:
            break
    return results


def cost(kinds: list[str], args, root: Path, nice: int, compression: str | None) -> dict[str, list[Result]]:
    """`--cost-rounds` runs of every server at `--cost-level` streams, interleaved (lab, bare, aiohttp, lab,
    ...): on a shared machine one run's CPU and p99 swing by tens of percent, their medians much less."""
    runs: dict[str, list[Result]] = {k: [] for k in kinds}
    for _ in range(args.cost_rounds):
        for kind in kinds:
            res = run_level(kind, args.cost_level, args.seconds, compression, root, nice)
            runs[kind].append(res)
            print(describe(res), flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="100,200,300,400,600,800", help="concurrent streams, comma-separated")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds of audio per stream per level")
    ap.add_argument("--servers", default="lab,bare,aiohttp",
                    help="which servers to measure: lab, bare, aiohttp, lab-norec (the lab with recording off)")
    ap.add_argument("--conditions", default="idle,loaded",
                    help="idle, loaded (two CPU-bound processes beside it), or both")
    ap.add_argument("--cost-level", type=int, default=100, help="streams for the interleaved cost rounds")
    ap.add_argument("--cost-rounds", type=int, default=5, help="interleaved rounds per server at --cost-level "
                    "(medians of CPU per frame and p99 come from these; 0: skip)")
    ap.add_argument("--pace-seconds", type=float, default=120.0, help="length of the pacing-drift run (0: skip)")
    ap.add_argument("--tries", type=int, default=2, help="runs of a level before it counts as not passed")
    ap.add_argument("--compression", choices=["none", "deflate"], default="none",
                    help="permessage-deflate offered by the client")
    ap.add_argument("--client-priority", choices=["rt", "nice", "none"], default="rt",
                    help="priority of the load generator, which stands in for the platform's own machines: "
                         "rt = SCHED_RR 10 (falls back to nice), nice = nice -10; servers keep this shell's")
    ap.add_argument("--baseline-loop", choices=["asyncio", "uvloop"], default="uvloop",
                    help="the baselines' event loop (default: the lab's, uvloop)")
    ap.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    ap.add_argument("--nice", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--streams", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    raise_fd_limit()
    if args.serve:
        if args.nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        serve(args.serve, args.streams, args.folder, args.out)
        return 0

    from labkit.server.runner import loop_runner

    os.environ["BENCH_BASELINE_LOOP"] = args.baseline_loop  # the servers are subprocesses: they inherit it
    levels = sorted(int(x) for x in args.levels.split(","))
    kinds = [k for k in SERVERS if k in args.servers.split(",")]
    if "aiohttp" in kinds:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            kinds.remove("aiohttp")
            print("aiohttp is not installed (pip install -e '.[test]'): measured without it")
    conditions = [c for c in ("idle", "loaded") if c in args.conditions.split(",")]
    compression = None if args.compression == "none" else "deflate"

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    server_nice = os.getpriority(os.PRIO_PROCESS, 0)
    priority = raise_client_priority(args.client_priority, server_nice)
    root = Path(tempfile.mkdtemp(prefix="labkit-bench-socket-"))
    print(f"machine: {os.cpu_count()} CPUs, load average {loadavg()} at start (shared: other work on it shows as "
          f"'others'); python {sys.version.split()[0]}; {args.seconds:g} s per level, 16 kHz, 640-byte frames at "
          f"50/s per stream; {priority}")
    print(f"pass = 0 lost, p99 < {P99_LIMIT_MS:g} ms, no TCP backpressure, client late p99 < "
          f"{CLIENT_LATE_LIMIT_MS:g} ms; a level that does not pass is tried again (at most {args.tries} runs)")
    for kind in kinds:
        print(WHAT[kind].format(loop=loop_runner()[0] if kind == "lab" else args.baseline_loop))
    runs: dict[str, dict] = {}
    try:
        for condition in conditions:
            hogs = start_hogs(2) if condition == "loaded" else []
            try:
                print(f"== {condition}" + (" (two CPU-bound processes beside it)" if hogs else ""), flush=True)
                print(f"  -- cost: {args.cost_rounds} interleaved rounds at N={args.cost_level}", flush=True)
                costs = cost(kinds, args, root, server_nice, compression)
                print("  -- streams held: climbing the levels", flush=True)
                results = climb(kinds, levels, args, root, server_nice, compression)
                drift = pacing(args.pace_seconds) if args.pace_seconds > 0 else {}
            finally:
                stop_hogs(hogs)
            runs[condition] = {"results": results, "costs": costs, "pacing": drift}
            print(f"  pacing over {args.pace_seconds:g} s: {json.dumps(drift)}", flush=True)
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
    from socket_report import table

    print(table(runs, kinds, args.pace_seconds, args.cost_level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
