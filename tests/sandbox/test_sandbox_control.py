"""The control API (`/_labkit/`): phones and calls over HTTP, the same model as the Python API."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import requests
import soundfile as sf
from openapi_schema_validator import OAS31Validator
from support.sandbox import *  # noqa: F403 - the fixtures: sandbox, receiver, client, test_audio
from support.sandbox import best_correlation, wait_until

from labkit.errors import SandboxError
from labkit.media.audio import load as load_audio

RATE = 16000


class Control:
    """Plain HTTP to the control API, as any language would do it."""

    def __init__(self, sandbox) -> None:
        self.base = sandbox.base_url + "/_labkit"
        self.verify = str(sandbox.ca_bundle)
        self.spec = requests.get(self.base + "/openapi.json", verify=self.verify, timeout=10).json()

    def __call__(self, method: str, path: str, expect: int = 200, schema: str | None = None, **kw):
        r = requests.request(method, self.base + path, verify=self.verify, timeout=10, **kw)
        assert r.status_code == expect, r.text
        documented = self.responses(method, path)
        assert str(r.status_code) in documented, f"{method} {path} answered {r.status_code}, documented {documented}"
        if schema is not None:
            check(self.spec, schema, r.json())
        return r


    def responses(self, method: str, path: str) -> list[str]:
        """The status codes openapi.json documents for this request (its path matched to a template)."""
        bare = "/_labkit" + path.split("?", 1)[0]
        for template, item in self.spec["paths"].items():
            if re.fullmatch(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)), bare) and method.lower() in item:
                return list(item[method.lower()]["responses"])
        raise AssertionError(f"{method} {bare} is not in openapi.json")


def check(spec: dict, name: str, body) -> None:
    """Validate `body` against components.schemas[name] of the served OpenAPI document."""
    OAS31Validator({"$ref": f"#/components/schemas/{name}", "components": spec["components"]}).validate(body)


def test_openapi_describes_every_control_route(sandbox):
    api = Control(sandbox)
    app = sandbox._runner.server.app
    documented = {(path, m.upper()) for path, item in api.spec["paths"].items() for m in item}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/_labkit/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served and served == documented
    assert api.spec["openapi"] == "3.1.0" and api.spec["servers"][0]["url"] == sandbox.base_url
    for item in api.spec["paths"].values():
        for op in item.values():
            assert op["summary"] and {"200", "201", "101"} & set(op["responses"])  # 101: the phone's audio socket


def test_an_inbound_call_driven_over_http_only(sandbox, receiver, test_audio):
    """Create a phone, dial the application's number, follow the call, fetch heard.wav and correlate it."""
    api = Control(sandbox)
    receiver.answer_ncco = [{"action": "stream", "streamUrl": [receiver.audio_url("music.wav")]}]
    phone = api("POST", "/phones", 201, "Phone", json={"number": "447700900201", "answer_after": 0}).json()
    assert phone["state"] == "idle"
    app = api("GET", "/application", schema="Application").json()
    call = api("POST", "/phones/447700900201/dial", 201, "Call", json={"to": app["number"]}).json()
    assert call["direction"] == "inbound" and call["to"]["number"] == sandbox.number
    receiver.wait_for("completed", call["uuid"], timeout=20)
    calls = api("GET", "/calls", schema="CallList").json()["calls"]
    mine = next(c for c in calls if c["uuid"] == call["uuid"])
    assert mine["status"] == "completed" and mine["ncco"]["actions"][0]["action"] == "stream"
    assert mine["ncco"]["current"] == 0
    kinds = [w["kind"] for w in mine["webhooks"]]
    assert kinds.count("answer") == 1 and "event" in kinds  # (logged as each delivery completes)
    statuses = {w["payload"].get("status") for w in mine["webhooks"]}
    assert {"started", "ringing", "answered", "completed"} <= statuses
    answer = next(w for w in mine["webhooks"] if w["kind"] == "answer")
    assert answer["answer"]["ok"] and answer["answer"]["body"] == receiver.answer_ncco
    r = api("GET", f"/phones/447700900201/heard.wav?call={call['uuid']}")
    heard, rate = sf.read(io.BytesIO(r.content), dtype="int16")
    source = load_audio(test_audio["music.wav"], RATE)
    assert rate == RATE and heard.size >= source.size
    assert best_correlation(heard, source[: 2 * RATE])[0] > 0.95
    # ?since= gives what came after a position; X-Labkit-Position says where it ended
    whole = api("GET", "/phones/447700900201/heard.wav")
    end = int(whole.headers["X-Labkit-Position"])
    tail = api("GET", f"/phones/447700900201/heard.wav?since={end - RATE}")
    assert sf.read(io.BytesIO(tail.content))[0].size == RATE and int(tail.headers["X-Labkit-Start"]) == end - RATE


