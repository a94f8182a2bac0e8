"""The pytest plugin as a user meets it: a sandbox in its own process, their app on a real port, the real
SDK over HTTPS, and assertions about what the caller heard, including what they say when they fail."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.vonage_sandbox(speed=10)

CALLER = "447700900001"
AUDIO = Path(__file__).resolve().parents[2] / "audio"


def test_the_sandbox_gives_an_app_everything_it_needs(vonage_sandbox, vonage_client):
    env = vonage_sandbox.env()
    assert Path(env["VONAGE_PRIVATE_KEY"]).is_file() and Path(env["REQUESTS_CA_BUNDLE"]).is_file()
    assert Path(env["NODE_EXTRA_CA_CERTS"]).is_file()
    assert env["VONAGE_API_HOST"].startswith("127.0.0.1:") and env["VONAGE_NUMBER"] == vonage_sandbox.number
    assert not vonage_sandbox.in_process  # its own `labkit sandbox` process by default
    app = vonage_client.application.get_application(vonage_sandbox.application_id)  # API key and secret
    assert app.id == vonage_sandbox.application_id
    numbers, _count, _next = vonage_client.numbers.list_owned_numbers()
    assert vonage_sandbox.number in [n.msisdn for n in numbers]


def test_the_caller_hears_the_greeting_and_the_music(user_app, phone, vonage_sandbox):
    from vonage_jwt.verify_jwt import verify_signature

    user_app.ncco = [{"action": "talk", "text": "Welcome to the plugin test"},
                     {"action": "stream", "streamUrl": ["{url}/audio/music.wav"]}]
    call = phone(CALLER, answer_after=0).dial()
    call.wait_for("answered")
    call.wait_until_hung_up()
    call.assert_heard_text("welcome to the PLUGIN test")
    offset = call.assert_heard_audio(AUDIO / "music.wav")
    talk = call.played[0]
    assert offset >= talk["at"] + talk["seconds"] - 0.1  # the music came after the greeting
    call.assert_ended("completed", by="ncco")
    assert call.statuses == ["started", "ringing", "answered", "completed"]
    assert call.answer_ncco[0]["text"] == "Welcome to the plugin test"
    # signed_callbacks is on (Vonage's default): every webhook carries a JWT signed with the secret
    tokens = [h["headers"]["Authorization"].removeprefix("Bearer ") for h in user_app.hooks]
    assert tokens and all(verify_signature(t, vonage_sandbox.signature_secret) for t in tokens)


def test_failed_assertions_say_what_the_caller_heard_instead(user_app, phone):
    user_app.ncco = [{"action": "talk", "text": "Your balance is five pounds"}]
    call = phone(CALLER, answer_after=0).dial()
    call.wait_until_hung_up()
    with pytest.raises(AssertionError) as info:
        call.assert_heard_text("Your balance is ten pounds")
    message = str(info.value)
    assert "never told 'Your balance is ten pounds'" in message
    assert "'Your balance is five pounds'" in message  # what the sandbox did say, with its time
    saved = Path(message.split("is saved at ")[1].split()[0])
    assert saved.is_file() and saved.suffix == ".wav"
    with pytest.raises(AssertionError, match=r"did not hear music\.wav: best correlation 0\.\d\d"):
        call.assert_heard_audio(AUDIO / "music.wav")
    with pytest.raises(AssertionError, match="expected the call to end 'completed' ended by phone; it ended "
                                             "'completed', ended by ncco"):
        call.assert_ended("completed", by="phone")
    with pytest.raises(AssertionError, match="caller heard sound between 0 and 1"):
        call.assert_silent(0, 1)


def test_a_call_the_app_places_tones_silence_and_an_app_hangup(user_app, phone, vonage_client, vonage_sandbox):
    from vonage_voice import CreateCallRequest

    callee = phone("447700900002", answer_after=0.5)
    response = vonage_client.voice.create_call(CreateCallRequest(
        to=[{"type": "phone", "number": callee.number}], from_={"type": "phone", "number": vonage_sandbox.number},
        ncco=[{"action": "conversation", "name": "quiet-room"}]))
    call = callee.wait_for_call()
    assert call.uuid == response.uuid
    call.wait_for("answered")
    vonage_client.voice.play_dtmf_into_call(call.uuid, "19#")
    call.wait_for_played("dtmf")
    vonage_client.voice.hangup(call.uuid)
    call.wait_until_hung_up()
    call.assert_heard_dtmf("19#")
    tones_at = call.played[0]["at"]
    call.assert_silent(0, tones_at)  # nothing before the tones
    with pytest.raises(AssertionError, match="did not hear the DTMF tones '5': they heard '19#'"):
        call.assert_heard_dtmf("5")
    call.assert_ended("completed", by="app")
    assert callee.received_dtmf == "19#"


def test_a_caller_presses_keys_for_the_apps_input(user_app, phone):
    user_app.ncco = [{"action": "talk", "text": "Enter your PIN"},
                     {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 4}, "eventUrl": ["{url}/pin"]}]
    caller = phone(CALLER, answer_after=0)
    call = caller.dial()
    call.wait_for_action("input")
    caller.press("2468")
    call.wait_until_hung_up()
    call.assert_webhook("instruction", dtmf={"digits": "2468", "timed_out": False})
    assert [h["payload"]["dtmf"]["digits"] for h in user_app.hooks if h["path"] == "pin"] == ["2468"]


@pytest.mark.vonage_sandbox(in_process=True, chaos="jitter=0.05,duplicate=1,seed=3")
def test_the_marker_runs_it_in_process_with_chaos_delivery(user_app, phone, vonage_sandbox):
    from labkit.sandbox import Sandbox

    assert vonage_sandbox.in_process and isinstance(vonage_sandbox.sandbox, Sandbox)
    call = phone(CALLER, answer_after=0).dial()
    call.wait_until_hung_up()
    call.assert_heard_text("Hello")
    log = vonage_sandbox.webhooks
    assert log["chaos"]["duplicate"] == 1 and log["duplicates"] >= 1
    events = [h["payload"].get("status") for h in user_app.hooks if h["path"] == "event"]
    assert events.count("completed") == 2  # every event webhook came twice, as a retry would


def test_each_test_starts_from_a_clean_sandbox(vonage_sandbox, phone):
    assert vonage_sandbox.remote.calls == []
    assert phone(CALLER).calls == []


@pytest.mark.parametrize("outcome, status", [("busy", "busy"), ("reject", "rejected")])
def test_a_phone_that_does_not_answer(user_app, phone, vonage_client, vonage_sandbox, outcome, status):
    from vonage_voice import CreateCallRequest

    callee = phone("447700900003", outcome=outcome, answer_after=0.5)
    created = vonage_client.voice.create_call(CreateCallRequest(
        to=[{"type": "phone", "number": callee.number}], from_={"type": "phone", "number": vonage_sandbox.number},
        ncco=[{"action": "talk", "text": "never heard"}]))
    call = vonage_sandbox.call(created.uuid).wait_until_hung_up()
    call.assert_ended(status)
    assert call.played == [] and call.status == status
    with pytest.raises(AssertionError, match="the caller was never told 'never heard'"):
        call.assert_heard_text("never heard")
