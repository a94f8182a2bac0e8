"""Servers the server tests and the fault suite share: each fixture's setup as a context manager, so the
fault suite (tests/test_faults.py) runs the same scenarios as cases of its own."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from labkit.events import EventLog
from labkit.server import ServerContext, ServerRunner, create_app
from labkit.server.limits import Limits
from labkit.server.sockets import SocketHub


def serve(tmp_path: Path, **limits: Any) -> tuple[EventLog, SocketHub, ServerRunner]:
    """A lab server with its socket hub and the given limits (`Limits` field names)."""
    events = EventLog()
    hub = SocketHub(events, folder=tmp_path / "recordings")
    runner = ServerRunner(create_app(ServerContext(events=events, answer=lambda p: [], sockets=hub)),
                          on_stop=hub.close_all, limits=Limits(**limits)).start()
    return events, hub, runner


@contextlib.contextmanager
def limits_servers(tmp_path: Path) -> Iterator[Callable[..., tuple[EventLog, SocketHub, ServerRunner]]]:
    """`make(**limits)` starts a server; every one made is stopped at the end."""
    made: list[tuple[EventLog, SocketHub, ServerRunner]] = []

    def make(**limits: Any) -> tuple[EventLog, SocketHub, ServerRunner]:
        made.append(serve(tmp_path, **limits))
        return made[-1]

    try:
        yield make
    finally:
        for _, _, runner in made:
            runner.stop()


def audio_folder(tmp_path: Path) -> Path:
    """An audio folder with a WAV and an MP3, and a secret file beside it that must never be served."""
    folder = tmp_path / "audio"
    folder.mkdir()
    (folder / "tone.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    (folder / "song.mp3").write_bytes(b"ID3" + b"\x00" * 500)
    (tmp_path / "secret.txt").write_text("do not serve")
    return folder


@contextlib.contextmanager
def serving(audio_dir: Path) -> Iterator[tuple[ServerContext, ServerRunner]]:
    """A lab server on `audio_dir` whose answer webhook says hi to the caller."""
    ctx = ServerContext(events=EventLog(), answer=lambda p: [{"action": "talk", "text": f"hi {p.get('from')}"}],
                        audio_dirs=[audio_dir])
    runner = ServerRunner(create_app(ctx)).start()
    try:
        yield ctx, runner
    finally:
        runner.stop()


@contextlib.contextmanager
def socket_hub(tmp_path: Path) -> Iterator[SocketHub]:
    """A socket hub served by a lab server; `hub.base` is its ws:// address, `hub.runner` the server."""
    events = EventLog()
    hub = SocketHub(events, folder=tmp_path / "recordings")
    runner = ServerRunner(create_app(ServerContext(events=events, answer=lambda p: [], sockets=hub)),
                          on_stop=hub.close_all).start()
    hub.base = f"ws://127.0.0.1:{runner.port}"
    hub.runner = runner
    try:
        yield hub
    finally:
        runner.stop()


def output_reader(capfd: Any) -> Callable[[], str]:
    """`printed()`: everything written to stdout and stderr (file descriptors and sys.*) since the
    reader was made, which is what a notebook cell's output would show."""
    seen: list[str] = []

    def printed() -> str:
        out, err = capfd.readouterr()
        seen.append(out + err)
        return "".join(seen)

    printed()  # start from now
    return printed


def refusal_totals(events: EventLog, refusals: Any) -> tuple[dict[str, int], int]:
    """(refused requests per kind, event lines that reported them), after flushing the window."""
    refusals.flush()
    lines = [e for e in events if e.status == "refused"]
    totals: dict[str, int] = {}
    for e in lines:
        totals[e.payload["kind"]] = totals.get(e.payload["kind"], 0) + e.payload["count"]
    return totals, len(lines)
