"""A user's app as a plain `http.server`, for tests of `labkit sandbox` as its own process.

It answers `/answer` with the NCCO set for the caller (`nccos[from]`), serves audio files, answers any
path listed in `statuses` with that HTTP status (a broken webhook), and keeps every request it got (GET
query or JSON body) so a test can wait for one. Nothing of labkit is imported: it is what a user writes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Hit:
    """One request the app got: GET fields come from the query string, POST fields from the JSON body."""

    method: str
    path: str
    fields: dict = field(default_factory=dict)
    raw_query: str = ""


class WebhookApp:
    def __init__(self) -> None:
        self.nccos: dict[str, list] = {}  # caller number -> NCCO for /answer
        self.files: dict[str, bytes] = {}  # "name.wav" -> bytes served at /name.wav
        self.statuses: dict[str, int] = {}  # path -> status to answer with (e.g. {"/broken": 500})
        self.hits: list[Hit] = []
        self.cv = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, fields: dict) -> None:
                parts = urlsplit(self.path)
                with outer.cv:
                    outer.hits.append(Hit(self.command, parts.path, fields, parts.query))
                    outer.cv.notify_all()
                if parts.path in outer.statuses:
                    self._send(outer.statuses[parts.path], b"broken", "text/plain")
                elif parts.path == "/answer":
                    ncco = outer.nccos.get(str(fields.get("from", "")), [])
                    self._send(200, json.dumps(ncco).encode(), "application/json")
                elif parts.path.lstrip("/") in outer.files:
                    self._send(200, outer.files[parts.path.lstrip("/")], "audio/wav")
                else:
                    self._send(200, b"", "text/plain")

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._handle(dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True)))

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                self._handle(body if isinstance(body, dict) else {"_body": body})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, match: Callable[[Hit], bool], timeout: float = 30.0) -> Hit:
        """The first request that `match`es (waiting for it); AssertionError after `timeout` seconds."""
        with self.cv:
            found = self.cv.wait_for(lambda: next((h for h in self.hits if match(h)), None), timeout)
        assert found is not None, f"no such request within {timeout} s; got {[(h.method, h.path) for h in self.hits]}"
        return found

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
