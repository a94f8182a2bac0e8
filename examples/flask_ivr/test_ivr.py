"""The IVR's behaviour as a caller meets it: what they hear after each key, and how the call ends."""

from pathlib import Path

import pytest
from ivr import BOT_GREETING, BOT_INTRO, GREETING, MUSIC_INTRO, SORRY

pytestmark = pytest.mark.vonage_sandbox(speed=10)  # ten times faster than real time: calls take a second

MUSIC = Path(__file__).parent / "static" / "music.mp3"
CALLER = "447700900001"


def test_greeting_then_hang_up(ivr, phone):
    caller = phone(CALLER, answer_after=0)
    call = caller.dial()
    call.wait_for_action("input")
    caller.hangup()
    call.wait_until_hung_up()
    call.assert_heard_text(GREETING)
    call.assert_ended("completed", by="phone")
    assert call.answer_ncco[1]["action"] == "input"


def test_press_1_plays_music_over_rest(ivr, phone):
    caller = phone(CALLER, answer_after=0)
    call = caller.dial()
    call.wait_for_action("input")
    caller.press("1")
    call.wait_for_played("stream")  # the music played to its end
    caller.hangup()
    call.wait_until_hung_up()
    call.assert_heard_text(MUSIC_INTRO)
    call.assert_heard_audio(MUSIC)  # the REST stream reached the caller
    assert [p["by"] for p in call.played if p["kind"] == "stream"] == ["rest"]
    call.assert_webhook("instruction", dtmf={"digits": "1", "timed_out": False})
    call.assert_ended("completed", by="phone")


def test_press_2_transfers_to_the_bot(ivr, phone):
    caller = phone(CALLER, answer_after=0)
    call = caller.dial()
    call.wait_for_action("input")
    caller.press("2")
    call.wait_until_hung_up()
    call.assert_heard_text(BOT_INTRO)
    call.assert_heard_text(BOT_GREETING)  # the NCCO the call was transferred to ran
    assert [h["url"].rsplit("/", 1)[1] for h in call.webhooks if h["kind"] == "answer"] == ["answer", "bot"]
    call.assert_ended("completed", by="ncco")


def test_no_key_says_sorry_and_ends(ivr, phone):
    call = phone(CALLER, answer_after=0).dial()
    call.wait_until_hung_up()
    call.assert_heard_text(SORRY)
    call.assert_webhook("instruction", dtmf={"digits": "", "timed_out": True})
    call.assert_ended("completed", by="ncco")


@pytest.mark.vonage_sandbox(signed=False)
def test_unsigned_webhooks_are_refused(ivr, phone):
    """With signed_callbacks off, the app (which checks signatures) refuses the answer webhook."""
    call = phone(CALLER, answer_after=0).dial()
    call.wait_until_hung_up()
    answer = next(h for h in call.webhooks if h["kind"] == "answer")
    assert answer["answer"]["status"] == 401
    assert call.played == []
