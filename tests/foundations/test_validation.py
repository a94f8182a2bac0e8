"""Everything a Call checks before sending: numbers, stream URL, level, loop, DTMF."""

import pytest

from labkit import validate
from labkit.errors import InvalidInput
from labkit.lab.calls import Call


class NoNetworkLab:
    """A lab whose SDK must never be reached: validation has to fail first."""

    def audio_url(self, name):
        return f"https://lab.test/audio/{name}"

    @property
    def voice(self):
        raise AssertionError("the request was sent although the input was invalid")


@pytest.mark.parametrize("raw,expected", [("447700900001", "447700900001"), ("+447700900001", "447700900001"),
                                          (14155550100, "14155550100")])
def test_phone_numbers_normalised(raw, expected):
    assert validate.phone_number(raw) == expected


@pytest.mark.parametrize("raw,meant,words", [
    ("0044770090001", "44770090001", "00 is a dialling prefix"),  # not silently 44770090001
    ("0044-7700-900001", "447700900001", "00 is a dialling prefix"),
    ("447700900001\n", "447700900001", "line break"),
    ("\t447700900001", "447700900001", "whitespace"),
    ("+44 7700 900001", "447700900001", "whitespace"),
    ("+1 (415) 555-0100", "14155550100", "whitespace"),
    ("1-415-555-0100", "14155550100", "Separators"),
])
def test_00_whitespace_and_separators_are_refused_with_the_number_meant(raw, meant, words):
    with pytest.raises(InvalidInput, match="E.164") as info:
        validate.phone_number(raw)
    assert words in str(info.value) and f"Did you mean {meant!r}?" in str(info.value)


def test_a_number_typed_in_a_box_is_read_as_people_type_it():
    """The one rule for typed numbers (panel, page): separators, + and 00 understood; a national number met
    with the number meant, in the country of the lab's own number; one short message (issue 22)."""
    assert validate.typed_phone_number(" +44 7700 900001 ") == "447700900001"
    assert validate.typed_phone_number("0044 7700 900001") == "447700900001"  # the prefix people dial
    assert validate.typed_phone_number("(415) 555-0100".replace("(", "+1 (")) == "14155550100"
    with pytest.raises(InvalidInput) as info:
        validate.typed_phone_number("07700900001", home="447700900000")
    assert str(info.value) == ("07700900001 looks like a national number: did you mean 447700900001? (the country "
                               "code, then the number without its leading 0)")
    with pytest.raises(InvalidInput) as info:
        validate.typed_phone_number("07700 900001")  # no home country known: no guess, one plain line
    assert "did you mean" not in str(info.value) and "E.164" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InvalidInput, match="^Type the number to call: the country code then the number"):
        validate.typed_phone_number("   ")
    with pytest.raises(InvalidInput, match="^12 34 is not a phone number: type the country code"):
        validate.typed_phone_number("12 34")


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


@pytest.mark.parametrize("kwargs,what", [
    ({"language": "xx-XX"}, "language"), ({"style": "a"}, "style"), ({"style": -1}, "style"),
    ({"text": "a" * 200_000}, "1500"), ({"text": "a" * 1501}, "1500"), ({"text": ""}, "text"),
])
def test_say_refuses_bad_input_as_labkit_errors_before_sending(call, kwargs, what):
    kwargs = {"text": "hello", **kwargs}
    with pytest.raises(InvalidInput, match=what):
        call.say(**kwargs)


@pytest.mark.parametrize("digits", ["1\n", "１２", "12\n#", True])
def test_dtmf_anchors_and_ascii_digits(call, digits):
    with pytest.raises(InvalidInput, match="DTMF"):
        call.dtmf(digits)


@pytest.mark.parametrize("number", ["４４７７００９０００００１", "٤٤٧٧٠٠٩٠٠٠٠١", "4477009000０1"])
def test_phone_numbers_are_ascii_digits_only(number):
    with pytest.raises(InvalidInput, match="E.164"):
        validate.phone_number(number)


@pytest.mark.parametrize("value", ["abc", -5, 70000, 1.5, True])
def test_ports(value):
    with pytest.raises(InvalidInput, match="0 to 65535"):
        validate.port(value)


@pytest.mark.parametrize("url", ["ftp://x/y", "x/y", "", None, 5])
def test_urls_must_be_http(url):
    with pytest.raises(InvalidInput, match="http"):
        validate.public_url(url)


def test_ssml_tags_do_not_count_towards_the_talk_limit():
    ssml = "<speak>" + '<break time="10ms"/>' * 200 + "a" * 1400 + "</speak>"
    assert validate.talk_text(ssml) == ssml


class TestNccoDicts:
    """Dict NCCOs are checked with the SDK's pydantic models before the call is placed."""

    @pytest.mark.parametrize("ncco,words", [
        (42, "list of actions"), ({1, 2}, "list of actions"), ("talk", "list of actions"),
        ([{"action": "talk", "text": "hi", "extra": {1, 2}}], "JSON"),
        ([{"action": "talk", "text": "hi", "loop": -1}], "loop"),
        ([{"action": "talk"}], "text"),
        ([{"action": "talk", "text": "a" * 1501}], "1500"),
        ([{"action": "stream", "streamUrl": "https://x/a.mp3"}], "streamUrl"),
        ([{"action": "connect", "from": "447700900000",
           "endpoint": [{"type": "websocket", "uri": "ws://x/socket", "content-type": "audio/l16;rate=9000"}]}],
         "contentType"),
        ([{"action": "notify", "payload": {}}], "eventUrl"),
        ([{"action": "bogus"}], "expected one of"),
    ])
    def test_bad_nccos_are_labkit_errors(self, ncco, words):
        from labkit.lab.ncco import to_json

        with pytest.raises(InvalidInput, match=words):
            to_json(ncco)

    def test_string_typed_values_that_vonage_accepts_pass_unchanged(self):
        """The PHP SDK sends "loop": "1", "bargeIn": "false", "level": "0.4" (vonage-platform.md)."""
        from labkit.lab.ncco import to_json

        ncco = [{"action": "talk", "text": "hi", "loop": "1", "bargeIn": "false", "level": "0.4", "premium": "false"},
                {"action": "record", "endOnSilence": "3", "beepStart": "true", "timeOut": "7200"},
                {"action": "conversation", "name": "room", "startOnEnter": "false", "record": "true"},
                {"action": "input", "type": ["dtmf"], "dtmf": {"submitOnHash": "true"}},
                {"action": "connect", "endpoint": [{"type": "app", "user": "alice"}]}]  # no `from`: allowed
        assert to_json(ncco) == ncco
