"""The sandbox's REST API, driven by the real vonage SDK over HTTPS, checked against Vonage's OpenAPI spec."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator
from support.sandbox import *  # noqa: F403 - the fixtures: sandbox, receiver, client, test_audio
from support.sandbox import sdk_client, wait_until
from vonage_http_client.errors import AuthenticationError, HttpRequestError, NotFoundError
from vonage_voice import (
    AudioStreamOptions,
    CreateCallRequest,
    ListCallsFilter,
    Phone,
    Stream,
    Talk,
    ToPhone,
    TtsStreamOptions,
)

SPEC = yaml.safe_load((Path(__file__).parents[1] / "data" / "voice-openapi-1.3.7.yml").read_text())


def check_schema(body: object, name: str) -> None:
    """Validate a response body against components/schemas/<name> of the Voice OpenAPI spec."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    OAS30Validator(schema).validate(body)


def last_body(client) -> object:
    return client.voice.http_client.last_response.json()


def keep_alive_ncco(receiver) -> list:
    """Audio that keeps the call up until hung up (a looping stream), like the tutorials do."""
    return [Stream(streamUrl=[receiver.audio_url("silence.wav")], loop=0)]


def place(client, sandbox, receiver, number="447700900001", ncco=None, **kw):
    return client.voice.create_call(CreateCallRequest(
        to=[ToPhone(number=number)], from_=Phone(number=sandbox.number),
        ncco=ncco if ncco is not None else keep_alive_ncco(receiver), **kw))


def test_sdk_drives_every_voice_method_and_bodies_match_the_spec(sandbox, client, receiver):
    sandbox.phone("447700900001").set(answer_after=0.2)
    created = place(client, sandbox, receiver)
    check_schema(last_body(client), "CreateCallResponse")
    assert created.status == "started" and created.direction == "outbound"
    assert created.conversation_uuid.startswith("CON-")
    receiver.wait_for("answered", created.uuid)

    info = client.voice.get_call(created.uuid)
    check_schema(last_body(client), "GetCallResponse")
    assert info.status == "answered" and info.to.number == "447700900001"
    assert info.link == f"/v1/calls/{created.uuid}"
    assert info.duration is None and info.price is None  # only once completed

    calls, _next = client.voice.list_calls(ListCallsFilter(page_size=10))
    check_schema(last_body(client), "GetCallsResponse")
    assert created.uuid in [c.uuid for c in calls]

    msg = client.voice.play_audio_into_call(
        created.uuid, AudioStreamOptions(stream_url=[receiver.audio_url("music.wav")], loop=1, level=0.5))
    check_schema(last_body(client), "StartStreamResponse")
    assert (msg.message, msg.uuid) == ("Stream started", created.uuid)
    msg = client.voice.stop_audio_stream(created.uuid)
    check_schema(last_body(client), "StopStreamResponse")
    assert msg.message == "Stream stopped"

    msg = client.voice.play_tts_into_call(created.uuid, TtsStreamOptions(text="Hello", language="en-GB", level=-0.5))
    check_schema(last_body(client), "StartTalkResponse")
    assert msg.message == "Talk started"
    msg = client.voice.stop_tts(created.uuid)
    check_schema(last_body(client), "StopTalkResponse")
    assert msg.message == "Talk stopped"

    msg = client.voice.play_dtmf_into_call(created.uuid, "12p#")
    check_schema(last_body(client), "DTMFResponse")
    assert msg.message == "DTMF sent"
    assert wait_until(lambda: sandbox.phone("447700900001").received_dtmf == "12#")

    for method in (client.voice.mute, client.voice.unmute, client.voice.earmuff, client.voice.unearmuff):
        assert method(created.uuid) is None
        assert client.voice.http_client.last_response.status_code == 204
    leg = sandbox.call(created.uuid)
    assert not leg.muted and not leg.earmuffed

    client.voice.transfer_call_ncco(created.uuid, [Talk(text="You have been transferred"), *keep_alive_ncco(receiver)])
    assert client.voice.http_client.last_response.status_code == 204
    transfer = receiver.wait_for("transfer", created.uuid)
    assert transfer.payload["conversation_uuid_from"] == created.conversation_uuid
    assert transfer.payload["conversation_uuid_to"] != created.conversation_uuid

    receiver.answer_ncco = [a.model_dump(by_alias=True, exclude_none=True) for a in keep_alive_ncco(receiver)]
    client.voice.transfer_call_answer_url(created.uuid, receiver.url + "/answer-transfer")
    receiver.wait_for(path="/answer-transfer")
    receiver.wait_for("transfer", created.uuid, count=2)

    client.voice.hangup(created.uuid)
    assert client.voice.http_client.last_response.status_code == 204
    done = receiver.wait_for("completed", created.uuid)
    for key in ("start_time", "end_time", "duration", "rate", "price", "network"):
        assert isinstance(done.payload[key], str)
    final = client.voice.get_call(created.uuid)
    check_schema(last_body(client), "GetCallResponse")
    assert final.status == "completed"
    assert final.end_time.endswith("Z") and final.start_time[10] == "T" and len(final.start_time) == 24
    assert float(final.price) == pytest.approx(float(final.rate) * int(final.duration) / 60, abs=1e-7)


