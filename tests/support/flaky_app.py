"""An app whose answer URL goes wrong on demand, in each way a person's app does (the sandbox page's and the
panel's inspector tests): an answer of HTTP 500, an NCCO the platform refuses, or not running at all."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FlakyApp:
    """An app whose answer_url answers as `mode` says: "500", "bad" (an NCCO with a wrong field) or "ok"."""

    def __init__(self) -> None:
        self.mode = "ok"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _reply(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if outer.mode == "500":
                    self._reply(500, {"error": "boom"})
                elif outer.mode == "bad":
                    self._reply(200, [{"action": "stream", "streamUrl": "http://127.0.0.1:9/a.mp3"}])  # not a list
                else:
                    self._reply(200, [{"action": "talk", "text": "Hello"}])

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._reply(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
