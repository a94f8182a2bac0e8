"""Applications made with the Application API outlive `labkit sandbox` (issue 19, item 4), and
`POST /_labkit/reset` says what it clears and what it keeps.

As on Vonage, an application stays until it is deleted and a number stays linked to it: a user's script
that set its app up once keeps working after the sandbox restarts on the same home (its JWTs are not
401, inbound calls still reach its answer_url).
"""

from __future__ import annotations

import time
import uuid

import jwt
from support.sandbox_process import SandboxProcess
from support.webhook_app import WebhookApp

SPEED = 10


def app_bearer(app_id: str, private_key: str) -> dict:
    now = int(time.time())
    token = jwt.encode({"application_id": app_id, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())},
                       private_key.encode(), algorithm="RS256")
    return {"Authorization": f"Bearer {token}"}


def test_an_application_and_its_number_survive_a_restart(tmp_path):
    user = WebhookApp()
    user.nccos["447700900641"] = [{"action": "talk", "text": "You reached my app"}]
    home = tmp_path / "home"
    try:
        first = SandboxProcess(home, speed=SPEED)
        auth = (first.rows["API key"], first.rows["API secret"])
        number = first.rows["number"]
        hooks = {"answer_url": {"address": f"{user.url}/answer", "http_method": "GET"},
                 "event_url": {"address": f"{user.url}/event", "http_method": "POST"}}
        made = first.raw("POST", "/v2/applications", auth=auth,
                         json={"name": "my app", "capabilities": {"voice": {"webhooks": hooks}}})
        assert made.status_code == 201, made.text
        created = made.json()
        linked = first.raw("POST", "/number/update", auth=auth,
                           data={"country": "GB", "msisdn": number, "app_id": created["id"]})
        assert linked.json()["error-code"] == "200"
        deleted = first.raw("POST", "/v2/applications", auth=auth, json={"name": "short-lived"}).json()
        assert first.raw("DELETE", f"/v2/applications/{deleted['id']}", auth=auth).status_code == 204
        first.stop()

        second = SandboxProcess(home, speed=SPEED)
        try:
            assert (second.rows["API key"], second.rows["API secret"]) == auth  # the same account
            got = second.raw("GET", f"/v2/applications/{created['id']}", auth=auth)
            assert got.status_code == 200, got.text
            assert got.json()["name"] == "my app"
            assert got.json()["keys"]["public_key"] == created["keys"]["public_key"]
            assert got.json()["capabilities"]["voice"]["webhooks"] == created["capabilities"]["voice"]["webhooks"]
            assert second.raw("GET", f"/v2/applications/{deleted['id']}", auth=auth).status_code == 404
            owned = second.raw("GET", "/account/numbers", auth=auth, params={"application_id": created["id"]})
            assert [n["msisdn"] for n in owned.json()["numbers"]] == [number]
            # its JWT still opens the Voice API (it got 401 after a restart before)
            listed = second.raw("GET", "/v1/calls", headers=app_bearer(created["id"], created["keys"]["private_key"]))
            assert listed.status_code == 200, listed.text
            # and an inbound call to its number still reaches its answer_url
            second.request("POST", "phones", json={"number": "447700900641", "answer_after": 0})
            call = second.request("POST", "phones/447700900641/dial", json={"to": number}).json()
            user.wait_for(lambda h: h.path == "/answer" and h.fields.get("uuid") == call["uuid"])
            user.wait_for(lambda h: h.path == "/event" and h.fields.get("uuid") == call["uuid"]
                          and h.fields.get("status") == "completed")
        finally:
            second.stop()
    finally:
        user.stop()
    assert oct((home / "applications.json").stat().st_mode & 0o777) == "0o600"


def test_reset_says_what_it_clears_and_keeps(tmp_path):
    sb = SandboxProcess(tmp_path / "home", speed=SPEED)
    try:
        auth = (sb.rows["API key"], sb.rows["API secret"])
        made = sb.raw("POST", "/v2/applications", auth=auth, json={"name": "kept"}).json()
        sb.request("POST", "phones", json={"number": "447700900642"})
        spec = sb.request("GET", "openapi.json").json()
        answer = sb.request("POST", "reset").json()
        assert answer["reset"] is True
        cleared, kept = " ".join(answer["cleared"]), " ".join(answer["kept"])
        for words in ("calls", "phones", "recordings", "webhook log"):
            assert words in cleared
        for words in ("account", "applications", "numbers"):
            assert words in kept
        summary = spec["paths"]["/_labkit/reset"]["post"]["summary"]
        assert "keep" in summary and "applications" in summary
        # and it did what it says
        assert sb.raw("GET", "/_labkit/phones/447700900642").status_code == 404
        assert sb.raw("GET", f"/v2/applications/{made['id']}", auth=auth).status_code == 200
    finally:
        sb.stop()
