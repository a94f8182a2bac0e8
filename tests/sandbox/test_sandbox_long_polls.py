"""The control API's long polls over plain HTTP, as a test in any language uses them: held until the call
or phone gets there, answered as soon as it does, and described in the served OpenAPI document."""

from __future__ import annotations

import time

import pytest
import requests
from flask import Flask, jsonify
from openapi_schema_validator import OAS31Validator

from labkit.testing.apps import serve

pytestmark = pytest.mark.vonage_sandbox(speed=10)

APP = Flask("long-polls")


@APP.get("/answer")
def answer():
    return jsonify([{"action": "talk", "text": "One moment"}, {"action": "conversation", "name": "waiting-room"}])


def test_calls_and_phones_are_held_until_they_get_there(vonage_sandbox, vonage_app):
    base, verify = vonage_sandbox.url + "/_labkit", vonage_sandbox.ca_path
    spec = requests.get(f"{base}/openapi.json", verify=verify, timeout=10).json()

    def get(path: str, schema: str, **params) -> dict:
        r = requests.get(f"{base}/{path}", params=params, verify=verify, timeout=30)
        assert r.status_code == 200, r.text
        OAS31Validator({"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}).validate(r.json())
        return r.json()

    with serve(APP) as url:
        vonage_app(answer_url=f"{url}/answer")
        requests.post(f"{base}/phones", json={"number": "447700900011", "answer_after": 0}, verify=verify,
                      timeout=10).raise_for_status()
        uuid = requests.post(f"{base}/phones/447700900011/dial", json={}, verify=verify, timeout=10).json()["uuid"]
        view = get(f"calls/{uuid}", "Call", wait=20, until="action:conversation")
        assert view["ncco"]["current"] == 1 and view["played"][0]["text"] == "One moment"
        assert view["time"] >= view["played"][0]["seconds"]  # the talk was over before the caller joined
        phone = get("phones/447700900011", "Phone", wait=20, state="answered")
        assert phone["call"] == uuid
        started = time.monotonic()
        held = get(f"calls/{uuid}", "Call", wait=0.5, until="completed")  # not yet: held for the whole wait
        assert held["status"] == "answered" and time.monotonic() - started >= 0.45
        requests.post(f"{base}/phones/447700900011/hangup", verify=verify, timeout=10).raise_for_status()
        done = get(f"calls/{uuid}", "Call", wait=20, until="finished")
        assert done["finished"] and done["status"] == "completed" and done["ended_by"] == "phone"
    bad = requests.get(f"{base}/calls/{uuid}", params={"wait": 1, "until": "time:soon"}, verify=verify, timeout=10)
    assert bad.status_code == 400 and "seconds" in bad.json()["detail"]
