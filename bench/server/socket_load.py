"""The load generator of bench_socket_server.py: N WebSocket streams of 20 ms frames on a deadline schedule,
standing in for the platform, and the CPU and timing figures read around them.

Each frame is 640 bytes: float64 ``time.monotonic()`` at send, int64 sequence number, zeros; the server
computes latency = receipt - send (CLOCK_MONOTONIC is system-wide on Linux).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from socket_servers import FRAME_BYTES, HEAD

RATE = 16000
FRAME_S = 0.020
FPS = 50


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | str) -> float:
    """utime + stime of a process, in seconds (all its threads)."""
    return sum(proc_cpu_split(pid))


def proc_cpu_split(pid: int | str) -> tuple[float, float]:
    """(utime, stime) of a process, in seconds: what it ran itself, and what the kernel ran for it
    (system calls, page faults: where writing a file's pages shows)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


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


async def wait_for_files(folder: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for _ in folder.iterdir()) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sum(1 for _ in folder.iterdir())} of {n} streams were set up in {timeout} s")
        await asyncio.sleep(0.05)


def _audio_bytes(path: Path) -> int:
    """Bytes of audio in a server's file: a WAV's data size from its header (the lab reserves space ahead
    of its data, so the file's size says nothing), a raw file's size."""
    if path.suffix != ".wav":
        return path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(44)
    return int.from_bytes(head[40:44], "little") if len(head) == 44 and head[36:40] == b"data" else 0


async def wait_for_writes(folder: Path, expected_bytes: int, timeout: float = 30) -> None:
    """Until the files hold every frame, or stop growing for a second (the server is done either way)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = sum(_audio_bytes(p) for p in folder.iterdir())
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
                res: Any) -> None:
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
        w0, (user0, kern0), me0, sys0 = time.monotonic(), proc_cpu_split(server_pid), proc_cpu("self"), system_busy()
        t0 = time.monotonic() + 0.05
        await pace(sockets, t0, frames, stats)
        wc, me1 = time.monotonic(), proc_cpu("self")
        await asyncio.gather(*(ws.close() for ws in sockets))
        await wait_for_writes(folder, n * frames * FRAME_BYTES)
        w1, (user1, kern1), sys1 = time.monotonic(), proc_cpu_split(server_pid), system_busy()
    finally:
        for ws in conns:
            if ws.state.name != "CLOSED":
                ws.transport.abort()
    # cores: over the window from the first frame until the server had written everything (longer than
    # `seconds` when the server lags); cost per stream: CPU seconds per second of audio streamed.
    res.sent = stats.sent
    res.window_s = w1 - w0
    res.seconds = seconds
    cpu0, cpu1 = user0 + kern0, user1 + kern1
    res.server_cpu_s = cpu1 - cpu0
    res.server_kernel_s = kern1 - kern0
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
