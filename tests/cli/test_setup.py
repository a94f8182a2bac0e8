"""`labkit setup` against the sandbox: creates an application, links a number, writes .env."""

from __future__ import annotations

import stat

import pytest
from dotenv import dotenv_values
from support.sandbox import *  # noqa: F403 - the fixtures: sandbox, receiver, test_audio
from vonage_http_client import Auth, HttpClientOptions

from labkit import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def setup_args(sb, tmp_path, *extra):
    sb.trust()
    return ("setup", "--api-key", sb.api_key, "--api-secret", sb.api_secret, "--api-host", sb.api_host,
            "--env-file", str(tmp_path / ".env"), "--key-file", str(tmp_path / "private.key"), "--yes", *extra)


def test_setup_creates_an_application_links_the_number_and_writes_env(sandbox, tmp_path, capsys):
    from vonage import Vonage
    from vonage_voice import ListCallsFilter

    (tmp_path / ".env").write_text("TO_NUMBER=447700900001\n")
    code, out = run(capsys, *setup_args(sandbox, tmp_path))
    assert code == 0, out
    env = dotenv_values(tmp_path / ".env")
    assert env["TO_NUMBER"] == "447700900001"  # other lines kept
    app_id = env["VONAGE_APPLICATION_ID"]
    assert app_id != sandbox.application_id and env["VONAGE_NUMBER"] == sandbox.number
    assert env["VONAGE_API_KEY"] == sandbox.api_key and env["VONAGE_API_HOST"] == sandbox.api_host
    key = tmp_path / "private.key"
    assert env["VONAGE_PRIVATE_KEY"] == str(key.resolve())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    assert sandbox.api_secret not in out and "PRIVATE KEY" not in out  # no secret printed
    num, app = sandbox.account.app_for_number(sandbox.number)
    assert app.id == app_id  # linked through the Numbers API
    # the saved key is the application's: the Voice API accepts its JWT
    voice = Vonage(Auth(application_id=app_id, private_key=str(key)),
                   HttpClientOptions(api_host=sandbox.api_host, timeout=10)).voice
    voice.list_calls(ListCallsFilter(page_size=1))


def test_setup_never_overwrites_without_asking(sandbox, tmp_path, capsys):
    (tmp_path / ".env").write_text("VONAGE_APPLICATION_ID=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee\n")
    (tmp_path / "private.key").write_text("an older key\n")
    code, out = run(capsys, *setup_args(sandbox, tmp_path))
    assert code == 0, out
    env = dotenv_values(tmp_path / ".env")
    assert env["VONAGE_APPLICATION_ID"] == "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee" and "kept" in out
    assert (tmp_path / "private.key").read_text() == "an older key\n"  # the new key went beside it
    assert env["VONAGE_PRIVATE_KEY"].endswith("private-2.key")
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--overwrite"))
    assert code == 0 and dotenv_values(tmp_path / ".env")["VONAGE_APPLICATION_ID"] != \
        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


def test_setup_refuses_bad_credentials_and_unknown_numbers(sandbox, tmp_path, capsys):
    args = list(setup_args(sandbox, tmp_path))
    args[args.index("--api-secret") + 1] = "wrong"
    code, out = run(capsys, *args)
    assert code == 1 and "refused the API key and secret" in out and not (tmp_path / ".env").exists()
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--number", "447700900999"))
    assert code == 1 and "not a number of this account" in out and sandbox.number in out


def test_setup_without_credentials_says_where_to_find_them(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VONAGE_API_KEY", raising=False)
    code, out = run(capsys, "setup", "--yes", "--env-file", str(tmp_path / ".env"))
    assert code == 1 and "--api-key" in out


def test_setup_asks_before_replacing_a_value(sandbox, tmp_path, capsys, monkeypatch):
    (tmp_path / ".env").write_text("VONAGE_NUMBER=447700900555\n")
    answers = iter(["n"])
    asked = []

    def answer(prompt=""):
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", answer)
    args = [a for a in setup_args(sandbox, tmp_path) if a != "--yes"]
    code, out = run(capsys, *args)
    assert code == 0, out
    assert len(asked) == 1 and "already sets VONAGE_NUMBER" in asked[0]
    assert dotenv_values(tmp_path / ".env")["VONAGE_NUMBER"] == "447700900555"


@pytest.fixture(autouse=True)
def _no_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
