"""Paced audio through the lab's server: how evenly do frames reach the platform's end of the socket?

    .venv/bin/python bench/server/bench_socket_pacing.py [--seconds 10] [--rate 16000]

The paced sender runs on its own thread and each frame crosses into the server's event loop
(uvicorn) to be written. A `websockets` client stands in for the platform and notes when each frame
arrives. Printed side by side, from the same run: the pacer's own send instants (the baseline: what
the schedule was) and the arrival instants at the client (what the platform would hear).
Jitter is |gap - 20 ms| between consecutive frames; drift is the last frame's lateness.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from websockets.sync.client import connect  # noqa: E402

from labkit import protocol  # noqa: E402
from labkit.events import EventLog  # noqa: E402
from labkit.media.audio import tone  # noqa: E402
from labkit.media.frames import content_type  # noqa: E402
from labkit.server import ServerContext, ServerRunner, create_app  # noqa: E402
from labkit.server.sockets import SocketHub  # noqa: E402


def figures(times: np.ndarray) -> str:
    gaps = np.diff(times) * 1000
    jitter = np.abs(gaps - 20.0)
    drift = ((times[-1] - times[0]) - 0.020 * (times.size - 1)) * 1000
    return (f"jitter p50 {np.percentile(jitter, 50):.3f} ms  p99 {np.percentile(jitter, 99):.3f} ms  "
            f"max gap {gaps.max():.1f} ms  drift {drift:+.2f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=16000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        events = EventLog()
        hub = SocketHub(events, folder=Path(folder))
        runner = ServerRunner(create_app(ServerContext(events=events, answer=lambda p: [], sockets=hub)),
                              on_stop=hub.close_all).start()
        try:
            with connect(f"ws://127.0.0.1:{runner.port}" + hub.url("", "bench")) as ws:
                ws.send(protocol.connected(content_type(args.rate)))
                deadline = time.monotonic() + 10
                while not hub.sessions and time.monotonic() < deadline:
                    time.sleep(0.01)
                session = hub.sessions[0]
                frames = int(args.seconds * 50)
                session.play((tone(440, args.seconds, args.rate), args.rate))
                arrived = []
                while len(arrived) < frames:
                    message = ws.recv(timeout=10)
                    if isinstance(message, bytes):
                        arrived.append(time.monotonic())
                sent = session.pacer.stats.send_times
        finally:
            runner.stop()
    print(f"{frames} frames of {args.seconds:g} s at {args.rate} Hz, paced into the lab's /socket (uvicorn loop):")
    print(f"  pacer send instants (baseline)  : {figures(np.asarray(sent))}")
    print(f"  arrival at the platform's end   : {figures(np.asarray(arrived))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
