"""The sandbox's Application API v2 and Numbers API: the real SDK's clients, and the wire with requests."""

from __future__ import annotations

import pytest
import requests
from support.sandbox import *  # noqa: F403 - the fixtures: sandbox, receiver, client, test_audio
from support.sandbox import dump
from vonage_application import (
    ApplicationConfig,
    ApplicationUrl,
    Capabilities,
    ListApplicationsFilter,
    Voice,
    VoiceUrl,
    VoiceWebhooks,
)
from vonage_http_client import Auth, HttpClientOptions
from vonage_http_client.errors import AuthenticationError, NotFoundError
from vonage_numbers import ListOwnedNumbersFilter, UpdateNumberParams
from vonage_voice import CreateCallRequest, Phone, Talk, ToPhone

from labkit.errors import SandboxError


@pytest.fixture
def sandbox(own_sandbox):
    """This module makes and deletes applications and numbers: a sandbox of its own for each test."""
    return own_sandbox.sandbox


@pytest.fixture
def client(own_sandbox):
    return own_sandbox.client()


def account_client(sb, secret=None):
    """`vonage.Vonage(Auth(api_key, api_secret))` pointed at the sandbox, as the lab and users build it."""
    from vonage import Vonage

    sb.trust()
    return Vonage(Auth(api_key=sb.api_key, api_secret=secret or sb.api_secret),
                  HttpClientOptions(api_host=sb.api_host, rest_host=sb.api_host, timeout=10))


def voice_config(name, base, tag="", **voice):
    """An application whose webhooks are the receiver's /answer<tag> and /event<tag>."""
    hooks = VoiceWebhooks(answer_url=VoiceUrl(address=f"{base}/answer{tag}", http_method="GET"),
                          event_url=VoiceUrl(address=f"{base}/event{tag}", http_method="POST"))
    return ApplicationConfig(name=name, capabilities=Capabilities(voice=Voice(webhooks=hooks, **voice)))


def wire(sb, method, path, **kw):
    kw.setdefault("auth", (sb.api_key, sb.api_secret))
    return requests.request(method, sb.base_url + path, verify=str(sb.ca_bundle), timeout=5, **kw)


def test_sdk_application_crud(sandbox, receiver):
    vonage = account_client(sandbox)
    apps, next_page = vonage.application.list_applications()
    assert [a.id for a in apps] == [sandbox.application_id] and next_page is None
    made = vonage.application.create_application(voice_config("tutorial", receiver.url))
    assert made.keys.public_key.startswith("-----BEGIN PUBLIC KEY")
    assert "PRIVATE KEY" in made.keys.model_extra["private_key"]  # returned once, at creation [DOC-CLI]
    voice = made.capabilities.voice
    assert voice.webhooks.answer_url.address == receiver.url + "/answer"
    assert voice.signed_callbacks is True  # Vonage's default [OAS-APP]
    assert voice.webhooks.event_url.socket_timeout == 10000 and voice.webhooks.answer_url.connect_timeout == 1000
    got = vonage.application.get_application(made.id)
    assert got.name == "tutorial" and "private_key" not in (got.keys.model_extra or {})
    # PUT replaces the whole application: the event URL left out is gone
    update = ApplicationConfig(name="renamed", capabilities=Capabilities(voice=Voice(webhooks=VoiceWebhooks(
        answer_url=VoiceUrl(address=receiver.url + "/other", http_method="POST")), signed_callbacks=False)))
    changed = vonage.application.update_application(made.id, update)
    assert changed.name == "renamed" and changed.capabilities.voice.webhooks.event_url is None
    assert changed.capabilities.voice.webhooks.answer_url.http_method == "POST"
    assert changed.keys.public_key == made.keys.public_key  # kept when not sent
    vonage.application.delete_application(made.id)
    with pytest.raises(NotFoundError):
        vonage.application.get_application(made.id)


def test_bad_credentials_are_refused_as_vonage_does(sandbox):
    with pytest.raises(AuthenticationError):
        account_client(sandbox, secret="wrong").application.list_applications()
    r = wire(sandbox, "GET", "/v2/applications", auth=(sandbox.api_key, "wrong"))
    assert r.status_code == 401 and r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["title"] == "Invalid credentials supplied" and body["type"].endswith("#unauthorized")
    assert body["instance"]
    n = wire(sandbox, "GET", "/account/numbers", auth=(sandbox.api_key, "wrong"))
    assert n.status_code == 401 and n.json() == {"error-code": "401", "error-code-label": "authentication failed"}
    # a Voice JWT does not open the Application API, Basic does not open the Voice API
    assert wire(sandbox, "GET", "/v1/calls").status_code == 401