def test_say_press_answer_reject_over_http(sandbox, client, receiver, test_audio):
    api = Control(sandbox)
    api("POST", "/phones", 201, json={"number": "447700900202", "outcome": "manual"})
    http = client.voice.http_client
    created = http.post(http.api_host, "/v1/calls", {
        "to": [{"type": "phone", "number": "447700900202"}], "from": {"type": "phone", "number": sandbox.number},
        "ncco": [{"action": "record", "endOnKey": "#", "timeOut": 60, "format": "wav",
                  "eventUrl": [receiver.url + "/rec"]},
                 {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 2, "timeOut": 10},
                  "eventUrl": [receiver.url + "/in"]}]})
    assert wait_until(lambda: sandbox.phone("447700900202").state == "ringing")
    api("POST", "/phones/447700900202/answer", schema="Phone")
    receiver.wait_for("answered", created["uuid"])
    said = api("POST", "/phones/447700900202/say", data=test_audio["music.wav"].read_bytes(),
               headers={"Content-Type": "audio/wav"}, schema="Said").json()
    assert said["seconds"] > 1.0
    assert wait_until(lambda: not api("GET", "/phones/447700900202").json()["speaking"])
    api("POST", "/phones/447700900202/press", json={"digits": "#"})
    rec = receiver.wait_for(path="/rec")
    # The input runs now, on call time (speed 10: its 10 s are 1 s of real time): press before reading the
    # recording, whose first scipy import alone took longer than that on a busy machine.
    api("POST", "/phones/447700900202/press", schema="Phone", json={"digits": "42"})
    assert receiver.wait_for(path="/in").payload["dtmf"]["digits"] == "42"
    data, _ = sf.read(str(sandbox.recording_path(rec.payload["recording_url"])), dtype="int16")
    assert best_correlation(data, load_audio(test_audio["music.wav"], RATE)[RATE // 2: 2 * RATE])[0] > 0.9
    # a second call, declined over HTTP
    second = http.post(http.api_host, "/v1/calls", {
        "to": [{"type": "phone", "number": "447700900202"}], "from": {"type": "phone", "number": sandbox.number},
        "ncco": [{"action": "talk", "text": "never"}]})
    receiver.wait_for("completed", created["uuid"])
    assert wait_until(lambda: sandbox.phone("447700900202").state == "ringing")
    api("POST", "/phones/447700900202/reject")
    assert receiver.wait_for("rejected", second["uuid"]).payload["detail"] == "declined"
    # refusals are RFC 7807 problems: 409 for a state that does not allow it, 404, 400
    for method, path, body, status in (("POST", "/phones/447700900202/answer", None, 409),
                                       ("GET", "/phones/447700900299", None, 404),
                                       ("POST", "/phones", {"number": "12ab"}, 400),
                                       ("POST", "/phones", {"number": "447700900202", "colour": "red"}, 400)):
        r = api(method, path, status, "Problem", json=body)
        assert r.headers["Content-Type"] == "application/problem+json"


def test_text_say_and_machine_setting_and_reset(sandbox, receiver):
    api = Control(sandbox)
    receiver.answer_ncco = [{"action": "input", "type": ["speech"], "eventUrl": [receiver.url + "/speech"]}]
    view = api("POST", "/phones", 201, "Phone", json={"number": "447700900203", "machine": True, "hangup_after": 30})
    assert view.json()["machine"] is True and sandbox.phone("447700900203").machine  # one model, two faces
    api("POST", "/phones", 200, json={"number": "447700900203", "machine": False})
    call = api("POST", "/phones/447700900203/dial", 201).json()
    receiver.wait_for("answered", call["uuid"])
    api("POST", "/phones/447700900203/say", json={"text": "I would like to pay my bill"})
    speech = receiver.wait_for(path="/speech").payload["speech"]
    assert speech["results"][0]["text"] == "I would like to pay my bill"
    assert api("GET", "/phones", schema="PhoneList").json()["phones"]
    api("POST", "/reset", schema="Reset")
    assert api("GET", "/phones").json() == {"phones": []} and api("GET", "/calls").json() == {"calls": []}
    assert sandbox.calls == []


def test_only_loopback_without_credentials(sandbox, client):
    """From another address the control API needs the application's JWT, like the Voice API."""
    from labkit.sandbox.app import create_app

    app = create_app(sandbox._platform, sandbox._creds)
    remote = app.test_client()
    outside = {"REMOTE_ADDR": "192.0.2.10"}
    assert remote.get("/_labkit/phones", environ_base=outside).status_code == 401
    token = client.voice.http_client.auth.create_jwt_auth_string()
    token = token.decode() if isinstance(token, bytes) else token
    assert remote.get("/_labkit/phones", environ_base=outside, headers={"Authorization": token}).status_code == 200
    assert remote.get("/_labkit/phones", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200


def test_connect_gives_the_same_phone_api_over_http(sandbox, receiver, test_audio):
    from labkit.sandbox import connect

    receiver.answer_ncco = [{"action": "talk", "text": "Welcome to the remote sandbox"},
                            {"action": "record", "endOnSilence": 3, "format": "wav",
                             "eventUrl": [receiver.url + "/rec"]}]
    remote = connect(sandbox.base_url, verify=str(sandbox.ca_bundle))
    assert remote.number == sandbox.number
    phone = remote.phone("447700900204").set(answer_after=0)
    call = remote.dial("447700900204")
    assert phone.wait_for_state("answered")
    tone = (0.3 * np.sin(2 * np.pi * 500 * np.arange(RATE) / RATE)).astype(np.float32)
    assert phone.say((tone, RATE)) == pytest.approx(1.0, abs=0.05)
    receiver.wait_for(path="/rec", timeout=20)
    phone.hangup()
    receiver.wait_for("completed", call["uuid"])
    heard = phone.heard_in(call["uuid"])
    local = sandbox.phone("447700900204").heard_in(call["uuid"])
    assert np.array_equal(heard.samples, local.samples) and heard.rate == RATE
    assert remote.call(call["uuid"])["status"] == "completed"
    with pytest.raises(SandboxError, match="no ringing call"):
        phone.answer()
    with pytest.raises(SandboxError, match="Cannot reach"):
        connect("https://127.0.0.1:9", verify=False)
    remote.close()


def test_the_webhook_log_counts_what_chaos_delivery_did(sandbox, receiver):
    """`GET /_labkit/webhooks`: every webhook sent, the chaos setting, and duplicates and reordering counted
    (what a test in another process checks to know its app really ran under chaos)."""
    from labkit.sandbox.wire.webhooks import WebhookChaos, WebhookRecord

    api = Control(sandbox)
    receiver.answer_ncco = [{"action": "talk", "text": "Hello"}]
    empty = api("GET", "/webhooks", schema="WebhookLog").json()
    assert empty == {"chaos": None, "sent": 0, "failed": 0, "pending": 0, "duplicates": 0, "out_of_order": 0,
                     "webhooks": []}
    api("POST", "/phones", 201, json={"number": "447700900205", "answer_after": 0})
    first = api("POST", "/phones/447700900205/dial", 201, json={}).json()
    receiver.wait_for("completed", first["uuid"], timeout=20)
    ordered = api("GET", "/webhooks", schema="WebhookLog").json()
    assert ordered["sent"] == len(ordered["webhooks"]) >= 5  # answer + started, ringing, answered, completed
    assert ordered["duplicates"] == 0 and ordered["out_of_order"] == 0  # in order, once: no chaos
    assert ordered["failed"] == 0  # the receiver answered every one with 200

    sandbox.webhook_chaos = WebhookChaos(jitter=0.0, duplicate=1.0, seed=1)  # every status event twice
    second = api("POST", "/phones/447700900205/dial", 201, json={}).json()
    receiver.wait_for("completed", second["uuid"], timeout=20, count=2)
    log = api("GET", "/webhooks", schema="WebhookLog").json()
    assert log["chaos"] == {"jitter": 0.0, "duplicate": 1.0, "seed": 1}
    events = [w for w in log["webhooks"] if w["kind"] == "event" and w["payload"].get("uuid") == second["uuid"]]
    distinct = {repr(sorted(w["payload"].items())) for w in events}
    assert log["duplicates"] == len(events) - len(distinct) >= 1

    # an event stamped earlier than one already sent for its leg counts as out of order
    late = {"uuid": "u-1", "status": "ringing", "timestamp": "2026-01-01T00:00:01.000Z"}
    log_ = sandbox.platform.webhooks.log
    log_.append(WebhookRecord("event", "http://x/event", "POST", {**late, "status": "answered",
                                                                   "timestamp": "2026-01-01T00:00:02.000Z"}))
    log_.append(WebhookRecord("event", "http://x/event", "POST", late))
    assert api("GET", "/webhooks").json()["out_of_order"] == log["out_of_order"] + 1


def test_the_softphone_page_follows_the_loopback_rule(sandbox, client):
    """`/` (the softphone page) and its scripts are served like the control API: loopback, or the JWT."""
    from labkit.sandbox.app import create_app

    remote = create_app(sandbox._platform, sandbox._creds).test_client()
    outside, inside = {"REMOTE_ADDR": "192.0.2.10"}, {"REMOTE_ADDR": "127.0.0.1"}
    for path in ("/", "/_labkit/page/sandbox.js", "/_labkit/page/wstransport.js", "/_labkit/page/callaudio.js"):
        assert remote.get(path, environ_base=outside).status_code == 401, path
        assert remote.get(path, environ_base=inside).status_code == 200, path
    page = remote.get("/", environ_base=inside)
    assert page.mimetype == "text/html" and b"/_labkit/page/sandbox.js" in page.data
    script = remote.get("/_labkit/page/callaudio.js", environ_base=inside)
    assert script.mimetype == "text/javascript" and b"export function createCallAudio" in script.data
    for name in ("call_audio.py", "..%2Fcall_audio.py", "nothing.js"):
        assert remote.get(f"/_labkit/page/{name}", environ_base=inside).status_code == 404


def test_heard_wav_long_poll_gives_the_call_live_and_whole(sandbox, receiver, test_audio):
    """`heard.wav?since=POS&wait=S` answers once 40 ms more were heard: pieces that join without gaps."""
    api = Control(sandbox)
    receiver.answer_ncco = [{"action": "stream", "streamUrl": [receiver.audio_url("music.wav")], "loop": 0}]
    api("POST", "/phones", 201, json={"number": "447700900205", "answer_after": 0})
    call = api("POST", "/phones/447700900205/dial", 201).json()
    receiver.wait_for("answered", call["uuid"])
    since = start = api("GET", "/phones/447700900205").json()["position"]
    pieces = []
    for _ in range(20):
        r = api("GET", f"/phones/447700900205/heard.wav?since={since}&wait=5")
        assert int(r.headers["X-Labkit-Start"]) == since and int(r.headers["X-Labkit-Time"]) > 0
        samples = sf.read(io.BytesIO(r.content), dtype="int16")[0]
        assert samples.size >= RATE * 40 // 1000, "a long poll answered before 40 ms of new audio was heard"
        pieces.append(samples)
        since = int(r.headers["X-Labkit-Position"])
    joined = np.concatenate(pieces)
    whole = sf.read(io.BytesIO(api("GET", f"/phones/447700900205/heard.wav?since={start}").content),
                    dtype="int16")[0]
    assert np.array_equal(joined, whole[: joined.size])  # the pieces are the heard audio, in order
    api("POST", "/phones/447700900205/hangup")
    api("POST", "/phones", 201, json={"number": "447700900206"})  # idle: nothing comes, the wait runs out
    idle = api("GET", "/phones/447700900206/heard.wav?since=0&wait=0.2")
    assert idle.headers["X-Labkit-Position"] == "0"
    ahead = api("GET", "/phones/447700900206/heard.wav?since=5000&wait=1")  # beyond what it heard (a reset)
    assert ahead.headers["X-Labkit-Start"] == ahead.headers["X-Labkit-Position"] == "0"  # where it is now
    api("GET", "/phones/447700900206/heard.wav?since=0&wait=soon", 400, "Problem")


def test_say_tells_how_much_speech_is_queued(sandbox, receiver, test_audio):
    api = Control(sandbox)
    receiver.answer_ncco = [{"action": "record", "format": "wav", "eventUrl": [receiver.url + "/rec"]}]
    api("POST", "/phones", 201, json={"number": "447700900207", "answer_after": 0})
    call = api("POST", "/phones/447700900207/dial", 201).json()
    receiver.wait_for("answered", call["uuid"])
    wav = test_audio["music.wav"].read_bytes()
    first = api("POST", "/phones/447700900207/say", data=wav, headers={"Content-Type": "audio/wav"},
                schema="Said").json()
    second = api("POST", "/phones/447700900207/say", data=wav, headers={"Content-Type": "audio/wav"},
                 schema="Said").json()
    assert first["queued_seconds"] >= first["seconds"] - 0.1
    assert second["queued_seconds"] > first["seconds"]  # the second waits behind what is left of the first
    assert first["starts_at"] is None  # the record NCCO has run out: no call to say it in yet
    api("POST", "/phones/447700900207/hangup")


def test_say_tells_the_call_second_the_speech_starts_at(sandbox, receiver, test_audio):
    """What a reply's latency counts from: the call second the phone starts speaking, after speech queued
    before it, not the moment before the request (which costs call time of its own, more at speed > 1)."""
    api = Control(sandbox)
    receiver.answer_ncco = [{"action": "conversation", "name": "starts-at"}]
    api("POST", "/phones", 201, json={"number": "447700900208", "answer_after": 0})
    call = api("POST", "/phones/447700900208/dial", 201).json()
    receiver.wait_for("answered", call["uuid"])
    wav = test_audio["music.wav"].read_bytes()
    before = api("GET", f"/calls/{call['uuid']}").json()["time"]
    first = api("POST", "/phones/447700900208/say", data=wav, headers={"Content-Type": "audio/wav"},
                schema="Said").json()
    second = api("POST", "/phones/447700900208/say", data=wav, headers={"Content-Type": "audio/wav"},
                 schema="Said").json()
    after = api("GET", f"/calls/{call['uuid']}").json()["time"]
    assert before - 0.021 <= first["starts_at"] <= after  # `time` counts a tick from its start, heard from its end
    # the second starts where the first ends (to the 20 ms frame: the clock may tick between the two reads)
    assert abs(second["starts_at"] - (first["starts_at"] + first["seconds"])) < 0.021
    api("POST", "/phones/447700900208/hangup")


def test_the_softphone_page_files_ship_with_the_package():
    """Every file the page serves matches the package data of labkit.widgets (or an installed lab 404s)."""
    import ast
    import fnmatch
    from pathlib import Path

    from labkit.sandbox.control.page import STATIC, TYPES

    root = Path(__file__).resolve().parents[2]
    line = next(x for x in (root / "pyproject.toml").read_text().splitlines() if x.startswith('"labkit.widgets"'))
    globs = ast.literal_eval(line.split("=", 1)[1].strip())
    served = [p for p in STATIC.iterdir() if p.suffix in TYPES]
    assert {"sandbox.html", "sandbox.js", "wstransport.js", "callaudio.js"} <= {p.name for p in served}
    for path in served:
        assert any(fnmatch.fnmatch(f"static/{path.name}", g) for g in globs), path.name


def test_numbers_are_read_as_people_type_them_with_one_rule_and_one_message(sandbox):
    """The page's "New phone" box and any language's client: the rule and the words of the notebook panel."""
    api = Control(sandbox)
    made = api("POST", "/phones", 201, json={"number": "+44 7700 900231"}).json()
    assert made["number"] == "447700900231"
    national = "0" + str(sandbox.number)[2:]  # the application's number as dialled in its own country
    refused = api("POST", "/phones", 400, "Problem", json={"number": national}).json()
    assert f"looks like a national number: did you mean {sandbox.number}?" in refused["detail"], refused
    empty = api("POST", "/phones", 400, "Problem", json={"number": ""}).json()
    assert empty["detail"].startswith("Type the phone number: the country code then the number"), empty
