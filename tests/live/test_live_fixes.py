"""Small live-path fixes: where the recording JWT may go, what a 400 means, the host settings."""

from __future__ import annotations

import json

import pytest
import requests
from vonage_http_client.errors import HttpRequestError

from labkit.config import Settings
from labkit.errors import CallError, CallNotAnsweredError, InvalidInput
from labkit.lab.calls import api_errors, says_not_answered


def _response(status: int, body) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode()
    r.headers["Content-Type"] = "application/json"
    r.url = "https://api.nexmo.com/v1/calls/x/stream"
    return r


@pytest.mark.parametrize("url", [
    "https://evil.test/v1/files/abc",
    "https://api.nexmo.com.evil.test/v1/files/abc",
    "https://evil-vonage.com/v1/files/abc",
    "https://api.nexmo.com@evil.test/v1/files/abc",
    "https://127.0.0.1:1/v1/files/abc",
])
def test_the_recording_jwt_goes_nowhere_but_vonage_or_the_sandbox(lab, monkeypatch, url):
    sent = []
    monkeypatch.setattr(requests, "get", lambda *a, **k: sent.append((a, k)))
    with pytest.raises(InvalidInput, match="vonage.com"):
        lab.download_recording({"recording_url": url})
    assert sent == []


@pytest.mark.parametrize("url", ["https://api.nexmo.com/v1/files/abc", "https://api-us.nexmo.com/v1/files/abc",
                                 "https://api-eu-3.vonage.com/v1/files/abc"])
def test_vonage_hosts_get_the_jwt(lab, monkeypatch, tmp_path, url):
    sent = []

    def fake_get(target, headers=None, timeout=None):
        sent.append((target, headers))
        return _response(404, {"title": "Not Found"})

    monkeypatch.setattr(requests, "get", fake_get)
    with pytest.raises(CallError, match="no such recording"):
        lab.download_recording({"recording_url": url}, tmp_path / "r.mp3")
    auth = sent[0][1]["Authorization"]  # the SDK builds it as bytes
    assert sent[0][0] == url and (auth.decode() if isinstance(auth, bytes) else auth).startswith("Bearer ")


def test_the_sandbox_itself_is_trusted(lab, monkeypatch, tmp_path):
    url = f"{lab.sandbox.base_url}/v1/files/nope"
    with pytest.raises(CallError, match="no such recording"):  # reached the sandbox, which had no such file
        lab.download_recording({"recording_url": url}, tmp_path / "r.mp3")


def test_a_400_means_not_answered_only_when_it_says_so():
    assert says_not_answered({"type": "BAD_REQUEST", "error_title": "Bad Request"})  # [SUP-BADREQ]
    assert says_not_answered({"title": "Bad Request", "detail": "Call x is ringing, not answered yet: wait"})
    assert says_not_answered("call is not active")
    assert not says_not_answered({"type": 400, "title": "Bad Request",
                                  "invalid_parameters": [{"name": "level", "reason": "Value out of range"}]})
    assert not says_not_answered({"title": "Bad Request", "detail": "stream_url must be an array"})
    bad = _response(400, {"type": 400, "title": "Bad Request",
                          "invalid_parameters": [{"name": "stream_url", "reason": "Invalid type"}]})
    with pytest.raises(CallError) as info, api_errors("Starting the stream", "uuid-1"):
        raise HttpRequestError(bad)
    assert not isinstance(info.value, CallNotAnsweredError) and "stream_url" in str(info.value)
    early = _response(400, {"type": "BAD_REQUEST", "error_title": "Bad Request"})
    with pytest.raises(CallNotAnsweredError), api_errors("Hanging up", "uuid-1"):
        raise HttpRequestError(early)


def test_a_ringing_sandbox_call_is_reported_not_answered(fresh):
    phone = fresh.phone("447700900131")
    phone.set(answer_after=30)
    call = fresh.call(phone.number)
    call.wait_for("ringing", timeout=10)
    with pytest.raises(CallNotAnsweredError, match="not answered yet"):
        call.say("too early")
    call.hangup()


def test_host_settings_are_read_as_the_sdk_wants_them():
    s = Settings.load(env_file="/nonexistent/.env", environ={
        "VONAGE_API_HOST": "https://127.0.0.1:8443/", "VONAGE_REST_HOST": "127.0.0.1:8443",
        "VONAGE_API_KEY": "k", "VONAGE_API_SECRET": "very-secret", "NGROK_DOMAIN": "lab.ngrok.app"})
    assert (s.api_host, s.rest_host, s.ngrok_domain) == ("127.0.0.1:8443", "127.0.0.1:8443", "lab.ngrok.app")
    assert "very-secret" not in repr(s)
    half = Settings.load(env_file="/nonexistent/.env", environ={"VONAGE_API_KEY": "k"})
    assert any("VONAGE_API_SECRET" in p for p in half.problems())
