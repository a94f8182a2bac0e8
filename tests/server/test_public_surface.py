"""What the public surface gives away (issue 18, item 5), on real sockets: hostile paths, malformed HTTP,
oversized headers, ambiguous framing and fields a signature does not cover.

Every hostile scenario asserts the response and that nothing is printed: a notebook shows whatever the
server writes to stdout or stderr, so one line (or a traceback) per request lets anyone who finds the
tunnel flood it. Refusals are counted instead, one event line per kind per window. The scenarios take
`make` (a limits_servers factory) and `printed` (support.server.output_reader), so the fault suite runs
them as its own cases.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import requests
from support.server import audio_folder, limits_servers, output_reader, refusal_totals

from labkit.events import EventLog
from labkit.server import ServerContext, ServerRunner, create_app
from labkit.server.limits import Limits
from labkit.signing import compact_json, sign_webhook

N = 100  # hostile requests per scenario


def exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[bytes, bool]:
    """Send raw bytes; return (everything answered, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        answer = b""
        s.settimeout(wait if not answer else 0.5)
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return answer, False
            except ConnectionResetError:
                return answer, True
            if not chunk:
                return answer, True
            answer += chunk
            s.settimeout(0.5)  # after the first bytes, a kept-alive connection just goes quiet


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def ctx_of(runner: ServerRunner) -> ServerContext:
    return runner.app.extensions["labkit"]


# ------------------------------------------------------------------------------------- scenarios

def nul_paths_get_404_quietly(make: Callable, printed: Callable[[], str], tmp) -> None:
    events, _, runner = make()
    ctx_of(runner).audio_dirs.append(audio_folder(tmp))
    paths = ["/audio/a%00b.mp3", "/audio/%00", "/webhooks/answer%00", "/audio/%FF%FE.mp3", "/%C0%AF"]
    with requests.Session() as http:
        for i in range(N):
            r = http.get(f"http://127.0.0.1:{runner.port}{paths[i % len(paths)]}", timeout=10)
            assert r.status_code == 404 and "Traceback" not in r.text, (r.status_code, r.text[:200])
    assert printed() == ""
    totals, lines = refusal_totals(events, runner.refusals)
    assert totals.get("bad-path", 0) + totals.get("server-error", 0) == N and "server-error" not in totals
    assert lines <= 3


def malformed_http_is_counted_not_printed(make: Callable, printed: Callable[[], str]) -> None:
    events, _, runner = make()
    garbage = [b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n",
               b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n",
               b"GET /\x7f HTTP/1.1\r\n\r\n",
               b"NOT A REQUEST\r\n\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n"]
    for i in range(N):
        answer, closed = exchange(runner.port, garbage[i % len(garbage)])
        assert status(answer) == 400 and closed, answer[:80]
    assert printed() == ""
    totals, lines = refusal_totals(events, runner.refusals)
    assert totals == {"http-error": N} and lines <= 3


def exceptions_in_views_and_the_adapter_are_counted(tmp) -> None:
    """A view that raises answers 500 with no traceback anywhere; so does the WSGI adapter failing."""
    events = EventLog()
    app = create_app(ServerContext(events=events, answer=lambda p: []))
    app.add_url_rule("/boom", "boom", lambda: 1 / 0)
    runner = ServerRunner(app, limits=Limits()).start()
    try:
        for _ in range(N):
            r = requests.get(f"http://127.0.0.1:{runner.port}/boom", timeout=10)
            assert r.status_code == 500 and "Traceback" not in r.text and "ZeroDivision" not in r.text

        async def broken(scope, receive, send):
            raise RuntimeError("adapter broke")

        adapter, runner._asgi.wsgi = runner._asgi.wsgi, broken
        try:
            for _ in range(10):
                assert requests.get(f"http://127.0.0.1:{runner.port}/healthz", timeout=10).status_code == 500
        finally:
            runner._asgi.wsgi = adapter
    finally:
        runner.stop()
    totals, lines = refusal_totals(events, runner.refusals)
    assert totals == {"server-error": N, "adapter-error": 10} and lines <= 4
    line = next(e for e in events if e.status == "refused" and e.payload["kind"] == "server-error")
    assert "ZeroDivisionError" in line.payload["reason"] and "/boom" in line.payload["reason"]


def headers_are_capped(make: Callable, printed: Callable[[], str]) -> None:
    events, _, runner = make(max_header_bytes=8192)
    port = runner.port
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    big = (head + "X-A: " + "a" * 20_000 + "\r\n\r\n").encode()
    many = (head + "X-a: b\r\n" * 5000 + "\r\n").encode()
    fine = (head + "X-A: " + "a" * 6000 + "\r\nConnection: close\r\n\r\n").encode()
    for data in (big, many):  # each in one read: h11's own bound never saw them
        answer, closed = exchange(port, data)
        assert status(answer) == 431 and closed, answer[:80]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # the same, dribbled in pieces
        try:
            for i in range(0, len(big) - 2, 4000):
                s.sendall(big[i:i + 4000])
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed before the rest arrived
        answer = s.recv(65536)
    assert status(answer) == 431, answer[:80]
    answer, _ = exchange(port, fine)
    assert status(answer) == 200
    assert printed() == ""
    totals, _ = refusal_totals(events, runner.refusals)
    assert totals.get("headers-too-large", 0) >= 2


def both_length_headers_answered_then_closed(make: Callable, printed: Callable[[], str]) -> None:
    events, _, runner = make()
    port = runner.port
    body = b'{"uuid":"u1","status":"answered"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    base = (f"POST /webhooks/event HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n")
    smuggle = (base + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + chunked
    answer, closed = exchange(port, smuggle)
    assert status(answer) == 204 and closed, answer  # answered by the chunked framing (RFC 9112 6.3) and closed
    assert [e.uuid for e in events if e.kind == "event"] == ["u1"]  # the chunked body, not 4 bytes of it
    plain = (base + f"Content-Length: {len(body)}\r\n\r\n").encode() + body.replace(b"u1", b"u2")
    answer, closed = exchange(port, plain, wait=2)
    assert status(answer) == 204 and not closed  # a normal request keeps its connection
    assert printed() == ""
    totals, _ = refusal_totals(events, runner.refusals)
    assert totals == {"both-length-headers": 1}


SECRET = "lab-signature-secret-0123456789-abcdefgh"


def signed_server(make: Callable) -> tuple[EventLog, ServerRunner, list[dict]]:
    events, _, runner = make()
    ctx = ctx_of(runner)
    ctx.signature_secret = SECRET
    seen: list[dict] = []
    ctx.answer = lambda fields: seen.append(fields) or [{"action": "talk", "text": f"hi {fields.get('uuid')}"}]
    return events, runner, seen


def repeated_query_names_are_refused(make: Callable, printed: Callable[[], str]) -> None:
    """`?uuid=A&uuid=B`: the hash covers one value and a handler could read the other: 400, handler not run."""
    events, runner, seen = signed_server(make)
    params = [("uuid", "A"), ("to", "447700900000"), ("uuid", "B")]
    token = sign_webhook(compact_json(dict(params)), SECRET)  # exactly as a signer would hash it
    r = requests.get(f"http://127.0.0.1:{runner.port}/webhooks/answer", params=params, timeout=10,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and "repeats uuid" in r.text and seen == []
    once = [("uuid", "A"), ("to", "447700900000")]
    token = sign_webhook(compact_json(dict(once)), SECRET)
    r = requests.get(f"http://127.0.0.1:{runner.port}/webhooks/answer", params=once, timeout=10,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and seen == [{"uuid": "A", "to": "447700900000"}]
    assert printed() == ""
    assert refusal_totals(events, runner.refusals)[0] == {"repeated-field": 1}


def fields_outside_the_signed_body_are_dropped(make: Callable, printed: Callable[[], str]) -> None:
    """A POST signed over its body alone: query fields added on the way are not merged into the event."""
    events, runner, _ = signed_server(make)
    url = f"http://127.0.0.1:{runner.port}/webhooks/event"
    body = b'{"uuid":"u1","status":"answered"}'
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sign_webhook(body, SECRET)}"}
    r = requests.post(url, params={"status": "completed", "extra": "x"}, data=body, headers=headers, timeout=10)
    assert r.status_code == 204
    assert [e.payload for e in events if e.kind == "event"] == [{"uuid": "u1", "status": "answered"}]
    # signed over query and body merged (as Vonage's Node snippet hashes it): the query is covered, so kept
    merged = json.dumps({"leg": "x", "uuid": "u2", "status": "ringing"}, separators=(",", ":")).encode()
    body2 = b'{"uuid":"u2","status":"ringing"}'
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sign_webhook(merged, SECRET)}"}
    assert requests.post(url, params={"leg": "x"}, data=body2, headers=headers, timeout=10).status_code == 204
    assert [e.payload for e in events if e.kind == "event"][-1] == {"leg": "x", "uuid": "u2", "status": "ringing"}
    assert printed() == ""
    assert refusal_totals(events, runner.refusals)[0] == {"unsigned-fields": 1}


# ------------------------------------------------------------------------------------- the tests

def test_nul_and_undecodable_paths_get_404_and_print_nothing(tmp_path, capfd):
    with limits_servers(tmp_path) as make:
        nul_paths_get_404_quietly(make, output_reader(capfd), tmp_path)


def test_malformed_http_is_counted_not_printed(tmp_path, capfd):
    with limits_servers(tmp_path) as make:
        malformed_http_is_counted_not_printed(make, output_reader(capfd))


def test_exceptions_in_views_and_the_adapter_are_counted_not_printed(tmp_path, capfd):
    printed = output_reader(capfd)
    exceptions_in_views_and_the_adapter_are_counted(tmp_path)
    assert printed() == ""


def test_header_bytes_are_capped(tmp_path, capfd):
    with limits_servers(tmp_path) as make:
        headers_are_capped(make, output_reader(capfd))


def test_the_header_cap_is_a_setting():
    assert Limits().max_header_bytes == 16 * 1024
    assert Limits.from_env({"LABKIT_MAX_HEADER_BYTES": "4096"}).max_header_bytes == 4096


def test_both_length_headers_are_answered_then_the_connection_closed(tmp_path, capfd):
    with limits_servers(tmp_path) as make:
        both_length_headers_answered_then_closed(make, output_reader(capfd))


def test_a_signed_webhook_with_a_repeated_query_name_is_refused(tmp_path, capfd):
    with limits_servers(tmp_path) as make:
        repeated_query_names_are_refused(make, output_reader(capfd))


def test_query_fields_outside_a_signed_body_are_dropped(tmp_path, capfd):
    with limits_servers(tmp_path) as make:
        fields_outside_the_signed_body_are_dropped(make, output_reader(capfd))
