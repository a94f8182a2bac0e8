"""The /socket endpoint's state: each call's WebSocket audio is recorded to its own WAV, and audio can be sent back.

This module holds the hub (`SocketHub`: sessions, recordings, socket links); one connection's session,
`SocketSession`, is in labkit.server.socket_session and importable from here too.

There is one session per connection. The platform connects to the URI the lab put in the call's
connect script; that URI carries the lab's token (a tunnel makes the endpoint public) and a link id
that ties the connection to its call. The connection itself is served on uvicorn's event loop by
`labkit.server.socket_endpoint`.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import WaitTimeout
from labkit.server.socket_links import SocketLinks
from labkit.server.socket_session import SocketSession
from labkit.server.socket_workers import SessionWorkers

if TYPE_CHECKING:  # pragma: no cover
    from labkit.events import EventLog

log = logging.getLogger("labkit.socket")


class RecordingList(list):
    """A list of recordings that shows as a table in a notebook."""

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("#", "call", "start", "duration", "rate", "frames", "malformed"))
        rows = []
        for i, r in enumerate(self):
            start = f"{r.started_at:%H:%M:%S}" if r.started_at else ""
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                i, (r.call_uuid or "")[:8], start, f"{r.duration:.2f} s", r.rate, r.frames_received,
                r.frames_malformed)) + "</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


class SocketHub:
    """The open WebSocket sessions of one lab, the recordings of closed ones, and the socket links.

    Closed sessions leave memory (only the last few stay for lookups); their recordings stay listed.
    """

    RECENT = 16  # closed sessions kept for `session_for` and `sessions`

    def __init__(self, events: EventLog, *, folder: Path | None = None,
                 resolve_audio: Callable[[str], Path] | None = None, speed: float = 1.0):
        self.events = events
        self.speed = speed  # the platform's clock rate: the sandbox may run faster than real time
        self.resolve_audio = resolve_audio
        self.folder = Path(folder) if folder else Path.cwd() / "recordings"
        # Import the recorder now, not when the first frame of a call arrives.
        import labkit.media.recorder  # noqa: F401
        self._cond = threading.Condition()
        self.links = SocketLinks(self._cond)
        self._open: list[SocketSession] = []
        self._recent: deque[SocketSession] = deque(maxlen=self.RECENT)
        self._finished: list[tuple] = []  # recordings of closed sessions: (path, rate, call, start, frames, bad)
        self.workers = SessionWorkers(lambda payload: events.add("socket", payload))

    @property
    def sessions(self) -> list[SocketSession]:
        """The last few closed sessions, then the open ones (oldest first)."""
        with self._cond:
            return [*self._recent, *self._open]

    # -- addresses and bindings ------------------------------------------------------------------
    def url(self, ws_base: str, link: str | None = None) -> str:
        """A socket URI with a fresh one-use token (see labkit.server.socket_links)."""
        return self.links.url(ws_base, link)

    def issue(self, ncco: list[dict[str, Any]], call_uuid: str | None = None, *,
              tokens: bool = True) -> list[dict[str, Any]]:
        """The script as handed out: fresh one-use tokens in every lab socket URI (none with `tokens=False`),
        bound to the call."""
        return self.links.issue(ncco, call_uuid, tokens=tokens)

    def bind_links(self, ncco: Iterable[dict[str, Any]], call_uuid: str) -> None:
        """Tie every lab socket URI in a call script to that call, so its recording knows its call."""
        self.links.bind(ncco, call_uuid)

    def call_for_link(self, link: str | None) -> str | None:
        return self.links.call_for(link)

    # -- the endpoint ---------------------------------------------------------------------------
    def token_ok(self, given: str, link: str | None) -> bool:
        """Does the token in a socket URI open the socket? Each token works once, for its own link."""
        return self.links.use(given, link)

    async def serve_asgi(self, scope, receive, send, limits, refusals, allowed_hosts=None) -> None:
        """Serve one `/socket` connection (uvicorn's ASGI WebSocket scope)."""
        from labkit.server.socket_endpoint import serve

        await serve(self, scope, receive, send, limits, refusals, allowed_hosts)

    def open_session(self, link: str | None, rate: int, headers: dict[str, Any], **io: Any) -> SocketSession:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        name = re.sub(r"[^A-Za-z0-9_-]", "", self.call_for_link(link) or link or "call")[:36]
        path = self.folder / f"{stamp}-{name}-{secrets.token_hex(3)}.wav"
        session = SocketSession(self, link, rate, headers, path, **io)
        with self._cond:
            self._open.append(session)
            self._cond.notify_all()
        return session

    def finished(self, session: SocketSession) -> None:
        """A session ended (on the loop): keep its recording's details, let the session go."""
        with self._cond:
            if session in self._open:
                self._open.remove(session)
            self._recent.append(session)
            if session._recorder is not None and session.path.exists():  # a file was written (maybe cut short)
                self._finished.append((session.path, session.rate, session.call_uuid, session.started_at,
                                       session.frames_received, session.frames_malformed))
            self._cond.notify_all()

    # -- lookups ---------------------------------------------------------------------------------
    def session_for(self, call_uuid: str, timeout: float = 10.0) -> SocketSession:
        """The newest session of a call, waiting for it to connect."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [s for s in (*self._recent, *self._open) if s.call_uuid == call_uuid]
                if found:
                    return found[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"No WebSocket from call {call_uuid} within {timeout:g} s. Its script needs a connect "
                        "action to the lab's socket: labkit.lab.ncco.websocket(lab).")
                self._cond.wait(remaining)

    def recordings(self) -> RecordingList:
        """Every recording, oldest first: closed sessions' files, then open sessions' (still growing)."""
        from labkit.media.recording import Recording

        with self._cond:
            finished = list(self._finished)
            live = [s for s in self._open if s.has_audio and s.path.exists()]
        done = [Recording(path, rate, call_uuid=call, started_at=start, frames_received=frames,
                          frames_malformed=bad) for path, rate, call, start, frames, bad in finished
                if path.is_file()]  # a file the user deleted (or a disk since unmounted) is no longer listed
        return RecordingList(sorted(done + [s.recording() for s in live], key=lambda r: r.started_at))

    def close_all(self, timeout: float = 1.0) -> str | None:
        """Close every open session, all at once, within about `timeout` s; say how many had to be cut."""
        with self._cond:
            sessions = [s for s in self._open if s.open]
        cut = 0
        loops = {s._loop for s in sessions if not s._loop.is_closed()}
        for loop in loops:  # one gather per loop: 500 sockets close in one round trip, not 500
            mine = [s for s in sessions if s._loop is loop]

            async def close_them(mine=mine) -> list[bool]:
                return await asyncio.gather(*(s._aclose(timeout) for s in mine))

            future = asyncio.run_coroutine_threadsafe(close_them(), loop)
            try:
                cut += len(mine) - sum(future.result(timeout + 0.5))
            except Exception:  # noqa: BLE001 - the loop is stuck or gone: cut them all
                future.cancel()
                for session in mine:
                    session._abort()
                cut += len(mine)
        return f"{cut} WebSocket(s) whose peer did not take the close" if cut else None