def test_list_calls_pages_with_links_and_filters(sandbox, client, receiver):
    sandbox.phone("447700900002").set(outcome="busy")
    uuids = [place(client, sandbox, receiver, "447700900002").uuid for _ in range(3)]
    for u in uuids:
        receiver.wait_for("busy", u)
    calls, nxt = client.voice.list_calls(ListCallsFilter(page_size=1, record_index=1))
    body = last_body(client)
    check_schema(body, "GetCallsResponse")
    assert body["count"] == 3 and body["page_size"] == 1 and body["record_index"] == 1
    assert [c.uuid for c in calls] == [uuids[1]]
    assert nxt == 2
    links = body["_links"]
    assert links["next"]["href"] == "/v1/calls?page_size=1&record_index=2"
    assert links["prev"]["href"] == "/v1/calls?page_size=1&record_index=0"
    assert links["first"]["href"] == "/v1/calls?page_size=1&record_index=0"
    assert links["last"]["href"] == "/v1/calls?page_size=1&record_index=2"

    calls, nxt = client.voice.list_calls(ListCallsFilter(page_size=2, order="desc"))
    assert [c.uuid for c in calls] == [uuids[2], uuids[1]] and nxt == 1
    calls, nxt = client.voice.list_calls(ListCallsFilter(status="answered"))
    assert calls == [] and nxt is None
    first_conversation = sandbox.call(uuids[0]).conversation_uuid
    calls, _ = client.voice.list_calls(ListCallsFilter(status="busy", conversation_uuid=first_conversation))
    assert [c.uuid for c in calls] == [uuids[0]]


def test_a_bad_jwt_is_401_problem_json(sandbox, client):
    url = sandbox.base_url + "/v1/calls"
    bundle = str(sandbox.ca_bundle)
    r = requests.get(url, verify=bundle, timeout=5)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert body["title"] == "Unauthorized" and body["type"].endswith("#unauthorized") and body["instance"]

    # signed with another key: refused
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = int(time.time())
    forged = jwt.encode({"application_id": sandbox.application_id, "iat": now, "exp": now + 900,
                         "jti": str(uuid.uuid4())}, other, algorithm="RS256")
    r = requests.get(url, headers={"Authorization": f"Bearer {forged}"}, verify=bundle, timeout=5)
    assert r.status_code == 401
    # right key, expired
    key = sandbox.private_key_path.read_bytes()
    stale = jwt.encode({"application_id": sandbox.application_id, "iat": now - 4000, "exp": now - 3000,
                        "jti": str(uuid.uuid4())}, key, algorithm="RS256")
    r = requests.get(url, headers={"Authorization": f"Bearer {stale}"}, verify=bundle, timeout=5)
    assert r.status_code == 401
    # right key, valid: accepted
    good = jwt.encode({"application_id": sandbox.application_id, "iat": now, "exp": now + 900,
                       "jti": str(uuid.uuid4())}, key, algorithm="RS256")
    assert requests.get(url, headers={"Authorization": f"Bearer {good}"}, verify=bundle, timeout=5).status_code == 200

    # the SDK with another application id gets AuthenticationError
    from vonage import Auth, HttpClientOptions, Vonage

    wrong = Vonage(Auth(application_id=str(uuid.uuid4()), private_key=str(sandbox.private_key_path)),
                   HttpClientOptions(api_host=sandbox.api_host, timeout=10))
    with pytest.raises(AuthenticationError):
        wrong.voice.list_calls()


