"""Where a call's REST requests go: the region_url its webhooks name, only to hosts that may get the JWT."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labkit.events import EventLog
from labkit.lab.regions import LabRegions, region_host


@pytest.mark.parametrize(("url", "kwargs", "host"), [
    ("https://api-us-3.vonage.com", {}, "api-us-3.vonage.com"),
    ("https://api-eu-3.vonage.com/", {}, "api-eu-3.vonage.com"),
    ("https://api-us-1.nexmo.com:443", {}, "api-us-1.nexmo.com:443"),
    ("http://api-us-3.vonage.com", {}, None),  # the SDK speaks https only; plain http is not Vonage
    ("https://api-us-3.vonage.com.evil.example", {}, None),
    ("https://user:pw@api-us-3.vonage.com", {}, None),
    ("https://api-us-3.vonage.com/v1/calls", {}, None),
    ("https://evil.example", {}, None),
    ("https://api-us-3.vonage.com", {"vonage": False}, None),  # VONAGE_API_HOST set: the override stays whole
    ("https://127.0.0.1:5555", {"trusted_names": ("127.0.0.1",), "vonage": False}, "127.0.0.1:5555"),
    ("https://127.0.0.1:5555", {"trusted_hosts": ("127.0.0.1:6666",), "vonage": False}, None),
    ("https://127.0.0.1:[x", {}, None),
    (None, {}, None),
])
def test_region_host(url, kwargs, host):
    assert region_host(url, **kwargs) == host


def lab_with(**settings):
    lab = LabRegions()
    lab._regions, lab._regional = {}, {}
    lab.events = EventLog()
    lab.mode = "live"
    lab.sandbox = None
    lab.settings = SimpleNamespace(api_host=None, **settings)
    return lab


def test_an_untrusted_region_url_is_ignored_and_said():
    lab = lab_with()
    lab._note_region({"uuid": "u1", "region_url": "https://collector.example"})
    assert lab.region_of("u1") is None
    assert [e.status for e in lab.events] == ["region-ignored"]
    lab._note_region({"uuid": "u2", "region_url": "https://api-eu-4.vonage.com"})
    assert lab.region_of("u2") == "https://api-eu-4.vonage.com"
    lab._note_region({"uuid": "u2", "region_url": "https://api-ap-3.vonage.com"})  # the first one stays
    assert lab.region_of("u2") == "https://api-eu-4.vonage.com"
