#!/usr/bin/env python3
"""An offline stand-in for the ngrok v3 agent, used as pyngrok's `ngrok_path` in tests.

It speaks exactly what pyngrok 9.1.0 needs (read from its source):

* `ngrok start --none --log stdout [--config PATH] [--authtoken TOKEN] [--region R]` starts the agent.
  pyngrok reads stdout line by line (logfmt, parsed with shlex) until it has seen
  `msg="starting web service" ... addr=HOST:PORT`, `msg="client session established"` and
  `msg="tunnel session started"`, and `GET http://HOST:PORT/api/endpoints` answers 200. Any line with
  `lvl=eror`/`lvl=crit` sets the startup error (its `err=` value; pyngrok parses `ERR_NGROK_<n>` from it).
  The startup timeout is only checked between lines, so a stalled agent must keep printing.
* The agent API: `GET/POST /api/endpoints` (config_version "3", pyngrok's default) and `/api/tunnels`
  (config_version "2"), `GET`/`DELETE /api/endpoints/<name>`. POST bodies carry `name` and
  `upstream: {url}` (v3) or `addr`/`proto` (v2); replies carry `name, id, uri, url, public_url, proto,
  upstream{url}, config{addr}`.
* `ngrok config add-authtoken TOKEN ...` must print "Authtoken saved" (`config add-api-key`: "API key
  saved"), `ngrok --version` prints "ngrok version X". pyngrok never runs these on `connect()`, but
  `ngrok.set_auth_token()` and `ngrok.get_version()` do.

Behaviour is switched by environment variables:

* `FAKE_NGROK_MODE`: `ok` (default), `bad_token` (ERR_NGROK_4018 then exit 1, as the real agent does),
  `session_limit` (ERR_NGROK_108 then exit 1), `hang` (never connects; keeps printing info lines),
  `offline` (never connects; keeps printing dial errors, like the real agent with no network),
  `echo_token` (ERR_NGROK_105, which like the real agent echoes the authtoken it was given, then exit 1).
  In `ok` mode with no authtoken at all (flag, config file or NGROK_AUTHTOKEN) it fails like `bad_token`.
* `FAKE_NGROK_LOG`: a file to which every invocation appends one JSON line `{"pid", "argv"}`.
* `FAKE_NGROK_SCHEME`: the scheme of new endpoint URLs (default `https`).
* `FAKE_NGROK_DOMAIN`: the public domain (default `fake-ngrok.test`, a reserved TLD).

Tests call `write_launcher(folder)` to get an executable `ngrok` that runs this file with the test's
own interpreter (`exec`, so the agent's pid is the launcher's pid).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = "3.99.0-fake"

AUTH_4018 = (
    "authentication failed: Usage of ngrok requires a verified account and authtoken.\\n\\n"
    "Sign up for an account, then install your authtoken from the dashboard.\\r\\n\\r\\nERR_NGROK_4018\\r\\n"
)
SESSION_108 = (
    "authentication failed: Your account is limited to 1 simultaneous ngrok agent sessions.\\n"
    "You can view your current agent sessions in the dashboard.\\r\\n\\r\\nERR_NGROK_108\\r\\n"
)
MALFORMED_105 = (
    "The authtoken you specified does not look like a proper ngrok authtoken.\\nYour authtoken: {token}\\n"
    "Instructions to install your authtoken are on your ngrok dashboard.\\r\\n\\r\\nERR_NGROK_105\\r\\n"
)
OFFLINE = 'failed to dial ngrok server with address \\"connect.ngrok-agent.test:443\\": no such host'


def write_launcher(folder: str | os.PathLike, python: str = sys.executable) -> Path:
    """Write `folder/ngrok`, an executable that runs this fake agent with `python`; return its path."""
    path = Path(folder) / "ngrok"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{python}" "{Path(__file__).resolve()}" "$@"\n')
    path.chmod(0o755)
    return path


def log(lvl: str, msg: str, **fields: str) -> None:
    """Print one logfmt line the way the agent does with `--log stdout`, and flush (pyngrok reads a pipe)."""
    stamp = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    parts = [f"t={stamp}", f"lvl={lvl}", f'msg="{msg}"']
    for key, value in fields.items():
        parts.append(f'{key}="{value}"' if (" " in value or "\\" in value or value == "") else f"{key}={value}")
    sys.stdout.write(" ".join(parts) + "\n")
    sys.stdout.flush()


def option(argv: list[str], name: str) -> str | None:
    if name in argv:
        index = argv.index(name)
        if index + 1 < len(argv):
            return argv[index + 1]
    return None


def config_authtoken(path: str | None) -> str | None:
    """The `authtoken:` value of a config file (top level in v2, under `agent:` in v3), as the agent reads it."""
    if not path or not os.path.isfile(path):
        return None
    with open(path) as handle:
        for line in handle:
            if line.strip().startswith("authtoken:") and line.split(":", 1)[1].strip():
                return line.split(":", 1)[1].strip().strip("'\"")
    return None


class Agent:
    """The agent's endpoints, kept in memory."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.lock = threading.Lock()
        self.endpoints: dict[str, dict] = {}

    def create(self, body: dict, segment: str) -> tuple[int, dict]:
        name = body.get("name") or f"endpoint-{secrets.token_hex(4)}"
        upstream = (body.get("upstream") or {}).get("url") or body.get("addr") or "80"
        if "://" not in upstream:
            upstream = f"http://localhost:{upstream}"
        with self.lock:
            if name in self.endpoints:
                return HTTPStatus.BAD_REQUEST, {"error_code": 102, "status_code": 400,
                                                "msg": "invalid tunnel configuration",
                                                "details": {"err": f"a tunnel named {name!r} already exists"}}
            scheme = os.environ.get("FAKE_NGROK_SCHEME", "https")
            url = f"{scheme}://{body['domain']}" if body.get("domain") else \
                f"{scheme}://{secrets.token_hex(6)}.{self.domain}"
            record = {
                "name": name,
                "id": f"ep_{secrets.token_hex(8)}",
                "uri": f"/api/{segment}/{name}",
                "url": url,
                "public_url": url,
                "proto": "https",
                "upstream": {"url": upstream, "protocol": "http1"},
                "config": {"addr": upstream, "inspect": True},
            }
            self.endpoints[name] = record
            return HTTPStatus.CREATED, record

    def listing(self, segment: str) -> dict:
        with self.lock:
            items = [dict(record, uri=f"/api/{segment}/{record['name']}") for record in self.endpoints.values()]
        return {segment: items, "uri": f"/api/{segment}"}