def test_controlling_a_call_before_answer_is_400_and_after_hangup_404(sandbox, client, receiver):
    phone = sandbox.phone("447700900003").set(outcome="manual")
    created = place(client, sandbox, receiver, "447700900003")
    receiver.wait_for("ringing", created.uuid)
    with pytest.raises(HttpRequestError) as err:
        client.voice.play_audio_into_call(created.uuid,
                                          AudioStreamOptions(stream_url=[receiver.audio_url("music.wav")]))
    assert err.value.response.status_code == 400
    assert err.value.response.headers["Content-Type"] == "application/problem+json"
    assert "answered" in err.value.response.json()["detail"]
    phone.answer()
    receiver.wait_for("answered", created.uuid)
    client.voice.play_audio_into_call(created.uuid, AudioStreamOptions(stream_url=[receiver.audio_url("music.wav")]))
    client.voice.hangup(created.uuid)
    receiver.wait_for("completed", created.uuid)
    for call in (
        lambda: client.voice.play_audio_into_call(created.uuid, AudioStreamOptions(stream_url=["http://x/y.mp3"])),
        lambda: client.voice.play_tts_into_call(created.uuid, TtsStreamOptions(text="hi")),
        lambda: client.voice.play_dtmf_into_call(created.uuid, "1"),
        lambda: client.voice.hangup(created.uuid),
    ):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(NotFoundError):
        client.voice.get_call(str(uuid.uuid4()))
    assert client.voice.get_call(created.uuid).status == "completed"  # the record stays readable


def test_stream_url_as_a_string_gets_an_rfc7807_400(sandbox, client, receiver):
    """One RFC 7807 style for every error: type (a URI), title, detail, instance [DOC-ERR], plus
    invalid_parameters [OAS-APP] (vonage-platform.md section 7)."""
    sandbox.phone("447700900004").set(answer_after=0)
    created = place(client, sandbox, receiver, "447700900004")
    receiver.wait_for("answered", created.uuid)
    http = client.voice.http_client
    with pytest.raises(HttpRequestError) as err:
        http.put(http.api_host, f"/v1/calls/{created.uuid}/stream", {"stream_url": "https://example.com/a.mp3"})
    body = err.value.response.json()
    assert err.value.response.status_code == 400
    assert body["type"].startswith("https://") and body["title"] == "Bad Request"
    assert body["instance"] and body["detail"]
    assert err.value.response.headers["Content-Type"] == "application/problem+json"
    assert body["invalid_parameters"] == [{"reason": "Invalid type parameter provided", "name": "stream_url"}]
    # level as a string (the spec's type) and as a number (what the SDK sends) are both fine
    for level in ("0.4", -1, 1):
        http.put(http.api_host, f"/v1/calls/{created.uuid}/stream",
                 {"stream_url": [receiver.audio_url("music.wav")], "level": level})
    with pytest.raises(HttpRequestError):
        http.put(http.api_host, f"/v1/calls/{created.uuid}/stream",
                 {"stream_url": [receiver.audio_url("music.wav")], "level": 2})
    client.voice.hangup(created.uuid)


def test_create_call_validation(sandbox, client, receiver):
    http = client.voice.http_client
    base = {"to": [{"type": "phone", "number": "447700900005"}], "from": {"type": "phone", "number": sandbox.number},
            "ncco": [{"action": "talk", "text": "hi"}]}
    bad = [
        ({**base, "to": {"type": "phone", "number": "447700900005"}}, "to"),
        ({k: v for k, v in base.items() if k != "from"}, "from"),
        ({**base, "answer_url": ["http://127.0.0.1/a"]}, "ncco"),
        ({**base, "length_timer": 0}, "length_timer"),
        ({**base, "ringing_timer": 121}, "ringing_timer"),
    ]
    for body, name in bad:
        with pytest.raises(HttpRequestError) as err:
            http.post(http.api_host, "/v1/calls", body)
        assert err.value.response.status_code == 400
        assert err.value.response.json()["invalid_parameters"][0]["name"] == name
    sandbox.configure(event_url=None)
    with pytest.raises(HttpRequestError) as err:
        http.post(http.api_host, "/v1/calls", base)
    assert err.value.response.json()["invalid_parameters"][0]["name"] == "event_url"
    created = http.post(http.api_host, "/v1/calls", {**base, "random_from_number": True, "from": None,
                                                      "event_url": [receiver.url + "/event"]})
    assert sandbox.call(created["uuid"]).from_ == {"type": "phone", "number": sandbox.number}


