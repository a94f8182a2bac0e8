"""Call set-up time in the sandbox: `create_call` through the real SDK to the `answered` webhook.

The sandbox runs at speed 1 (real time) and the phone answers immediately, so the figure is the
platform's own overhead: the SDK's HTTPS request (including its RS256 JWT, signed anew for every
request), the state machine, and three webhooks (started, ringing, answered) delivered in order to a
local receiver. Two clients take turns: the SDK's stock `Auth` (which re-parses the PEM key for every
request) and the lab's `ParsedKeyAuth` (the key parsed once; `labkit/sdk_auth.py`).

It also times every garbage-collector pass (`gc.callbacks`) while the calls run: a full collection
holds the GIL for as long as it scans, and before the sandbox froze its start-up objects
(labkit/sandbox/heap.py) one came about every 50 calls and took 34-101 ms, the p99.

    python bench/lab/bench_call_setup.py [CALLS]
    BENCH_LABKIT_TREE=/path/to/another/checkout python bench/lab/bench_call_setup.py   # its labkit
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("BENCH_LABKIT_TREE") or str(Path(__file__).resolve().parents[2]))

from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from labkit.sandbox import Sandbox  # noqa: E402

CALLS = 100  # per client: enough for a p99 that is not the maximum


class GcPasses:
    """Every collector pass while measuring: (generation, milliseconds)."""

    def __init__(self) -> None:
        self.passes: list[tuple[int, float]] = []
        self._began = 0.0
        self.on = False
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self.on:
            self.passes.append((info["generation"], 1000 * (time.perf_counter() - self._began)))


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


def measure(client, sb, rx, first_number: int, calls: int) -> tuple[list[float], ...]:
    """(set-up ms, SDK request ms, JWT signing ms, answered after the 201 ms) for `calls` calls, after two
    warm-up calls."""
    from vonage_voice import CreateCallRequest, Phone, Talk, ToPhone

    request_ms, setup_ms, jwt_ms, after_ms = [], [], [], []
    for i in range(calls + 2):
        number = f"4477009{first_number + i:05d}"
        sb.phone(number).set(answer_after=0)
        t0 = time.perf_counter()
        created = client.voice.create_call(CreateCallRequest(
            to=[ToPhone(number=number)], from_=Phone(number=sb.number), ncco=[Talk(text="Hello")]))
        t1 = time.perf_counter()
        answered = rx.wait(created.uuid)
        if i >= 2:  # the first two warm up connections and imports
            request_ms.append(1000 * (t1 - t0))
            setup_ms.append(1000 * (answered - t0))
            after_ms.append(1000 * (answered - t1))
        if sb.call(created.uuid).status == "answered":
            try:
                client.voice.hangup(created.uuid)
            except Exception:  # its talk ran out first (a slow spell on a busy machine): it ended by itself
                if not sb.call(created.uuid).ended:
                    raise
    for _ in range(calls):
        t0 = time.perf_counter()
        client.http_client.auth.create_jwt_auth_string()
        jwt_ms.append(1000 * (time.perf_counter() - t0))
    return setup_ms, request_ms, jwt_ms, after_ms


def main() -> None:
    import requests
    from vonage import Auth, HttpClientOptions, Vonage

    from labkit.sdk_auth import ParsedKeyAuth

    calls = int(sys.argv[1]) if len(sys.argv) > 1 else CALLS
    passes = GcPasses()
    rx = Receiver()
    results = {}
    with tempfile.TemporaryDirectory() as home:
        sb = Sandbox(speed=1.0, home=home).start()
        sb.trust()
        sb.configure(event_url=f"http://127.0.0.1:{rx.server.server_port}/event")
        options = HttpClientOptions(api_host=sb.api_host, timeout=10)
        key = str(sb.private_key_path)
        try:
            # The two clients take turns, so a busy spell on a shared machine hits both alike.
            stock = Vonage(Auth(application_id=sb.application_id, private_key=key), options)
            parsed = Vonage(ParsedKeyAuth(sb.application_id, key), options)
            passes.on = True
            for rnd in range(2):
                for name, client in (("stock", stock), ("parsed", parsed)):
                    got = measure(client, sb, rx, 1000 * (2 * rnd + (name == "parsed")), calls // 2)
                    for into, values in zip(results.setdefault(name, ([], [], [], [])), got, strict=True):
                        into.extend(values)
            passes.on = False
            frozen = gc.get_freeze_count()
            raw_ms = []
            session = requests.Session()
            token = parsed.http_client.auth.create_jwt_auth_string()
            for _ in range(calls):
                t0 = time.perf_counter()
                session.get(sb.base_url + "/v1/calls?page_size=1", headers={"Authorization": token}).raise_for_status()
                raw_ms.append(1000 * (time.perf_counter() - t0))
        finally:
            sb.stop()
            rx.stop()
    load = os.getloadavg()
    print(f"call set-up, create_call -> answered webhook, {calls} calls per client at speed 1 (phone answers at once), "
          f"labkit from {sys.path[0]}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}:")
    labels = {"stock": "SDK's stock Auth (PEM re-parsed per request)",
              "parsed": "labkit ParsedKeyAuth (key parsed once)     "}
    for name in ("stock", "parsed"):
        setup_ms, request_ms, jwt_ms, after_ms = results[name]
        print(f"  {labels[name]}: set-up p50 {statistics.median(setup_ms):6.1f} ms  "
              f"p95 {pct(setup_ms, 0.95):6.1f}  p99 {pct(setup_ms, 0.99):6.1f}  max {max(setup_ms):6.1f} ms "
              f"| SDK request p50 {statistics.median(request_ms):6.1f} ms "
              f"| answered after the 201 p50 {statistics.median(after_ms):5.2f} ms "
              f"| JWT p50 {statistics.median(jwt_ms):6.2f} ms")
    ratio = statistics.median(results["stock"][0]) / statistics.median(results["parsed"][0])
    jwt_ratio = statistics.median(results["stock"][2]) / statistics.median(results["parsed"][2])
    print(f"  ratio stock/parsed: set-up p50 {ratio:.1f}x, JWT signing {jwt_ratio:.0f}x")
    full = [ms for gen, ms in passes.passes if gen == 2]
    longest = max((ms for _, ms in passes.passes), default=0.0)
    print(f"  garbage collector while the calls ran: {len(passes.passes)} passes, {len(full)} full "
          f"(longest {max(full, default=0.0):.1f} ms), longest of any {longest:.1f} ms; "
          f"objects frozen out of collections by the end: {frozen}")
    print(f"  a sandbox REST round trip (GET /v1/calls, HTTPS keep-alive, token made beforehand): "
          f"p50 {statistics.median(raw_ms):5.1f} ms")


if __name__ == "__main__":
    main()
