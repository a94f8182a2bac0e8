"""`labkit sandbox` (its own process) refuses what Vonage refuses (issue 19, item 6), over plain HTTP.

Each hostile request must get a 4xx with a body that says what is wrong (never a 500, never a 2xx that
stores the nonsense), and the sandbox must go on serving. Vonage's own status and body where Vonage
documents one; the sources are cited in the code that refuses (labkit/sandbox/...).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from support.sandbox_process import SandboxProcess

SPEED = 10


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    proc = SandboxProcess(tmp_path_factory.mktemp("refusals-home"), "--event-url", "http://127.0.0.1:9/event",
                          speed=SPEED)
    requests.post(f"{proc.url}/_labkit/phones", json={"number": "447700900631"}, verify=proc.ca,
                  timeout=10).raise_for_status()
    yield proc
    proc.stop()


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw_json(text: str) -> dict:
    return {"data": text, "headers": {"Content-Type": "application/json"}}


CONTROL_CASES = {
    "say: 200,000 characters": ("POST", "phones/447700900631/say", {"json": {"text": "a" * 200_000}}, 400, "1500"),
    "say: 1,501 characters": ("POST", "phones/447700900631/say", {"json": {"text": "a" * 1501}}, 400, "1500"),
    "say: text is a number": ("POST", "phones/447700900631/say", {"json": {"text": 42}}, 400, "text"),
    "say: garbage bytes as audio/wav": ("POST", "phones/447700900631/say",
                                        {"data": b"\x00garbage" * 500, "headers": {"Content-Type": "audio/wav"}},
                                        400, "audio"),
    "say: garbage bytes as audio/mpeg": ("POST", "phones/447700900631/say",
                                         {"data": b"ID3garbage" * 500, "headers": {"Content-Type": "audio/mpeg"}},
                                         400, "audio"),
    "phones: answer_after 'soon'": ("POST", "phones", {"json": {"number": "447700900632", "answer_after": "soon"}},
                                    400, "answer_after"),
    "phones: hangup_after []": ("POST", "phones", {"json": {"number": "447700900632", "hangup_after": []}},
                                400, "hangup_after"),
    "phones: answer_after NaN": ("POST", "phones", raw_json('{"number": "447700900632", "answer_after": NaN}'),
                                 400, "NaN"),
    "phones: hangup_after Infinity": ("POST", "phones",
                                      raw_json('{"number": "447700900632", "hangup_after": Infinity}'), 400, "finite"),
    "phones: answer_after 1e308": ("POST", "phones", {"json": {"number": "447700900632", "answer_after": 1e308}},
                                   400, "answer_after"),
    "phones: answer_after true": ("POST", "phones", {"json": {"number": "447700900632", "answer_after": True}},
                                  400, "answer_after"),
    "phones: integer number": ("POST", "phones", {"json": {"number": 447700900632}}, 400, "string"),
    "phones: outcome is a list": ("POST", "phones", {"json": {"number": "447700900632", "outcome": ["answer"]}},
                                  400, "outcome"),
    "phones: machine 'yes'": ("POST", "phones", {"json": {"number": "447700900632", "machine": "yes"}},
                              400, "machine"),
    "phones: body is a list": ("POST", "phones", {"json": ["447700900632"]}, 400, "object"),
    "dial: from an unknown phone": ("POST", "phones/447700900699/dial", {"json": {}}, 404, "447700900699"),
    "dial: to is a number": ("POST", "phones/447700900631/dial", {"json": {"to": 447700900000}}, 400, "to"),
    "press: digits is a number": ("POST", "phones/447700900631/press", {"json": {"digits": 12}}, 400, "digits"),
    "press: duration_ms 'long'": ("POST", "phones/447700900631/press", {"json": {"digits": "1", "duration_ms": "x"}},
                                  400, "duration_ms"),
    "heard.wav: wait NaN": ("GET", "phones/447700900631/heard.wav?since=0&wait=nan", {}, 400, "wait"),
}


@pytest.mark.parametrize("name", list(CONTROL_CASES))
def test_the_control_api_refuses(sb, name):
    method, path, kw, status, words = CONTROL_CASES[name]
    r = requests.request(method, f"{sb.url}/_labkit/{path}", verify=sb.ca, timeout=30, **kw)
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"] == "application/problem+json"
    assert words.lower() in r.json()["detail"].lower(), r.json()["detail"]
    assert requests.get(f"{sb.url}/_labkit/phones", verify=sb.ca, timeout=10).status_code == 200
    unknown = requests.get(f"{sb.url}/_labkit/phones/447700900699", verify=sb.ca, timeout=10)
    assert unknown.status_code == 404  # refused input made no phone


def test_a_refused_say_leaves_no_memory_behind(sb):
    """The issue's case: 200,000 characters grew the sandbox by 2 GB. Refused now, before any synthesis."""
    say = f"{sb.url}/_labkit/phones/447700900631/say"
    requests.post(say, json={"text": "warm up the synthesizer"}, verify=sb.ca, timeout=30).raise_for_status()
    before = rss_mb(sb.proc.pid)
    for _ in range(5):
        r = requests.post(say, json={"text": "a" * 200_000}, verify=sb.ca, timeout=30)
        assert r.status_code == 400
    after = rss_mb(sb.proc.pid)
    assert after - before < 20, f"RSS {before:.0f} MB -> {after:.0f} MB"
    queued = requests.get(f"{sb.url}/_labkit/phones/447700900631", verify=sb.ca, timeout=10).json()
    assert queued["speaking"] in (True, False)  # still answers