def test_same_installation_same_identity_and_port_is_freed(sandbox_home, receiver):
    from labkit.sandbox import Sandbox

    a = Sandbox(home=sandbox_home)
    b = Sandbox(home=sandbox_home)
    assert a.application_id == b.application_id and a.private_key_path == b.private_key_path
    assert "BEGIN PRIVATE KEY" in a.private_key_path.read_text()
    a.start()
    assert a.start() is a  # idempotent
    port = a.port
    client = sdk_client(a)
    assert client.voice.list_calls()[0] == []
    a.stop()
    a.stop()  # idempotent
    c = Sandbox(port=port, home=sandbox_home).start()  # the port is free again
    assert sdk_client(c).voice.list_calls()[0] == []
    from labkit.errors import PortInUseError

    with pytest.raises(PortInUseError):
        Sandbox(port=port, home=sandbox_home).start()
    c.stop()


def test_recording_files_need_the_jwt(sandbox, client, receiver):
    sandbox.phone("447700900006").set(answer_after=0)
    ncco = [{"action": "record", "format": "wav", "eventUrl": [receiver.url + "/recording"]},
            {"action": "stream", "streamUrl": [receiver.audio_url("music.wav")]}]
    http = client.voice.http_client
    created = http.post(http.api_host, "/v1/calls", {
        "to": [{"type": "phone", "number": "447700900006"}], "from": {"type": "phone", "number": sandbox.number},
        "ncco": ncco})
    hook = receiver.wait_for("record", path="/recording", timeout=20)
    url = hook.payload["recording_url"]
    assert url.startswith(sandbox.base_url + "/v1/files/")
    assert hook.payload["size"] > 44 and hook.payload["recording_uuid"]
    assert requests.get(url, verify=str(sandbox.ca_bundle), timeout=5).status_code == 401
    token = client.voice.http_client.auth.create_jwt_auth_string()
    got = requests.get(url, headers={"Authorization": token}, verify=str(sandbox.ca_bundle), timeout=5)
    assert got.status_code == 200 and got.headers["Content-Type"].startswith("audio/wav")
    assert len(got.content) == hook.payload["size"]
    assert created["uuid"]


def test_rest_talk_longer_than_vonages_limit_is_refused_before_any_audio(sandbox, client, receiver):
    """1500 characters, SSML tags not counted (NCCO talk reference; the REST limit is UNCONFIRMED)."""
    sandbox.phone("447700900006").set(answer_after=0)
    created = place(client, sandbox, receiver, "447700900006")
    receiver.wait_for("answered", created.uuid)
    with pytest.raises(HttpRequestError) as err:
        client.voice.play_tts_into_call(created.uuid, TtsStreamOptions(text="a" * 200_000))
    assert err.value.response.status_code == 400
    assert err.value.response.json()["invalid_parameters"][0]["name"] == "text"
    ssml = "<speak>" + '<break time="10ms"/>' * 200 + "a" * 1400 + "</speak>"  # long, but 1400 spoken
    client.voice.play_tts_into_call(created.uuid, TtsStreamOptions(text=ssml))
    client.voice.hangup(created.uuid)


def test_a_client_that_connects_and_sends_nothing_holds_no_one_else_off(sandbox):
    """A port probe or a client speaking the wrong scheme used to hold the sandbox's one accepting thread in
    its TLS handshake: every other client waited (5 s and a timeout, measured). Handshakes now run in each
    connection's own thread."""
    import socket

    silent = socket.create_connection(("127.0.0.1", sandbox.port))
    garbage = socket.create_connection(("127.0.0.1", sandbox.port))
    garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to the HTTPS port
    try:
        r = requests.get(f"{sandbox.base_url}/_labkit/phones", verify=str(sandbox.ca_path), timeout=3)
        assert r.status_code == 200
    finally:
        silent.close()
        garbage.close()
