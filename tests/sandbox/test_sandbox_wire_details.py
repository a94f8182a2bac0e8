"""Wire details of `labkit sandbox` (its own process) as Vonage's specs and references give them (issue 19).

- Application API errors: the bodies and content type (`application/json`) of the Application API spec
  v2.4.1 (components/responses).
- `answered` events sent by GET carry `start_time`, `rate` and `network` (empty), as the webhook
  reference lists them.
- A speech-only `input` event carries `dtmf: {digits: null, timed_out: false}` (the Speech Recognition
  guide's event payload).
- The control API answers what its own openapi.json documents; `GET /_labkit/webhooks` counts failed
  deliveries beside the sent ones.
"""

from __future__ import annotations

import requests
from support.sandbox_process import SandboxProcess

SPEED = 10
SPEC_ERRORS = "https://developer.vonage.com/api-errors"


def control(sb: SandboxProcess, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, f"{sb.url}/_labkit/{path}", verify=sb.ca, timeout=10, **kw)


def applications(sb: SandboxProcess, method: str, path: str = "", **kw) -> requests.Response:
    kw.setdefault("auth", (sb.rows["API key"], sb.rows["API secret"]))
    return requests.request(method, f"{sb.url}/v2/applications{path}", verify=sb.ca, timeout=10, **kw)


def test_application_api_errors_are_the_specs_json_bodies(sb):
    cases = {
        401: applications(sb, "GET", auth=("nobody", "wrong")),
        404: applications(sb, "GET", "/00000000-0000-0000-0000-000000000000"),
        405: applications(sb, "PATCH", "/00000000-0000-0000-0000-000000000000"),
        406: applications(sb, "GET", headers={"Accept": "application/xml"}),
        415: applications(sb, "POST", data="name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}),
        400: applications(sb, "POST", json={"capabilities": {}}),  # name is required
    }
    expected = {
        401: (SPEC_ERRORS + "#unauthorized", "Invalid credentials supplied"),
        404: (SPEC_ERRORS + "#not-found", "Not Found"),
        405: (SPEC_ERRORS + "#wrong-verb", "Request method not allowed"),
        406: (SPEC_ERRORS + "#accept-header", "Invalid Accept header"),
        415: (SPEC_ERRORS + "#content-type-header", "Unsupported Content-Type header"),
        400: (SPEC_ERRORS + "/application#payload-validation", "Bad Request"),
    }
    for status, r in cases.items():
        assert r.status_code == status, (status, r.text)
        assert r.headers["Content-Type"] == "application/json", (status, r.headers["Content-Type"])
        body = r.json()
        assert (body["type"], body["title"]) == expected[status], body
        assert body["detail"] and body["instance"]
    assert cases[400].json()["invalid_parameters"][0]["name"] == "name"
    listing = applications(sb, "GET", params={"page_size": 500})
    assert listing.status_code == 400 and listing.headers["Content-Type"] == "application/json"
    assert listing.json()["type"] == SPEC_ERRORS + "/application#list-validation"


def test_answered_sent_by_get_carries_start_time_rate_and_network(sb, app):
    control(sb, "POST", "phones", json={"number": "447700900621", "answer_after": 0}).raise_for_status()
    r = requests.post(f"{sb.url}/v1/calls", headers=sb.bearer(), verify=sb.ca, timeout=10, json={
        "to": [{"type": "phone", "number": "447700900621"}], "from": {"type": "phone", "number": sb.rows["number"]},
        "ncco": [{"action": "talk", "text": "Hello"}], "event_url": [f"{app.url}/get-events"], "event_method": "GET"})
    assert r.status_code == 201, r.text
    uuid = r.json()["uuid"]
    hit = app.wait_for(lambda h: h.path == "/get-events" and h.fields.get("uuid") == uuid
                       and h.fields.get("status") == "answered")
    assert hit.method == "GET"
    assert {k: hit.fields.get(k) for k in ("start_time", "rate", "network")} == {
        "start_time": "", "rate": "", "network": ""}  # "*empty*" in the webhook reference
    completed = app.wait_for(lambda h: h.path == "/get-events" and h.fields.get("uuid") == uuid
                             and h.fields.get("status") == "completed")
    assert completed.fields["start_time"] and completed.fields["rate"] and completed.fields["network"]


def test_a_speech_only_input_event_carries_an_empty_dtmf(sb, app):
    caller = "447700900622"
    app.nccos[caller] = [{"action": "input", "type": ["speech"], "eventUrl": [f"{app.url}/input"],
                          "speech": {"endOnSilence": 1, "startTimeout": 5}}]
    control(sb, "POST", "phones", json={"number": caller, "answer_after": 0}).raise_for_status()
    control(sb, "POST", f"phones/{caller}/say", json={"text": "I would like to pay my bill"}).raise_for_status()
    call = control(sb, "POST", f"phones/{caller}/dial", json={}).json()
    hit = app.wait_for(lambda h: h.path == "/input" and h.fields.get("uuid") == call["uuid"])
    assert hit.fields["speech"]["results"][0]["text"] == "I would like to pay my bill"
    assert hit.fields["dtmf"] == {"digits": None, "timed_out": False}
    assert list(hit.fields)[:2] == ["speech", "dtmf"]  # the guide's order


def test_control_api_answers_what_its_openapi_documents(sb):
    spec = control(sb, "GET", "openapi.json").json()
    phones = spec["paths"]["/_labkit/phones"]["post"]["responses"]
    created = control(sb, "POST", "phones", json={"number": "447700900623"})
    updated = control(sb, "POST", "phones", json={"number": "447700900623", "answer_after": 2})
    assert (created.status_code, updated.status_code) == (201, 200)
    assert {"201", "200"} <= set(phones)
    refused = control(sb, "POST", "phones", json={"number": "447700900623", "answer_after": "soon"})
    assert refused.status_code == 400 and "400" in phones


def test_webhooks_log_counts_failed_deliveries(sb, app):
    app.statuses["/broken-events"] = 500
    before = control(sb, "GET", "webhooks").json()
    control(sb, "POST", "phones", json={"number": "447700900624", "answer_after": 0}).raise_for_status()
    r = requests.post(f"{sb.url}/v1/calls", headers=sb.bearer(), verify=sb.ca, timeout=10, json={
        "to": [{"type": "phone", "number": "447700900624"}], "from": {"type": "phone", "number": sb.rows["number"]},
        "ncco": [{"action": "talk", "text": "Hi"}], "event_url": [f"{app.url}/broken-events"]})
    assert r.status_code == 201
    uuid = r.json()["uuid"]
    app.wait_for(lambda h: h.path == "/broken-events" and h.fields.get("status") == "completed"
                 and h.fields.get("uuid") == uuid)

    def mine(log: dict) -> list[dict]:
        return [w for w in log["webhooks"] if w["url"].endswith("/broken-events") and w["answer"] is not None]

    deadline_log = control(sb, "GET", "webhooks").json()
    for _ in range(100):  # the last answer is recorded just after the app got the request
        if len(mine(deadline_log)) >= 4 and deadline_log["pending"] == 0:
            break
        deadline_log = control(sb, "GET", "webhooks").json()
    after = deadline_log
    broken = mine(after)
    assert broken and all(not w["answer"]["ok"] and w["answer"]["attempts"] == 2 for w in broken)
    assert after["failed"] - before["failed"] == len(broken)  # a 500 is failed, not only "sent"
    assert after["sent"] - before["sent"] >= len(broken)
