"""Live mode without Vonage or ngrok: the lab opens its tunnel through the offline ngrok double."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support.fake_ngrok import write_launcher

import labkit.live.tunnel.tunnel
from labkit.config import Settings
from labkit.errors import ConfigError
from labkit.lab.facade import Lab

APP_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@pytest.fixture
def live_env(tmp_path, monkeypatch):
    import pyngrok.conf
    import pyngrok.installer

    monkeypatch.setattr(pyngrok.installer, "_download_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("downloads are disabled in tests")))
    monkeypatch.setattr(pyngrok.conf, "DEFAULT_NGROK_CONFIG_PATH", str(tmp_path / "ngrok.yml"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    (tmp_path / "private.key").write_bytes(pem)  # PKCS#1 on purpose: the lab converts it
    env = {"LABKIT_MODE": "live", "VONAGE_APPLICATION_ID": APP_ID,
           "VONAGE_PRIVATE_KEY": str(tmp_path / "private.key"), "VONAGE_NUMBER": "447700900000",
           "NGROK_AUTHTOKEN": "2fakeAuthtoken_0123456789abcdefXYZ",
           "PYNGROK_NGROK_PATH": str(write_launcher(tmp_path / "bin")),
           "LABKIT_HOME": str(tmp_path / "home"), "FAKE_NGROK_LOG": str(tmp_path / "calls.jsonl")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    labkit.live.tunnel.tunnel.kill_agents()


def start_private(environ) -> Lab:
    """A live lab beside the shared sandbox lab (bypassing the start-once registry)."""
    lab = Lab(Settings.load(environ=environ), quiet=True)
    try:
        lab._start()
    except BaseException:
        lab.stop()
        raise
    return lab


def test_live_lab_serves_webhooks_through_its_tunnel(live_env, capsys):
    lab = start_private(dict(os.environ))
    warning = capsys.readouterr().err  # no VONAGE_SIGNATURE_SECRET: say what that allows, and the fix
    assert "VONAGE_SIGNATURE_SECRET is not set" in warning and lab.public_url in warning
    try:
        assert lab.mode == "live" and lab.public_url.startswith("https://")
        # no API key and secret: the lab says exactly what to paste where instead of changing the application
        note = lab._account_note
        assert lab._account_restore is None and "VONAGE_API_KEY" in note and "Vonage dashboard" in note
        assert f"{lab.public_url}/webhooks/answer   (HTTP GET)" in note and f"{lab.public_url}/webhooks/event" in note
        host = lab.tunnel.host.split(":")[0]
        assert lab.audio_url("music.mp3") == f"{lab.public_url}/audio/music.mp3"
        assert lab.socket_url().startswith("wss://" + host)
        # the server now admits the tunnel's host name, and still nothing else
        ok = requests.get(f"{lab.local_url}/healthz", headers={"Host": host}, timeout=5)
        assert ok.status_code == 200 and ok.json()["mode"] == "live"
        assert requests.get(f"{lab.local_url}/healthz", headers={"Host": "evil.test"}, timeout=5).status_code == 403
        pid = lab.tunnel.agent_pid
    finally:
        lab.stop()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.03)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the ngrok agent outlived the lab")


def test_live_mode_lists_every_missing_setting(live_env, monkeypatch):
    environ = {"LABKIT_MODE": "live"}
    lab = Lab(Settings.load(env_file="/nonexistent/.env", environ=environ), quiet=True)
    with pytest.raises(ConfigError) as info:
        lab._start()
    lab.stop()
    for name in ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "VONAGE_NUMBER", "NGROK_AUTHTOKEN"):
        assert name in str(info.value)
    assert lab.runner is None  # nothing was started before the check
