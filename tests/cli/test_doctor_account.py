"""`labkit doctor` in live mode, against the sandbox: each account problem staged, each reported."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from support.sandbox import *  # noqa: F403 - the fixtures: sandbox, receiver, test_audio

from labkit.cli import doctor_account
from labkit.cli.doctor import doctor, print_report
from labkit.live.account import LabUrls, clients, point_application

LAB = "https://lab.example"


@pytest.fixture
def sandbox(own_sandbox):
    """This module makes and deletes applications and numbers: a sandbox of its own for each test."""
    return own_sandbox.sandbox


@pytest.fixture
def client(own_sandbox):
    return own_sandbox.client()


@pytest.fixture
def live_env(sandbox, monkeypatch, tmp_path):
    """Live settings whose Vonage is the sandbox, with everything right to start with."""
    sandbox.trust()
    env = {"LABKIT_MODE": "live", "VONAGE_APPLICATION_ID": sandbox.application_id,
           "VONAGE_PRIVATE_KEY": str(sandbox.private_key_path), "VONAGE_NUMBER": sandbox.number,
           "VONAGE_API_KEY": sandbox.api_key, "VONAGE_API_SECRET": sandbox.api_secret,
           "VONAGE_SIGNATURE_SECRET": sandbox.signature_secret, "VONAGE_API_HOST": sandbox.api_host,
           "VONAGE_REST_HOST": sandbox.api_host, "PUBLIC_URL": LAB, "LABKIT_AUDIO_DIRS": str(tmp_path)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    apps, numbers = clients(sandbox.api_key, sandbox.api_secret, api_host=sandbox.api_host,
                            rest_host=sandbox.api_host)
    point_application(apps, numbers, sandbox.application_id, LabUrls.for_base(LAB), number=sandbox.number)
    return env


def account(checks):
    names = ("Voice API credentials", "account credentials", "clock", "application", "webhooks",
             "signed callbacks", "number")
    return {c.check: c for c in checks if c.check in names}


def run_doctor(capsys):
    checks = doctor(tunnel=False, server=False, env_file="/nonexistent/.env")
    print_report(checks)
    return account(checks), capsys.readouterr().out


def test_a_right_setup_passes_every_account_check(live_env, capsys):
    found, out = run_doctor(capsys)
    assert set(found) == {"Voice API credentials", "account credentials", "clock", "application", "webhooks",
                          "signed callbacks", "number"}
    assert all(c.ok for c in found.values()), out
    assert live_env["VONAGE_API_SECRET"] not in out and live_env["VONAGE_SIGNATURE_SECRET"] not in out


def test_wrong_urls_and_an_unlinked_number(live_env, sandbox, capsys):
    apps, numbers = clients(sandbox.api_key, sandbox.api_secret, api_host=sandbox.api_host,
                            rest_host=sandbox.api_host)
    point_application(apps, numbers, sandbox.application_id, LabUrls.for_base("https://old-tunnel.example"))
    other = apps.create_application({"name": "other"})
    from vonage_numbers import UpdateNumberParams

    numbers.update_number(UpdateNumberParams(country="GB", msisdn=sandbox.number, app_id=other.id))
    found, out = run_doctor(capsys)
    assert found["webhooks"].ok is False and "old-tunnel.example" in found["webhooks"].detail
    assert f"{LAB}/webhooks/answer" in found["webhooks"].advice
    assert found["number"].ok is False and other.id in found["number"].detail
    assert "Lab.start() links it" in out


def test_bad_credentials(live_env, monkeypatch, tmp_path, capsys):
    from labkit.keys import new_key_pair

    monkeypatch.setenv("VONAGE_API_SECRET", "wrong-secret")
    (tmp_path / "other.key").write_text(new_key_pair()[1])
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", str(tmp_path / "other.key"))
    found, out = run_doctor(capsys)
    assert found["account credentials"].ok is False and "401" in found["account credentials"].detail
    assert found["Voice API credentials"].ok is False and "not the key of" in found["Voice API credentials"].advice
    assert "wrong-secret" not in out


def test_a_skewed_clock(live_env, monkeypatch, capsys):
    monkeypatch.setattr(doctor_account, "_now", lambda: time.time() + 120)
    found, out = run_doctor(capsys)
    # the Date header has whole seconds: 120 s of skew reads as 120 or 121
    assert found["clock"].ok is False and re.search(r"12[01] s ahead of", found["clock"].detail)
    assert "network time" in out


def test_an_unknown_application_and_signing_off(live_env, sandbox, monkeypatch, capsys):
    from vonage_application import ApplicationConfig, Capabilities, Voice

    apps, _ = clients(sandbox.api_key, sandbox.api_secret, api_host=sandbox.api_host, rest_host=sandbox.api_host)
    made = apps.create_application(ApplicationConfig(name="unsigned", capabilities=Capabilities(
        voice=Voice(signed_callbacks=False))))
    monkeypatch.setenv("VONAGE_APPLICATION_ID", made.id)
    found, _ = run_doctor(capsys)
    assert found["signed callbacks"].ok is False and "refuses unsigned" in found["signed callbacks"].detail
    monkeypatch.setenv("VONAGE_APPLICATION_ID", str(uuid.uuid4()))
    found, _ = run_doctor(capsys)
    assert found["application"].ok is False and "not an application of this account" in found["application"].detail
    assert found["Voice API credentials"].ok is False


def test_the_websocket_upgrade_check(lab):
    from labkit.cli.doctor_account import socket_check

    good = socket_check(lab)
    assert good.ok is True and "/socket" in good.detail

    class Elsewhere:
        def socket_url(self, link=None):
            return lab.socket_url(link).replace(f":{lab.port}/", ":1/")

    bad = socket_check(Elsewhere())
    assert bad.ok is False and "forwards WebSocket upgrades" in bad.advice
