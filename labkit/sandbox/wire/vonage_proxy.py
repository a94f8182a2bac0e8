"""A CONNECT proxy that tunnels Vonage's API host names to the sandbox, and refuses every other host.

Why: clients with hard-coded hosts (the legacy SDKs, Node-RED's nodes, scripts calling
https://api.nexmo.com) otherwise need root to reach the sandbox (port 443 plus a hosts entry, or a
namespace). Most HTTP stacks honour `HTTPS_PROXY` (curl, Python requests/httpx, Ruby Net::HTTP, Go,
Guzzle, .NET): they send `CONNECT api.nexmo.com:443` here, and TLS then runs end to end with the
sandbox, whose `--vonage-hostnames` certificate covers those names. Node's `https` module ignores
`HTTPS_PROXY`; the preload `vonage_hosts.cjs` beside this file does the same mapping inside Node.

It is never an open proxy: only `CONNECT <Vonage API host>:443` (and the sandbox's own address) is
tunnelled, always to the sandbox; anything else (another host, another port, a plain `GET http://...`)
gets 403 with the reason, so a client that should bypass it learns to list that host in `NO_PROXY`.
"""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import threading

log = logging.getLogger("labkit.sandbox.proxy")

# Vonage's API hosts the SDKs hard-code (vonage-platform.md section 9): the exact names, and the regional
# api-<region>.vonage.com / api-<region>.nexmo.com. Kept in step with vonage_hosts.cjs (same names).
VONAGE_API_HOST = re.compile(r"^(?:api\.nexmo\.com|rest\.nexmo\.com|api\.vonage\.com|"
                             r"api-[a-z0-9-]+\.(?:vonage|nexmo)\.com)$")
MAX_HEAD = 8192  # bytes of request head read before a CONNECT is refused as malformed
HEAD_TIMEOUT = 10.0  # seconds a client gets to send its CONNECT line


def is_vonage_api_host(host: str) -> bool:
    """True for the API host names the proxy and the Node preload send to the sandbox."""
    return bool(VONAGE_API_HOST.match(host.lower().rstrip(".")))


def _split_authority(authority: str) -> tuple[str, int] | None:
    """`host:port` or `[v6]:port` of a CONNECT line, else None."""
    host, sep, port = authority.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class _Handler(socketserver.BaseRequestHandler):
    server: VonageProxy._Server

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(HEAD_TIMEOUT)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
        except OSError:
            return
        line, _, _ = head.partition(b"\r\n")
        parts = line.decode("latin-1").split()
        proxy = self.server.owner
        if len(parts) != 3 or parts[0].upper() != "CONNECT":
            what = parts[0] if parts else "an empty request"
            return self._refuse(client, f"{what} is not tunnelled: this proxy only opens CONNECT tunnels to "
                                        "Vonage's API hosts on port 443")
        target = _split_authority(parts[1])
        if target is None or not proxy.allows(*target):
            return self._refuse(client, f"{parts[1]} is not one of Vonage's API hosts on port 443 "
                                        f"({proxy.describe()}); list it in NO_PROXY to reach it directly")
        try:
            upstream = socket.create_connection(proxy.target, timeout=10)
        except OSError as exc:
            return self._refuse(client, f"the sandbox at {proxy.target[0]}:{proxy.target[1]} did not answer: {exc}",
                                status="502 Bad Gateway")
        client.settimeout(None)
        upstream.settimeout(None)
        rest = head.partition(b"\r\n\r\n")[2]  # bytes the client sent after the head (a TLS hello, early)
        try:
            client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
        except OSError:
            upstream.close()
            return
        proxy._track(client, upstream)
        try:
            back = threading.Thread(target=_pump, args=(upstream, client), name="labkit-proxy-back", daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()
        finally:
            proxy._untrack(client, upstream)
            upstream.close()

    @staticmethod
    def _refuse(client: socket.socket, reason: str, status: str = "403 Forbidden") -> None:
        body = f"labkit sandbox proxy: {reason}\n".encode()
        log.info("proxy refused: %s", reason)
        try:
            client.sendall(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        except OSError:
            pass


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until `source` ends, then end `sink`'s sending side (half-close, as TLS's close_notify needs)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class VonageProxy:
    """`CONNECT api.nexmo.com:443` (and the other Vonage API hosts) -> the sandbox at `target`, on a thread.

    `url` is what clients put in `HTTPS_PROXY`. `stop()` closes the listener and every open tunnel.
    """

    class _Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        owner: VonageProxy

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = target
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: VonageProxy._Server | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def allows(self, host: str, port: int) -> bool:
        """Vonage's API hosts on 443, or the sandbox's own address (so a client without NO_PROXY still
        reaches the control API); nothing else."""
        if (host, port) == self.target or (host == "localhost" and port == self.target[1]):
            return True
        return port == 443 and is_vonage_api_host(host)

    def describe(self) -> str:
        return "api.nexmo.com, rest.nexmo.com, api.vonage.com, api-*.vonage.com, api-*.nexmo.com"

    def start(self) -> VonageProxy:
        if self._server is not None:
            return self
        server = self._Server((self.host, self.requested_port), _Handler)
        server.owner = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"labkit-proxy:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if thread is not None:
            thread.join(5)

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)

    def __enter__(self) -> VonageProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
