"""Call set-up time in the sandbox: `create_call` through the real SDK to the `answered` webhook.

The sandbox runs at speed 1 (real time) and the phone answers immediately, so the figure is the
platform's own overhead: the SDK's HTTPS request (including its RS256 JWT, which the SDK signs anew
for every request), the state machine, and three webhooks (started, ringing, answered) delivered in
order to a local receiver.

    python bench/bench_call_setup.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from labkit.sandbox import Sandbox  # noqa: E402

CALLS = 20


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


class Receiver:
    """A minimal event webhook endpoint that timestamps every `answered` event."""

    def __init__(self) -> None:
        self.answered: dict[str, float] = {}
        self.cv = threading.Condition()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def app(self, environ, start_response):
        req = Request(environ)
        at = time.perf_counter()
        body = json.loads(req.get_data() or b"{}")
        if body.get("status") == "answered":
            with self.cv:
                self.answered[body["uuid"]] = at
                self.cv.notify_all()
        return Response(status=204)(environ, start_response)

    def wait(self, uuid: str, timeout: float = 10.0) -> float:
        with self.cv:
            if not self.cv.wait_for(lambda: uuid in self.answered, timeout):
                raise TimeoutError(f"no answered event for {uuid}")
            return self.answered[uuid]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    import requests
    from vonage import Auth, HttpClientOptions, Vonage
    from vonage_voice import CreateCallRequest, Phone, Talk, ToPhone

    rx = Receiver()
    with tempfile.TemporaryDirectory() as home:
        sb = Sandbox(speed=1.0, home=home).start()
        sb.trust()
        sb.configure(event_url=f"http://127.0.0.1:{rx.server.server_port}/event")
        client = Vonage(Auth(application_id=sb.application_id, private_key=str(sb.private_key_path)),
                        HttpClientOptions(api_host=sb.api_host, timeout=10))
        request_ms, setup_ms = [], []
        try:
            for i in range(CALLS + 2):
                number = f"4477009{i:05d}"
                sb.phone(number).set(answer_after=0)
                t0 = time.perf_counter()
                created = client.voice.create_call(CreateCallRequest(
                    to=[ToPhone(number=number)], from_=Phone(number=sb.number),
                    ncco=[Talk(text="Hello")]))
                t1 = time.perf_counter()
                answered = rx.wait(created.uuid)
                if i >= 2:  # the first two warm up connections and imports
                    request_ms.append(1000 * (t1 - t0))
                    setup_ms.append(1000 * (answered - t0))
                if sb.call(created.uuid).status == "answered":
                    client.voice.hangup(created.uuid)
            jwt_ms, raw_ms = [], []
            session = requests.Session()
            for _ in range(CALLS):
                t0 = time.perf_counter()
                token = client.http_client.auth.create_jwt_auth_string()
                jwt_ms.append(1000 * (time.perf_counter() - t0))
                t0 = time.perf_counter()
                session.get(sb.base_url + "/v1/calls?page_size=1", headers={"Authorization": token}).raise_for_status()
                raw_ms.append(1000 * (time.perf_counter() - t0))
        finally:
            sb.stop()
            rx.stop()
    print(f"call set-up over {CALLS} calls at speed 1 (phone answers at once):")
    print(f"  create_call -> answered webhook: p50 {statistics.median(setup_ms):6.1f} ms   "
          f"p95 {pct(setup_ms, 0.95):6.1f} ms   max {max(setup_ms):6.1f} ms")
    print(f"  of which the SDK request (201): p50 {statistics.median(request_ms):6.1f} ms   "
          f"p95 {pct(request_ms, 0.95):6.1f} ms")
    print(f"  the SDK signing its RS256 JWT  : p50 {statistics.median(jwt_ms):6.1f} ms   (per request, client side;"
          " it re-parses and re-validates the PEM key each time)")
    print(f"  a sandbox REST round trip      : p50 {statistics.median(raw_ms):6.1f} ms   (GET /v1/calls, HTTPS "
          "keep-alive, token made beforehand)")


if __name__ == "__main__":
    main()