def make_handler(agent: Agent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-ngrok"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep stdout for logfmt
            pass

        def reply(self, status: int, data: dict | None = None) -> None:
            payload = b"" if data is None else json.dumps(data).encode()
            self.send_response(status)
            if data is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def route(self) -> tuple[str | None, str | None]:
            parts = [part for part in self.path.split("?", 1)[0].split("/") if part]
            if len(parts) >= 2 and parts[0] == "api" and parts[1] in ("endpoints", "tunnels"):
                return parts[1], "/".join(parts[2:]) or None
            return None, None

        def not_found(self) -> None:
            self.reply(HTTPStatus.NOT_FOUND, {"error_code": 100, "status_code": 404, "msg": "not found",
                                              "details": {"path": self.path}})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            segment, name = self.route()
            if segment is None:
                return self.not_found()
            if name is None:
                return self.reply(HTTPStatus.OK, agent.listing(segment))
            with agent.lock:
                record = agent.endpoints.get(name)
            return self.reply(HTTPStatus.OK, record) if record else self.not_found()

        def do_POST(self) -> None:  # noqa: N802
            segment, name = self.route()
            if segment is None or name is not None:
                return self.not_found()
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self.reply(HTTPStatus.BAD_REQUEST, {"error_code": 100, "status_code": 400,
                                                           "msg": "invalid JSON"})
            status, data = agent.create(body, segment)
            return self.reply(status, data)

        def do_DELETE(self) -> None:  # noqa: N802
            segment, name = self.route()
            if segment is None or name is None:
                return self.not_found()
            with agent.lock:
                found = agent.endpoints.pop(name, None)
            return self.reply(HTTPStatus.NO_CONTENT) if found else self.not_found()

    return Handler


def fail_auth(err: str) -> int:
    """The real agent's sequence when the server refuses the session: three errors, a crit, exit 1."""
    log("eror", "failed to reconnect session", obj="tunnels.session", err=err)
    log("eror", "session closing", obj="tunnels.session", err=err)
    log("eror", "terminating with error", obj="app", err=err)
    log("crit", "command failed", err=err)
    return 1


def run_agent(argv: list[str]) -> int:
    mode = os.environ.get("FAKE_NGROK_MODE", "ok")
    # the flag wins over the config file, which wins over the environment (as in the real agent)
    token = (option(argv, "--authtoken") or config_authtoken(option(argv, "--config"))
             or os.environ.get("NGROK_AUTHTOKEN"))
    has_token = bool(token)
    agent = Agent(os.environ.get("FAKE_NGROK_DOMAIN", "fake-ngrok.test"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(agent))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    host, port = server.server_address[:2]

    log("info", "no configuration paths supplied")
    log("info", "starting web service", obj="web", addr=f"{host}:{port}", allow_hosts="[]")
    if mode == "bad_token" or (mode == "ok" and not has_token):
        return fail_auth(AUTH_4018)
    if mode == "session_limit":
        return fail_auth(SESSION_108)
    if mode == "echo_token":
        return fail_auth(MALFORMED_105.format(token=token or ""))
    if mode in ("hang", "offline"):
        while True:  # pyngrok only checks its timeout between lines, so keep talking
            if mode == "offline":
                log("eror", "failed to reconnect session", obj="tunnels.session", err=OFFLINE)
            else:
                log("info", "waiting for session", obj="tunnels.session")
            time.sleep(0.1)
    log("info", "client session established", obj="tunnels.session")
    log("info", "tunnel session started", obj="tunnels.session")
    threading.Event().wait()  # serve until killed
    return 0


def main(argv: list[str]) -> int:
    record = os.environ.get("FAKE_NGROK_LOG")
    if record:
        with open(record, "a") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "argv": argv}) + "\n")
    if argv and argv[0] == "start":
        return run_agent(argv)
    if argv[:2] == ["config", "add-authtoken"] and len(argv) > 2:
        print(f"Authtoken saved to configuration file: {option(argv, '--config') or 'ngrok.yml'}")
        return 0
    if argv[:2] == ["config", "add-api-key"] and len(argv) > 2:
        print(f"API key saved to configuration file: {option(argv, '--config') or 'ngrok.yml'}")
        return 0
    if argv and argv[0] in ("--version", "version", "-v"):
        print(f"ngrok version {VERSION}")
        return 0
    if argv and argv[0] == "update":
        print("No update available, this is the latest version.")
        return 0
    sys.stderr.write(f"fake ngrok: unsupported command {argv!r}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
