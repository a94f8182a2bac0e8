"""`labkit setup` against the sandbox: finds or creates the application, links a number, writes .env;
safe to run again (issue 18, item 3)."""

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


def named(sandbox, name="labkit"):
    return [a for a in sandbox.account.applications.values() if a.name == name]


@pytest.fixture(autouse=True)
def _number_back(sandbox):
    """Each test starts with the sandbox's number on its own application, and leaves it there."""
    def home() -> None:
        sandbox.account.update_number({"country": "GB", "msisdn": sandbox.number, "app_id": sandbox.application_id})

    home()
    yield
    home()
    for app in named(sandbox):
        sandbox.account.delete(app.id)


def test_setup_creates_an_application_links_the_number_and_writes_env(sandbox, tmp_path, capsys):
    from vonage import Vonage
    from vonage_voice import ListCallsFilter

    (tmp_path / ".env").write_text("TO_NUMBER=447700900001\n")
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--take-number", "--signature-secret", "s3cret-value"))
    assert code == 0, out
    env = dotenv_values(tmp_path / ".env")
    assert env["TO_NUMBER"] == "447700900001"  # other lines kept
    app_id = env["VONAGE_APPLICATION_ID"]
    assert app_id != sandbox.application_id and env["VONAGE_NUMBER"] == sandbox.number
    assert env["VONAGE_API_KEY"] == sandbox.api_key and env["VONAGE_API_HOST"] == sandbox.api_host
    assert env["VONAGE_SIGNATURE_SECRET"] == "s3cret-value"
    key = tmp_path / "private.key"
    assert env["VONAGE_PRIVATE_KEY"] == str(key.resolve())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    assert sandbox.api_secret not in out and "PRIVATE KEY" not in out and "s3cret-value" not in out  # no secret
    assert "'labkit sandbox'" in out  # it says which application the number left
    num, app = sandbox.account.app_for_number(sandbox.number)
    assert app.id == app_id  # linked through the Numbers API
    assert app.privacy == {"improve_ai": False}  # sent explicitly
    # the saved key is the application's: the Voice API accepts its JWT
    voice = Vonage(Auth(application_id=app_id, private_key=str(key)),
                   HttpClientOptions(api_host=sandbox.api_host, timeout=10)).voice
    voice.list_calls(ListCallsFilter(page_size=1))


def test_a_number_of_another_application_needs_consent(sandbox, tmp_path, capsys):
    code, out = run(capsys, *setup_args(sandbox, tmp_path))
    assert code == 1 and f"'labkit sandbox' ({sandbox.application_id})" in out and "--take-number" in out
    assert not named(sandbox) and not (tmp_path / ".env").exists()  # nothing changed anywhere
    assert sandbox.account.app_for_number(sandbox.number)[1].id == sandbox.application_id


def test_setup_twice_makes_one_application_and_env_and_the_link_agree(sandbox, tmp_path, capsys):
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--take-number"))
    assert code == 0, out
    first = dotenv_values(tmp_path / ".env")
    code, out = run(capsys, *setup_args(sandbox, tmp_path))  # again, unattended, no flags
    assert code == 0, out
    assert "Reusing the Voice application 'labkit'" in out and "named in .env" in out
    assert dotenv_values(tmp_path / ".env") == first and len(named(sandbox)) == 1
    assert sandbox.account.app_for_number(sandbox.number)[1].id == first["VONAGE_APPLICATION_ID"]
    assert not (tmp_path / "private-2.key").exists()  # the key .env holds is the application's: kept


def test_an_application_of_the_same_name_is_reused(sandbox, tmp_path, capsys):
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--take-number"))
    assert code == 0, out
    app_id = dotenv_values(tmp_path / ".env")["VONAGE_APPLICATION_ID"]
    (tmp_path / ".env").unlink()  # .env lost: the application is found by its name, its key is not in .env
    code, out = run(capsys, *setup_args(sandbox, tmp_path))
    assert code == 1 and "private key .env does not hold" in out and "--overwrite" in out
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--overwrite"))
    assert code == 0, out
    env = dotenv_values(tmp_path / ".env")
    assert env["VONAGE_APPLICATION_ID"] == app_id and len(named(sandbox)) == 1
    assert env["VONAGE_PRIVATE_KEY"].endswith("private-2.key")  # a new pair; the old file is left alone
    from labkit.cli.setup_env import key_matches

    assert key_matches(env["VONAGE_PRIVATE_KEY"], sandbox.account.get(app_id).public_key)


