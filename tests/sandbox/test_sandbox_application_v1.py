"""The Application API v1 on `labkit sandbox` (its own process), as legacy clients call it (issue 19, item 2).

The requests are those of the `nexmo` 2.x Node package (and so Node-RED's "create application" button):
fields and credentials in the query string of a POST with no body. Then the v1 definition's own form (a
JSON body), and the same application seen through v2: one account, two shapes. Never a credentials error
for good credentials.
"""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests
from support.sandbox_process import SandboxProcess

SPEED = 10


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    proc = SandboxProcess(tmp_path_factory.mktemp("v1-home"), speed=SPEED)
    yield proc
    proc.stop()


def creds(sb: SandboxProcess) -> dict:
    return {"api_key": sb.rows["API key"], "api_secret": sb.rows["API secret"]}


def test_create_as_the_nexmo_2_package_does_list_get_update_delete(sb):
    query = {**creds(sb), "name": "node-red app", "type": "voice", "answer_url": "https://example.com/answer",
             "event_url": "https://example.com/event"}
    created = sb.raw("POST", "/v1/applications", params=query)  # postUseQueryString: no body
    assert created.status_code == 201, created.text
    app = created.json()
    assert app["name"] == "node-red app" and app["id"]
    assert {"endpoint_type": "answer_url", "endpoint": "https://example.com/answer", "http_method": "GET"} in \
        app["voice"]["webhooks"]
    assert {"endpoint_type": "event_url", "endpoint": "https://example.com/event", "http_method": "POST"} in \
        app["voice"]["webhooks"]
    assert app["messages"] == {"webhooks": []}
    assert "PRIVATE KEY" in app["keys"]["private_key"] and "PUBLIC KEY" in app["keys"]["public_key"]
    assert app["_links"]["href"] == f"/v1/applications/{app['id']}"

    # its private key signs JWTs the Voice API takes
    now = int(time.time())
    token = jwt.encode({"application_id": app["id"], "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())},
                       app["keys"]["private_key"].encode(), algorithm="RS256")
    assert sb.raw("GET", "/v1/calls", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    listed = sb.raw("GET", "/v1/applications", params={**creds(sb), "page_size": 10, "page_index": 0})
    assert listed.status_code == 200
    page = listed.json()
    assert page["page_size"] == 10 and page["page_index"] == 0 and page["count"] >= 2  # the default one too
    mine = [a for a in page["_embedded"]["applications"] if a["id"] == app["id"]]
    assert mine and "keys" not in mine[0]  # "The public_key is not included" in the list

    got = sb.raw("GET", f"/v1/applications/{app['id']}", params=creds(sb)).json()
    assert got["keys"]["public_key"] == app["keys"]["public_key"] and "private_key" not in got["keys"]
    seen_by_v2 = sb.raw("GET", f"/v2/applications/{app['id']}", auth=(sb.rows["API key"], sb.rows["API secret"]))
    assert seen_by_v2.json()["capabilities"]["voice"]["webhooks"]["answer_url"]["address"] == \
        "https://example.com/answer"

    # the v1 definition's own form: JSON body with the credentials in it
    updated = sb.raw("PUT", f"/v1/applications/{app['id']}", json={
        **creds(sb), "name": "renamed", "type": "voice", "answer_url": "https://example.com/other",
        "answer_method": "POST", "event_url": "https://example.com/event"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "renamed"
    assert {"endpoint_type": "answer_url", "endpoint": "https://example.com/other", "http_method": "POST"} in \
        updated.json()["voice"]["webhooks"]

    assert sb.raw("DELETE", f"/v1/applications/{app['id']}", params=creds(sb)).status_code == 204
    gone = sb.raw("GET", f"/v1/applications/{app['id']}", params=creds(sb))
    assert gone.status_code == 404 and gone.headers["Content-Type"] == "application/json"


def test_v1_refusals_say_what_is_wrong(sb):
    bad_creds = sb.raw("POST", "/v1/applications", params={"api_key": "x", "api_secret": "y", "name": "a",
                                                           "type": "voice", "event_url": "https://e.com/e"})
    assert bad_creds.status_code == 401 and bad_creds.json()["title"] == "Invalid credentials supplied"
    no_type = sb.raw("POST", "/v1/applications", params={**creds(sb), "name": "a"})
    assert no_type.status_code == 400 and no_type.json()["invalid_parameters"][0]["name"] == "type"
    no_event = sb.raw("POST", "/v1/applications", json={**creds(sb), "name": "a", "type": "voice"})
    assert no_event.status_code == 400 and no_event.json()["invalid_parameters"][0]["name"] == "event_url"
    file_url = sb.raw("POST", "/v1/applications", json={**creds(sb), "name": "a", "type": "voice",
                                                          "event_url": "file:///etc/passwd"})
    assert file_url.status_code == 400
    # Basic auth works on v1 too, and a good request is never a credentials error
    basic = requests.get(f"{sb.url}/v1/applications", auth=(sb.rows["API key"], sb.rows["API secret"]),
                         verify=sb.ca, timeout=10)
    assert basic.status_code == 200
