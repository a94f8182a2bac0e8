"""Settings: mode selection, the one message listing live-mode problems, keys, and no secrets shown."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from labkit.config import Settings, key_format, load_private_key
from labkit.errors import ConfigError

APP_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = tmp_path_factory.mktemp("keys")
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    pkcs1 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode()
    (folder / "private.key").write_text(pkcs8)
    (folder / "rsa.key").write_text(pkcs1)
    return {"pkcs8": pkcs8, "pkcs1": pkcs1, "path": str(folder / "private.key"),
            "pkcs1_path": str(folder / "rsa.key")}


def load(env, tmp_path):
    return Settings.load(env_file=tmp_path / "none.env", environ=env)


def test_default_is_sandbox(tmp_path):
    assert load({}, tmp_path).mode == "sandbox"


def test_auto_is_live_with_credentials(tmp_path, keys):
    s = load({"VONAGE_APPLICATION_ID": APP_ID, "VONAGE_PRIVATE_KEY": keys["path"]}, tmp_path)
    assert s.mode == "live"


def test_explicit_mode_wins(tmp_path, keys):
    s = load({"VONAGE_APPLICATION_ID": APP_ID, "VONAGE_PRIVATE_KEY": keys["path"], "LABKIT_MODE": "sandbox"},
             tmp_path)
    assert s.mode == "sandbox"
    with pytest.raises(ConfigError, match="LABKIT_MODE"):
        load({"LABKIT_MODE": "production"}, tmp_path)


def test_dotenv_file_is_read_and_environment_wins(tmp_path):
    env = tmp_path / ".env"
    env.write_text("VONAGE_NUMBER=+44 7700 900000\nTO_NUMBER=447700900001\n")
    s = Settings.load(env_file=env, environ={"TO_NUMBER": "447700900002"})
    assert s.vonage_number == "447700900000" and s.to_number == "447700900002"
    assert s.env_file == str(env)


def test_live_problems_listed_together_with_where_to_get_them(tmp_path):
    s = load({"LABKIT_MODE": "live", "VONAGE_NUMBER": "12"}, tmp_path)
    with pytest.raises(ConfigError) as info:
        s.require_live()
    text = str(info.value)
    for name in ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "VONAGE_NUMBER", "NGROK_AUTHTOKEN"):
        assert name in text
    assert "dashboard" in text and "LABKIT_MODE=sandbox" in text


def test_public_url_replaces_ngrok_token(tmp_path, keys):
    s = load({"LABKIT_MODE": "live", "VONAGE_APPLICATION_ID": APP_ID, "VONAGE_PRIVATE_KEY": keys["path"],
              "VONAGE_NUMBER": "447700900000", "PUBLIC_URL": "https://lab.example.test/"}, tmp_path)
    assert s.problems() == []
    assert s.public_url == "https://lab.example.test"


def test_secrets_never_in_repr(tmp_path, keys):
    s = load({"VONAGE_APPLICATION_ID": APP_ID, "VONAGE_PRIVATE_KEY": keys["pkcs8"],
              "VONAGE_SIGNATURE_SECRET": "sig-secret-123456", "NGROK_AUTHTOKEN": "tok_abcdefghijklmnop"}, tmp_path)
    text = repr(s) + str(s)
    assert "sig-secret-123456" not in text and "tok_abcdefghijklmnop" not in text
    assert "BEGIN PRIVATE KEY" not in text and "<set>" in text


def test_pkcs1_key_is_converted(keys):
    assert key_format(keys["pkcs1"]) == "PKCS#1"
    converted = load_private_key(keys["pkcs1"])
    assert converted.startswith("-----BEGIN PRIVATE KEY-----")
    assert load_private_key(keys["pkcs1_path"]) == converted == load_private_key(keys["path"])


def test_key_with_escaped_newlines_from_dotenv(keys):
    one_line = keys["pkcs8"].replace("\n", "\\n")
    assert load_private_key(one_line).startswith("-----BEGIN PRIVATE KEY-----")


def test_bad_keys_explained(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_private_key(str(tmp_path / "missing.key"))
    with pytest.raises(ConfigError, match="not a readable"):
        load_private_key("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----")


def test_bad_application_id_and_number(tmp_path, keys):
    s = load({"VONAGE_APPLICATION_ID": "abc", "VONAGE_PRIVATE_KEY": keys["path"], "VONAGE_NUMBER": "07700900000",
              "PUBLIC_URL": "http://insecure.test"}, tmp_path)
    text = "\n".join(s.problems())
    assert "not a UUID" in text and "E.164" in text and "https://" in text


def test_recordings_go_under_labkit_home_one_folder_per_day(monkeypatch, tmp_path):
    from datetime import date

    from labkit.config import recordings_dir

    monkeypatch.delenv("LABKIT_RECORDINGS", raising=False)
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    assert recordings_dir(date(2026, 11, 30)) == tmp_path / "home" / "recordings" / "2026-11-30"
    assert recordings_dir().name == date.today().isoformat()
    monkeypatch.setenv("LABKIT_RECORDINGS", str(tmp_path / "elsewhere"))
    assert recordings_dir(date(2026, 1, 2)) == tmp_path / "elsewhere" / "2026-01-02"


def test_a_lab_records_under_labkit_home_not_the_working_folder(monkeypatch, tmp_path):
    from labkit.config import Settings, recordings_dir
    from labkit.lab.facade import Lab

    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LABKIT_RECORDINGS", raising=False)
    other = Lab(Settings.load(environ={"LABKIT_MODE": "sandbox"}), quiet=True)  # beside any shared lab
    other._start()
    try:
        assert other.sockets.folder == recordings_dir()
        assert other.sockets.folder.is_relative_to(tmp_path / "home") and not other.sockets.folder.is_relative_to(
            Path.cwd())
    finally:
        other.stop()


def test_take_number_is_an_explicit_yes(tmp_path):
    """LABKIT_TAKE_NUMBER: the lab may move VONAGE_NUMBER only when the user says so (issue 18, item 1)."""
    assert load({}, tmp_path).take_number is False
    assert load({"LABKIT_TAKE_NUMBER": "1"}, tmp_path).take_number is True
    assert load({"LABKIT_TAKE_NUMBER": "no"}, tmp_path).take_number is False
    with pytest.raises(ConfigError, match="LABKIT_TAKE_NUMBER"):
        load({"LABKIT_TAKE_NUMBER": "maybe"}, tmp_path)
