"""The caller's voice goes out to the bot's WebSocket and comes back: what the caller hears is their own
speech, a moment later, after the greeting."""

from pathlib import Path

import pytest
from echo_bot import GREETING
from echo_bot import app as echo_bot

pytestmark = pytest.mark.vonage_sandbox(speed=5)

VOICE = Path(__file__).parent / "hello.wav"  # 2 s of a synthetic voice
CALLER = "447700900001"


def test_the_caller_hears_their_own_voice_back(bot, phone):
    caller = phone(CALLER, answer_after=0)
    call = caller.dial()
    socket = call.wait_for_action("connect").children[0].wait_for("answered")
    seconds = caller.say(VOICE)
    said_at = caller.said_at  # when the voice started: `call.time` read before say() also counts the request
    call.wait_seconds(seconds + 1.0)  # call time: the echo is back well within a second
    caller.hangup()
    call.wait_until_hung_up()
    call.assert_heard_text(GREETING)
    echoed_at = call.assert_heard_audio(VOICE, after=said_at)
    # Echoed frame by frame, not buffered: the echo began before the caller finished speaking. (60 ms after
    # the voice on an idle machine; the round trip is real time, so at speed 5 a stall of the bot or the sandbox
    # counts five times: 0.06-0.73 s over 16 calls with two CPU burners beside four workers.)
    assert echoed_at - said_at < seconds
    socket.assert_ended("completed")
    assert echo_bot.state.socket_messages[0]["event"] == "websocket:connected"
    assert echo_bot.state.socket_messages[0]["content-type"] == "audio/l16;rate=16000"
    assert echo_bot.state.frames_echoed >= seconds * 50  # every 20 ms frame of the voice went back


def test_silence_while_the_caller_says_nothing(bot, phone):
    caller = phone(CALLER, answer_after=0)
    call = caller.dial()
    call.wait_for_action("connect").children[0].wait_for("answered")
    start = call.time
    call.wait_seconds(2.0)
    caller.hangup()
    call.wait_until_hung_up()
    call.assert_silent(start + 0.1, start + 1.9)  # nothing said, nothing echoed
    call.assert_ended("completed", by="phone")
