"""The servers the socket benchmarks compare, each run in its own subprocess (bench_socket_server.py starts
them with ``--serve KIND``): the lab, a bare ``websockets`` server, and an ``aiohttp`` one.

Each prints ``{"urls": [...]}`` on stdout once it listens, notes every frame's latency (receipt minus the
send time the client wrote into it), and on SIGTERM writes its totals to ``out`` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import threading
import time
from pathlib import Path

FRAME_BYTES = 640  # 20 ms of 16-bit mono at 16 kHz
HEAD = struct.Struct("<dq")  # send time (monotonic seconds), sequence number
SERVERS = ("lab", "bare", "aiohttp", "lab-norec", "lab-write", "lab-queue")
# lab-norec: the lab with recording off, to see its cost; lab-write: the lab writing each frame with os.write
# instead of through the map of the WAV's end (labkit.media.wav_tail), to see what the map saves; lab-queue: the
# lab taking every frame through uvicorn's ASGI queue, as before the protocol handed frames over (take_frames)


def frame_latency(frame: bytes) -> float:
    return time.monotonic() - HEAD.unpack_from(frame)[0]


def say_connected(folder: Path, name: str) -> None:
    """Tell the load generator a stream is connected. Every server makes its recording with the first frame
    (the lab's rule: an empty connection leaves no file), so that cost falls inside the measured window
    for all of them alike; "connected" is said apart, with a file in a sibling folder."""
    (folder.parent / "ready" / name).touch()


def serve_lab(streams: int, folder: Path, out: Path) -> None:
    """The real SocketHub; a SocketSession subclass (patched in this process only) adds the listener."""
    import labkit.server.sockets as sockets
    from labkit.events import EventLog
    from labkit.server import ServerContext, ServerRunner, create_app

    latencies: list[float] = []
    note = latencies.append
    record = os.environ.get("BENCH_LAB_RECORD") != "0"
    received = [0]

    class BenchSession(sockets.SocketSession):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            say_connected(folder, str(self.link))

        def on_frame(self, frame: bytes) -> None:
            super().on_frame(frame)
            received[0] += 1
            note(frame_latency(frame))

    if os.environ.get("BENCH_LAB_MAP_DATA") == "0":  # lab-write
        import labkit.media.recorder as recorder

        plain = recorder.WavRecorder.__init__
        recorder.WavRecorder.__init__ = lambda self, *a, **k: plain(self, *a, **{**k, "map_data": False})
    if os.environ.get("BENCH_LAB_MAP") == "0":  # diagnosis: sizes patched with pwrite instead of the shared map
        import labkit.media.recorder as recorder

        plain = recorder.WavRecorder.__init__
        recorder.WavRecorder.__init__ = lambda self, *a, **k: plain(self, *a, **{**k, "map_header": False})
    if os.environ.get("BENCH_LAB_DIRECT") == "0":  # lab-queue
        import labkit.server.runner as runner_module

        made = runner_module.websocket_protocol

        def queued_protocol() -> type:
            class Queued(made()):  # type: ignore[misc,valid-type]
                def take_frames(self, sink) -> bool:
                    return False

            return Queued

        runner_module.websocket_protocol = queued_protocol
    if not record:  # lab-norec: what the lab costs without its recorder (no file is made)
        class NoRecorder:
            def append_frame(self, frame: bytes) -> None:
                pass

            def append_frames(self, frames) -> None:
                pass

        nothing = NoRecorder()
        BenchSession._open_recorder = lambda self: nothing  # type: ignore[method-assign,assignment]
    sockets.SocketSession = BenchSession  # open_session looks the class up in its module at connect time

    # The lab refuses connections past LABKIT_MAX_CONNECTIONS (500 by default: a server a tunnel makes public
    # has limits); a user who records more calls raises it, and so does this benchmark for its levels.
    os.environ.setdefault("LABKIT_MAX_CONNECTIONS", str(max(500, streams + 100)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    events = EventLog()
    hub = sockets.SocketHub(events, folder=folder)
    runner = ServerRunner(create_app(ServerContext(events=events, answer=lambda p: [], sockets=hub)),
                          on_stop=hub.close_all).start()
    if os.environ.get("BENCH_GC_FREEZE") == "1":  # diagnosis: are the lab's p99 spikes full GC passes?
        import gc

        gc.freeze()
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
        "sessions": len(recordings) if record else streams, "open_at_stop": still_open,
        "received": sum(r.frames_received + r.frames_malformed for r in recordings) if record else received[0],
        "recorded": None if record else received[0],  # nothing is written: not checked
        "malformed": sum(r.frames_malformed for r in recordings),
        "latency_s": latencies,
    }))


def _run_on_baseline_loop(main) -> None:
    """Run a baseline server's coroutine on the loop the lab uses in this run (BENCH_BASELINE_LOOP)."""
    if os.environ.get("BENCH_BASELINE_LOOP") == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def serve_bare(streams: int, folder: Path, out: Path) -> None:
    _run_on_baseline_loop(_serve_bare(streams, folder, out))


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
            say_connected(folder, name)
            f = None
            try:
                async for message in ws:
                    if isinstance(message, bytes):
                        totals["received"] += 1
                        if len(message) != FRAME_BYTES:
                            totals["malformed"] += 1
                            continue
                        if f is None:  # with the first frame, as the lab makes its WAV
                            f = open(folder / f"{name}.pcm", "wb", buffering=0)  # noqa: SIM115
                        f.write(message)
                        latencies.append(frame_latency(message))
            except ConnectionClosed:
                pass
            finally:
                if f is not None:
                    f.close()
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


def serve_aiohttp(streams: int, folder: Path, out: Path) -> None:
    """aiohttp's WebSocket server on the same loop as the bare one: the other thing a user might write."""
    _run_on_baseline_loop(_serve_aiohttp(streams, folder, out))


async def _serve_aiohttp(streams: int, folder: Path, out: Path) -> None:
    from aiohttp import WSMsgType, web

    latencies: list[float] = []
    totals = {"sessions": 0, "received": 0, "malformed": 0}
    active: set = set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=0)
        await ws.prepare(request)
        active.add(ws)
        try:
            hello = await ws.receive()
            if hello.type != WSMsgType.TEXT or json.loads(hello.data).get("event") != "websocket:connected":
                await ws.close(code=1008, message=b"expected websocket:connected")
                return ws
            totals["sessions"] += 1
            name = request.match_info["name"]
            say_connected(folder, name)
            f = None
            try:
                async for message in ws:
                    if message.type == WSMsgType.BINARY:
                        totals["received"] += 1
                        if len(message.data) != FRAME_BYTES:
                            totals["malformed"] += 1
                            continue
                        if f is None:  # with the first frame, as the lab makes its WAV
                            f = open(folder / f"{name}.pcm", "wb", buffering=0)  # noqa: SIM115
                        f.write(message.data)
                        latencies.append(frame_latency(message.data))
            finally:
                if f is not None:
                    f.close()
        finally:
            active.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
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
    await runner.cleanup()
    out.write_text(json.dumps({**totals, "open_at_stop": still_open, "latency_s": latencies}))


def serve(kind: str, streams: int, folder: Path, out: Path) -> None:
    if kind == "lab-norec":
        os.environ["BENCH_LAB_RECORD"] = "0"
    if kind == "lab-write":
        os.environ["BENCH_LAB_MAP_DATA"] = "0"
    if kind == "lab-queue":
        os.environ["BENCH_LAB_DIRECT"] = "0"
    (folder.parent / "ready").mkdir(exist_ok=True)  # before any URL is printed: the load generator waits there
    run = {"lab": serve_lab, "lab-norec": serve_lab, "lab-write": serve_lab, "lab-queue": serve_lab, "bare": serve_bare,
           "aiohttp": serve_aiohttp}[kind]
    run(streams, folder, out)