def test_setup_never_points_env_and_the_account_apart(sandbox, tmp_path, capsys):
    """.env names another application: setup changes nothing unless told to replace it (then all three)."""
    (tmp_path / ".env").write_text("VONAGE_APPLICATION_ID=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee\n")
    (tmp_path / "private.key").write_text("an older key\n")
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--take-number"))
    assert code == 1 and "together or not at all" in out and "--overwrite" in out
    assert dotenv_values(tmp_path / ".env") == {"VONAGE_APPLICATION_ID": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"}
    assert not named(sandbox) and sandbox.account.app_for_number(sandbox.number)[1].id == sandbox.application_id
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--take-number", "--overwrite"))
    assert code == 0, out
    env = dotenv_values(tmp_path / ".env")
    assert env["VONAGE_APPLICATION_ID"] == named(sandbox)[0].id
    assert (tmp_path / "private.key").read_text() == "an older key\n"  # the new key went beside it
    assert env["VONAGE_PRIVATE_KEY"].endswith("private-2.key")


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


def test_setup_asks_and_a_no_changes_nothing(sandbox, tmp_path, capsys, monkeypatch):
    (tmp_path / ".env").write_text("VONAGE_NUMBER=447700900555\n")
    answers = iter(["y", "n"])  # move the number: yes; replace .env's number: no
    asked = []

    def answer(prompt=""):
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", answer)
    args = [a for a in setup_args(sandbox, tmp_path) if a != "--yes"]
    code, out = run(capsys, *args)
    assert code == 1, out
    assert "'labkit sandbox'" in asked[0] and "already sets VONAGE_NUMBER" in asked[1] and len(asked) == 2
    assert dotenv_values(tmp_path / ".env") == {"VONAGE_NUMBER": "447700900555"} and not named(sandbox)


def test_setup_asks_for_the_signature_secret_hidden(sandbox, tmp_path, capsys, monkeypatch):
    hidden = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": "y")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": hidden.append(prompt) or "typed-secret")
    args = [a for a in setup_args(sandbox, tmp_path) if a != "--yes"]
    code, out = run(capsys, *args)
    assert code == 0, out
    assert len(hidden) == 1 and "Signature secret" in hidden[0] and "API Settings" in out
    assert dotenv_values(tmp_path / ".env")["VONAGE_SIGNATURE_SECRET"] == "typed-secret" and "typed-secret" not in out


@pytest.fixture(autouse=True)
def _no_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)


def test_a_forwarded_number_is_named_as_such_and_cleared_only_when_agreed(sandbox, tmp_path, capsys):
    sandbox.account.update_number({"country": "GB", "msisdn": sandbox.number, "voiceCallbackType": "sip",
                                   "voiceCallbackValue": "sip:desk@example.com"})
    code, out = run(capsys, *setup_args(sandbox, tmp_path))
    assert code == 1 and "forwards its calls to SIP URI sip:desk@example.com" in out and "--take-number" in out
    assert sandbox.account.numbers[sandbox.number].voice_callback_type == "sip"
    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--take-number"))
    assert code == 0, out
    num, app = sandbox.account.app_for_number(sandbox.number)
    assert num.voice_callback_type is None and app.id == dotenv_values(tmp_path / ".env")["VONAGE_APPLICATION_ID"]


def test_doctor_finds_nothing_wrong_after_a_clean_setup(sandbox, tmp_path, capsys, monkeypatch):
    from labkit.cli.doctor import doctor, print_report

    code, out = run(capsys, *setup_args(sandbox, tmp_path, "--take-number", "--signature-secret",
                                        sandbox.signature_secret, "--public-url", "https://lab.example"))
    assert code == 0, out
    monkeypatch.setenv("LABKIT_MODE", "live")
    monkeypatch.setenv("PUBLIC_URL", "https://lab.example")
    for name in ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "VONAGE_NUMBER", "VONAGE_SIGNATURE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    checks = doctor(tunnel=False, server=False, env_file=str(tmp_path / ".env"))
    print_report(checks)
    report = capsys.readouterr().out
    wrong = [c.check for c in checks if not c.ok and c.check not in ("tunnel", "server")]  # skipped here
    assert not wrong, report