def voice(sb: SandboxProcess, body: dict) -> requests.Response:
    return requests.post(f"{sb.url}/v1/calls", headers=sb.bearer(), verify=sb.ca, timeout=30, json=body)


def call_body(sb: SandboxProcess, **extra) -> dict:
    return {"to": [{"type": "phone", "number": "447700900631"}],
            "from": {"type": "phone", "number": sb.rows["number"]}, **extra}


VOICE_CASES = {
    "an unknown NCCO action": ({"ncco": [{"action": "shout", "text": "hi"}]}, "ncco"),
    "a 10 MB NCCO": ({"ncco": [{"action": "talk", "text": "a" * 1000}] * 10_000}, "ncco"),
    "a file:// event_url": ({"ncco": [{"action": "talk", "text": "hi"}], "event_url": ["file:///etc/passwd"]},
                            "event_url"),
    "a file:// answer_url": ({"answer_url": ["file:///etc/passwd"]}, "answer_url"),
    "a file:// eventUrl in the NCCO": ({"ncco": [{"action": "record", "eventUrl": ["file:///tmp/x"]}]}, "ncco"),
    "an integer phone number": ({"ncco": [{"action": "talk", "text": "hi"}],
                                 "to": [{"type": "phone", "number": 447700900631}]}, "to"),
}


@pytest.mark.parametrize("name", list(VOICE_CASES))
def test_the_voice_api_refuses(sb, name):
    extra, field = VOICE_CASES[name]
    before = len(requests.get(f"{sb.url}/_labkit/calls", verify=sb.ca, timeout=10).json()["calls"])
    r = voice(sb, call_body(sb, **extra))
    assert r.status_code == 400, (r.status_code, r.text[:300])
    body = r.json()
    assert body["title"] == "Bad Request" and any(p["name"].startswith(field) for p in body["invalid_parameters"])
    after = len(requests.get(f"{sb.url}/_labkit/calls", verify=sb.ca, timeout=10).json()["calls"])
    assert after == before, "a call was placed although it was refused"


def test_applications_take_http_webhook_urls_only(sb):
    auth = (sb.rows["API key"], sb.rows["API secret"])
    hooks = {"answer_url": {"address": "file:///etc/passwd", "http_method": "GET"}}
    r = requests.post(f"{sb.url}/v2/applications", auth=auth, verify=sb.ca, timeout=10,
                      json={"name": "bad", "capabilities": {"voice": {"webhooks": hooks}}})
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/json"
    assert r.json()["invalid_parameters"][0]["name"] == "capabilities.voice.webhooks.answer_url.address"
    listed = requests.get(f"{sb.url}/v2/applications", auth=auth, verify=sb.ca, timeout=10).json()
    assert "bad" not in [a["name"] for a in listed["_embedded"]["applications"]]


def test_number_update_is_read_as_a_form_only(sb):
    auth = (sb.rows["API key"], sb.rows["API secret"])
    fields = {"country": "GB", "msisdn": sb.rows["number"], "app_id": sb.rows["application id"]}
    as_json = requests.post(f"{sb.url}/number/update", auth=auth, verify=sb.ca, timeout=10,
                            data=json.dumps(fields), headers={"Content-Type": "application/json"})
    assert as_json.status_code == 400
    assert as_json.json()["error-code"] == "400"
    as_form = requests.post(f"{sb.url}/number/update", auth=auth, verify=sb.ca, timeout=10, data=fields)
    assert as_form.status_code == 200 and as_form.json() == {"error-code": "200", "error-code-label": "success"}
