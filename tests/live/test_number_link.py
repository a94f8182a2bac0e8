"""labkit.live.number_link on the wire: what `/number/update` is sent (the number's other fields re-sent)."""

from __future__ import annotations

from typing import Any

from labkit.live.number_link import link_number, restore_number


class FakeHttp:
    """The SDK HTTP client's two calls the module makes, over one number held in memory."""

    rest_host = "rest.example"

    def __init__(self, number: dict[str, Any]) -> None:
        self.number = number
        self.sent: list[dict[str, str]] = []

    def get(self, host: str, path: str, params: dict, auth: str) -> dict:
        assert (host, path, auth) == (self.rest_host, "/account/numbers", "basic")
        return {"count": 1, "numbers": [dict(self.number)]}

    def post(self, host: str, path: str, form: dict, auth: str, kind: str) -> dict:
        assert (path, auth, kind) == ("/number/update", "basic", "form")
        self.sent.append(dict(form))
        self.number.update(form)
        if form.get("voiceCallbackType") == "app":
            self.number["voiceCallbackValue"] = form["app_id"]
        return {"error-code": "200", "error-code-label": "success"}


class FakeNumbers:
    def __init__(self, number: dict[str, Any]) -> None:
        self.http_client = FakeHttp(number)


def test_moving_and_putting_back_resend_the_numbers_own_fields():
    numbers = FakeNumbers({"country": "GB", "msisdn": "447700900000", "app_id": "prod", "moHttpUrl": "https://sms",
                           "voiceStatusCallback": "https://status", "voiceCallbackType": "sip",
                           "voiceCallbackValue": "sip:desk@example.com"})
    without = link_number(numbers, "lab", "447700900000")
    assert numbers.http_client.sent == [] and len(without.problems) == 2  # another application; forwarded
    moved = link_number(numbers, "lab", "447700900000", take=True, app_name=lambda other: "Production")
    assert numbers.http_client.sent[-1] == {
        "country": "GB", "msisdn": "447700900000", "app_id": "lab", "moHttpUrl": "https://sms",
        "voiceStatusCallback": "https://status", "voiceCallbackType": "app", "voiceCallbackValue": "lab"}
    assert moved.record["before"] == {"app_id": "prod", "voiceCallbackType": "sip",
                                      "voiceCallbackValue": "sip:desk@example.com"}
    lines = restore_number(numbers, moved.record)
    assert numbers.http_client.sent[-1] == {
        "country": "GB", "msisdn": "447700900000", "app_id": "prod", "moHttpUrl": "https://sms",
        "voiceStatusCallback": "https://status", "voiceCallbackType": "sip",
        "voiceCallbackValue": "sip:desk@example.com"}
    assert lines == ["number 447700900000 moved back to 'Production' (prod)",
                     "number 447700900000: forwarding to SIP URI sip:desk@example.com put back"]


def test_a_number_changed_during_the_session_is_left_as_it_is():
    numbers = FakeNumbers({"country": "GB", "msisdn": "447700900000", "app_id": "prod"})
    moved = link_number(numbers, "lab", "447700900000", take=True)
    numbers.http_client.number["app_id"] = "another"  # the user moved it on the dashboard meanwhile
    sent = len(numbers.http_client.sent)
    assert restore_number(numbers, moved.record) == [
        "number 447700900000 kept as it is now (application another): it was changed during the session"]
    assert len(numbers.http_client.sent) == sent
