"""Everything a Call checks before sending: numbers, stream URL, level, loop, DTMF."""

import pytest

from labkit import validate
from labkit.calls import Call
from labkit.errors import InvalidInput


class NoNetworkLab:
    """A lab whose SDK must never be reached: validation has to fail first."""

    def audio_url(self, name):
        return f"https://lab.test/audio/{name}"

    @property
    def voice(self):
        raise AssertionError("the request was sent although the input was invalid")


@pytest.mark.parametrize("raw,expected", [("447700900001", "447700900001"), ("+44 7700 900001", "447700900001"),
                                          ("0044-7700-900001", "447700900001"), (14155550100, "14155550100"),
                                          ("+1 (415) 555-0100", "14155550100")])
def test_phone_numbers_normalised(raw, expected):
    assert validate.phone_number(raw) == expected


@pytest.mark.parametrize("bad", ["07700900001", "12345", "+44 7700 900001 ext 2", "", "447700900001234567", None,
                                 "abc"])
def test_bad_phone_numbers_explained(bad):
    with pytest.raises(InvalidInput, match="E.164|must be a string"):
        validate.phone_number(bad)


@pytest.fixture
def call():
    return Call(NoNetworkLab(), "uuid-1", to="447700900001")


@pytest.mark.parametrize("level", [1.5, -2, "loud", None])
def test_stream_level_range(call, level):
    with pytest.raises(InvalidInput, match="level"):
        call.stream("music.mp3", level=level)


@pytest.mark.parametrize("loop", [-1, 1.5, True, "0"])
def test_stream_loop(call, loop):
    with pytest.raises(InvalidInput, match="loop"):
        call.stream("music.mp3", loop=loop)


def test_stream_takes_one_url(call):
    with pytest.raises(InvalidInput, match="one file name or URL"):
        call.stream(["a.mp3", "b.mp3"])


@pytest.mark.parametrize("digits", ["12a", "", "1 2", "+"])
def test_dtmf_characters(call, digits):
    with pytest.raises(InvalidInput, match="DTMF"):
        call.dtmf(digits)


def test_say_needs_text(call):
    with pytest.raises(InvalidInput, match="text"):
        call.say("   ")


def test_transfer_url_checked(call):
    with pytest.raises(InvalidInput, match="URL"):
        call.transfer("not a url")


def test_valid_values_pass():
    assert validate.level("0.55") == 0.6 or validate.level("0.55") == 0.5
    assert validate.loop(0) == 0
    assert validate.dtmf("12p#*") == "12p#*"


@pytest.mark.parametrize("value", [0, 86401, 2.5, "60", True])
def test_timers_in_range(value):
    with pytest.raises(InvalidInput, match="length_timer"):
        validate.seconds(value, "length_timer", 1, 86400)