def test_application_api_wire_details(sandbox, receiver):
    created = [wire(sandbox, "POST", "/v2/applications", json={"name": f"app{i}"}) for i in range(2)]
    assert [r.status_code for r in created] == [201, 201]
    page = wire(sandbox, "GET", "/v2/applications", params={"page_size": 1, "page": 2}).json()
    assert page["page"] == 2 and page["page_size"] == 1 and page["total_items"] == 3 and page["total_pages"] == 3
    assert set(page["_links"]) == {"self", "first", "last", "next", "prev"}
    assert len(page["_embedded"]["applications"]) == 1
    one = page["_embedded"]["applications"][0]
    assert one["_links"]["self"]["href"] == f"/v2/applications/{one['id']}"
    bad = wire(sandbox, "GET", "/v2/applications", params={"page_size": 101})
    assert bad.status_code == 400 and bad.json()["type"].endswith("application#list-validation")
    invalid = wire(sandbox, "POST", "/v2/applications", json={"name": "x", "capabilities": {"voice": {
        "webhooks": {"answer_url": {"address": receiver.url, "http_method": "PATCH"}}}}})
    assert invalid.status_code == 400 and invalid.json()["title"] == "Bad Request"
    assert {"name": "capabilities.voice.webhooks.answer_url.http_method",
            "reason": "must be one of: GET, POST"} in invalid.json()["invalid_parameters"]
    assert wire(sandbox, "POST", "/v2/applications", data={"name": "x"}).status_code == 415
    assert wire(sandbox, "GET", "/v2/applications", headers={"Accept": "text/html"}).status_code == 406
    missing = wire(sandbox, "GET", "/v2/applications/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "ID 'nope' does not exist, or you do not have access"
    gone = wire(sandbox, "DELETE", f"/v2/applications/{created[0].json()['id']}")
    assert gone.status_code == 204 and gone.content == b""


def test_numbers_api_lists_and_links(sandbox, receiver):
    vonage = account_client(sandbox)
    numbers, count, _ = vonage.numbers.list_owned_numbers()
    assert count == 1 and numbers[0].msisdn == sandbox.number
    assert numbers[0].app_id == sandbox.application_id and numbers[0].voice_callback_type == "app"
    made = vonage.application.create_application(voice_config("inbound", receiver.url, "-second"))
    status = vonage.numbers.update_number(UpdateNumberParams(country="GB", msisdn=sandbox.number, app_id=made.id))
    assert status.error_code == "200" and status.error_code_label == "success"
    linked, _, _ = vonage.numbers.list_owned_numbers(ListOwnedNumbersFilter(application_id=made.id))
    assert [n.msisdn for n in linked] == [sandbox.number]
    unlinked, count, _ = vonage.numbers.list_owned_numbers(ListOwnedNumbersFilter(has_application=False))
    assert unlinked == [] and count == 0
    # the form body on the wire; an unknown number fails as observed on Vonage (420 method failed)
    r = wire(sandbox, "POST", "/number/update", data={"country": "GB", "msisdn": "447700900999", "app_id": made.id})
    assert r.status_code == 420 and r.json() == {"error-code": "420", "error-code-label": "method failed"}
    assert wire(sandbox, "POST", "/number/update", data={"msisdn": sandbox.number}).status_code == 400


def test_inbound_calls_follow_the_number_to_its_application(sandbox, receiver):
    vonage = account_client(sandbox)
    receiver.answer_ncco = dump([Talk(text="hello")])
    made = vonage.application.create_application(voice_config("inbound", receiver.url, "-second",
                                                              signed_callbacks=False))
    vonage.numbers.update_number(UpdateNumberParams(country="GB", msisdn=sandbox.number, app_id=made.id))
    call = sandbox.dial("447700900123")
    hook = receiver.wait_for(path="/answer-second")
    assert hook.payload["uuid"] == call.uuid and hook.method == "GET"
    assert "Authorization" not in hook.headers  # that application has signed callbacks off
    receiver.wait_for("answered", uuid=call.uuid)
    assert receiver.find(uuid=call.uuid, path="/event-second")
    # unlinked: nothing answers the number
    r = wire(sandbox, "POST", "/number/update", data={"country": "GB", "msisdn": sandbox.number, "app_id": ""})
    assert r.status_code == 200
    with pytest.raises(SandboxError, match="not linked to an application"):
        sandbox.dial("447700900124")


def test_a_call_without_event_url_uses_its_applications(sandbox, receiver):
    """The JWT names the application; its event URL serves a call created without one, signed with
    that application's id."""
    import jwt
    from vonage import Vonage

    vonage = account_client(sandbox)
    made = vonage.application.create_application(voice_config("outbound", receiver.url, "-third"))
    key = made.keys.model_extra["private_key"]
    voice = Vonage(Auth(application_id=made.id, private_key=key),
                   HttpClientOptions(api_host=sandbox.api_host, timeout=10)).voice
    created = voice.create_call(CreateCallRequest(to=[ToPhone(number="447700900125")],
                                                  from_=Phone(number=sandbox.number), ncco=[Talk(text="hi")]))
    hook = receiver.wait_for("answered", uuid=created.uuid)
    assert hook.path == "/event-third"
    claims = jwt.decode(hook.headers["Authorization"][7:], sandbox.signature_secret, algorithms=["HS256"])
    assert claims["application_id"] == made.id and claims["api_key"] == sandbox.api_key
    # calls are per application: the sandbox application's JWT neither sees nor controls this call
    from vonage_voice import ListCallsFilter

    default = Vonage(Auth(application_id=sandbox.application_id, private_key=str(sandbox.private_key_path)),
                     HttpClientOptions(api_host=sandbox.api_host, timeout=10)).voice
    with pytest.raises(NotFoundError):
        default.get_call(created.uuid)
    listed, _ = default.list_calls(ListCallsFilter(page_size=100))
    assert created.uuid not in [c.uuid for c in listed]
    mine, _ = voice.list_calls(ListCallsFilter(page_size=100))
    assert [c.uuid for c in mine] == [created.uuid]
    vonage.application.delete_application(made.id)  # its key no longer opens the Voice API
    with pytest.raises(AuthenticationError):
        voice.get_call(created.uuid)


def test_list_filter_defaults_of_the_sdk(sandbox):
    apps, _ = account_client(sandbox).application.list_applications(ListApplicationsFilter(page_size=1, page=1))
    assert len(apps) == 1
    assert ApplicationUrl  # the SDK's model names used above stay importable


def test_the_lab_configures_the_sandbox_only_through_the_apis(monkeypatch, tmp_path):
    """Sandbox mode sets the application up as live mode does: Application and Numbers APIs, no shortcut."""
    from labkit.config import Settings
    from labkit.lab.facade import Lab
    from labkit.sandbox import Sandbox

    def refuse(*a, **k):
        raise AssertionError("the lab used the sandbox's private configure()")

    monkeypatch.setattr(Sandbox, "configure", refuse)
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    lab = Lab(Settings.load(environ={"LABKIT_MODE": "sandbox"}), speed=4.0, quiet=True)
    try:
        lab._start()
        app = account_client(lab.sandbox).application.get_application(lab.sandbox.application_id)
        hooks = app.capabilities.voice.webhooks
        assert hooks.answer_url.address == lab.url("/webhooks/answer") and hooks.answer_url.http_method == "GET"
        assert hooks.event_url.address == lab.url("/webhooks/event") and app.capabilities.voice.signed_callbacks
        lab.sandbox.phone("447700900126")
        lab.sandbox.dial("447700900126")
        call = lab.wait_for_call(timeout=10)
        call.wait_for("answered", timeout=10)
    finally:
        lab.stop()


def test_pointing_the_application_keeps_what_the_sdk_models_do_not_know(sandbox):
    """The lab's read-modify-write is on the raw JSON: a capability the SDK has no model for survives."""
    from labkit.live.account import LabUrls, clients, point_application, restore_application

    video = {"webhooks": {"archive_status": {"address": "https://example.com/video", "active": True}}}
    made = wire(sandbox, "POST", "/v2/applications", json={"name": "mixed", "capabilities": {
        "video": video, "messages": {"webhooks": {"inbound_url": {"address": "https://example.com/in",
                                                                   "http_method": "POST"}}}}}).json()
    apps, numbers = clients(sandbox.api_key, sandbox.api_secret, api_host=sandbox.api_host,
                            rest_host=sandbox.api_host)
    pointed = point_application(apps, numbers, made["id"], LabUrls.for_base("https://lab.example"))
    got = wire(sandbox, "GET", f"/v2/applications/{made['id']}").json()
    assert got["capabilities"]["video"] == video and "messages" in got["capabilities"]
    assert got["capabilities"]["voice"]["webhooks"]["answer_url"]["address"] == "https://lab.example/webhooks/answer"
    restore_application(apps, made["id"], pointed.record())
    back = wire(sandbox, "GET", f"/v2/applications/{made['id']}").json()["capabilities"]
    assert "voice" not in back and back["video"] == video


def test_a_recording_downloads_only_with_the_recording_applications_jwt(sandbox, receiver):
    """"signed by the same application key that created the recording" [NDP:recording.md]."""
    from vonage import Vonage

    made = account_client(sandbox).application.create_application(voice_config("recorder", receiver.url, "-rec"))
    mine = Vonage(Auth(application_id=made.id, private_key=made.keys.model_extra["private_key"]),
                  HttpClientOptions(api_host=sandbox.api_host, timeout=10)).voice.http_client
    ncco = [{"action": "record", "format": "wav", "eventUrl": [receiver.url + "/recording"]},
            {"action": "stream", "streamUrl": [receiver.audio_url("music.wav")]}]
    mine.post(mine.api_host, "/v1/calls", {"to": [{"type": "phone", "number": "447700900127"}],
                                           "from": {"type": "phone", "number": sandbox.number}, "ncco": ncco})
    url = receiver.wait_for("record", path="/recording", timeout=20).payload["recording_url"]
    other = Vonage(Auth(application_id=sandbox.application_id, private_key=str(sandbox.private_key_path)),
                   HttpClientOptions(api_host=sandbox.api_host, timeout=10)).voice.http_client
    for auth, status in ((mine.auth, 200), (other.auth, 401)):
        got = requests.get(url, headers={"Authorization": auth.create_jwt_auth_string()},
                           verify=str(sandbox.ca_bundle), timeout=5)
        assert got.status_code == status
