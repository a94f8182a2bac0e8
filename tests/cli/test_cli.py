"""`labkit` CLI: doctor (never printing secrets), sandbox, lab and tunnel kill, all offline."""

from __future__ import annotations

import io
import pickle
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from labkit import cli

ENV_NAMES = ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "VONAGE_NUMBER", "TO_NUMBER",
             "VONAGE_SIGNATURE_SECRET", "NGROK_AUTHTOKEN", "PUBLIC_URL", "LABKIT_MODE", "LABKIT_PORT",
             "LABKIT_SANDBOX_SPEED", "LABKIT_AUDIO_DIRS", "PYNGROK_NGROK_PATH")
APP_ID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
SECRETS = {
    "VONAGE_SIGNATURE_SECRET": "sig-SECRET-value-0123456789",
    "NGROK_AUTHTOKEN": "2ngrokTOKENvalue_abcdefghijklmnop",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """An empty environment and a working directory with no .env above it."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "labkit-home"))
    return work


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key, fmt) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_doctor_in_sandbox_mode_with_an_empty_env(capsys):
    code, out = run(capsys, "doctor", "--no-server", "--no-account")  # never Vonage in tests
    assert code == 0, out
    assert "mode: sandbox" in out
    assert "set: none" in out and "VONAGE_APPLICATION_ID" in out
    assert "private key: not set" in out
    assert "Nothing blocks the lab." in out
    assert "tunnel" not in out.split("audio")[0]  # no tunnel check in sandbox mode


def test_doctor_never_prints_secret_values(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_MODE", "sandbox")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    # Not PEM, so it is taken for a path, and the config error quotes that "path": it must be hidden.
    private = "PRIVATE-key-material-that-is-not-pem-0123456789"
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", private)
    code, out = run(capsys, "doctor", "--no-server", "--no-account")  # never Vonage in tests
    for value in [*SECRETS.values(), private]:
        assert value not in out
    assert "VONAGE_SIGNATURE_SECRET" in out and "NGROK_AUTHTOKEN" in out  # named as set, never shown
    assert "private key" in out and "does not parse" in out
    assert code == 0, "a broken key does not block sandbox mode"


def test_doctor_in_live_mode_lists_problems_without_values(capsys, monkeypatch, rsa_key):
    key_text = pem(rsa_key, serialization.PrivateFormat.PKCS8)
    monkeypatch.setenv("VONAGE_APPLICATION_ID", APP_ID)
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", key_text)
    monkeypatch.setenv("NGROK_AUTHTOKEN", SECRETS["NGROK_AUTHTOKEN"])
    code, out = run(capsys, "doctor", "--no-tunnel", "--no-server", "--no-account")  # never Vonage in tests
    assert code == 1
    assert "mode: live" in out
    assert "VONAGE_NUMBER" in out and "Vonage dashboard > Numbers" in out
    assert "PKCS#8" in out and "tunnel: skipped" in out
    body = "".join(key_text.splitlines()[1:-1])
    assert body[:40] not in out and SECRETS["NGROK_AUTHTOKEN"] not in out


def test_doctor_reports_pkcs1_key_conversion(capsys, monkeypatch, rsa_key, tmp_path):
    key_file = tmp_path / "private.key"
    key_file.write_text(pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL))
    assert "BEGIN RSA PRIVATE KEY" in key_file.read_text()
    monkeypatch.setenv("LABKIT_MODE", "sandbox")
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", str(key_file))
    code, out = run(capsys, "doctor", "--no-server", "--no-account")  # never Vonage in tests
    assert code == 0, out
    line = next(line for line in out.splitlines() if "private key" in line)
    assert "✓" in line and "PKCS#1" in line and "converts it to PKCS#8" in line and "from a file" in line


def test_doctor_live_mode_with_an_unreadable_key_blocks(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VONAGE_APPLICATION_ID", APP_ID)
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", str(tmp_path / "missing.key"))
    code, out = run(capsys, "doctor", "--no-tunnel", "--no-server", "--no-account")
    assert code == 1
    assert "✗ private key" in out and "does not exist" in out


def test_doctor_reads_the_env_file_but_does_not_print_it(capsys, clean_env):
    (clean_env / ".env").write_text(f"LABKIT_MODE=sandbox\nNGROK_AUTHTOKEN={SECRETS['NGROK_AUTHTOKEN']}\n")
    code, out = run(capsys, "doctor", "--no-server", "--no-account")  # never Vonage in tests
    assert code == 0
    assert str(clean_env / ".env") in out and "LABKIT_MODE=sandbox" in out
    assert SECRETS["NGROK_AUTHTOKEN"] not in out


def test_doctor_function_returns_check_tuples(monkeypatch):
    checks = cli.doctor(server=False)
    for check, ok, detail in checks:
        assert isinstance(check, str) and ok in (True, False, None) and isinstance(detail, str)
    mode = checks[0]
    assert mode.check == "mode" and mode.ok is True and mode.detail.startswith("sandbox")
    assert pickle.loads(pickle.dumps(mode)) == mode


def test_doctor_lists_audio_with_format_and_playability(capsys, monkeypatch, clean_env):
    pytest.importorskip("labkit.media.audio")
    import numpy as np
    import soundfile as sf

    audio = clean_env / "audio"
    audio.mkdir()
    sf.write(audio / "ok.wav", np.zeros(1600, dtype=np.int16), 16000, subtype="PCM_16")
    sf.write(audio / "float.wav", np.zeros(1600, dtype=np.float32), 16000, subtype="FLOAT")
    (audio / "notes.txt").write_text("not audio")
    checks = {check.check: check for check in cli.doctor(server=False)}
    assert checks["audio ok.wav"].ok is True and "16000 Hz" in checks["audio ok.wav"].detail
    bad = checks["audio float.wav"]
    assert bad.ok is False and bad.advice and not bad.blocking
    assert "audio notes.txt" not in checks


def test_doctor_without_the_audio_prober_degrades(monkeypatch, clean_env):
    (clean_env / "audio").mkdir()
    (clean_env / "audio" / "a.mp3").write_bytes(b"ID3")
    monkeypatch.setitem(sys.modules, "labkit.media.audio", None)  # makes the import fail
    checks = [check for check in cli.doctor(server=False) if check.check == "audio"]
    assert checks and checks[0].ok is None and "format check unavailable" in checks[0].detail


def test_report_falls_back_to_ascii_marks():
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    ok = cli.print_report([cli.Check("a", True, "fine"), cli.Check("b", False, "bad", advice="fix it")], stream)
    stream.flush()
    text = stream.buffer.getvalue().decode()
    assert not ok and "OK a: fine" in text and "XX b: bad" in text and "-> fix it" in text


def test_non_blocking_failures_do_not_fail_the_exit_code():
    assert cli.print_report([cli.Check("audio x.ogg", False, "no", advice="use mp3", blocking=False)],
                            io.StringIO())


def test_doctor_starts_the_lab_server_in_sandbox_mode(capsys):
    try:
        from labkit.lab.facade import Lab  # noqa: F401
        from labkit.sandbox import Sandbox  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the lab or sandbox is not importable yet: {exc}")
    code, out = run(capsys, "doctor", "--no-tunnel")
    assert "✓ server" in out and "/healthz" in out, out
    assert code == 0, out


@pytest.fixture
def fake_agent(monkeypatch, tmp_path):
    """PYNGROK_NGROK_PATH -> the offline fake agent; pyngrok's default config kept in tmp; agents killed."""
    import pyngrok.conf
    import pyngrok.installer
    from support.fake_ngrok import write_launcher

    from labkit.live.tunnel.tunnel import kill_agents

    def no_download(url, *args, **kwargs):
        raise OSError("downloads are disabled in tests")

    monkeypatch.setattr(pyngrok.installer, "_download_file", no_download)
    monkeypatch.setattr(pyngrok.conf, "DEFAULT_NGROK_CONFIG_PATH", str(tmp_path / "ngrok" / "ngrok.yml"))
    monkeypatch.setenv("PYNGROK_NGROK_PATH", str(write_launcher(tmp_path / "bin")))
    yield
    kill_agents()


def live_env(monkeypatch, rsa_key):
    monkeypatch.setenv("VONAGE_APPLICATION_ID", APP_ID)
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", pem(rsa_key, serialization.PrivateFormat.PKCS8))
    monkeypatch.setenv("VONAGE_NUMBER", "447700900000")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def test_doctor_live_mode_opens_the_tunnel(capsys, monkeypatch, rsa_key, fake_agent):
    live_env(monkeypatch, rsa_key)
    code, out = run(capsys, "doctor", "--no-server", "--no-account")  # never Vonage in tests
    assert code == 0, out
    assert "mode: live" in out
    line = next(line for line in out.splitlines() if "tunnel" in line)
    assert "✓" in line and "https://" in line and ".fake-ngrok.test" in line
    assert not any(value in out for value in SECRETS.values())


def test_doctor_live_mode_explains_a_refused_authtoken(capsys, monkeypatch, rsa_key, fake_agent):
    live_env(monkeypatch, rsa_key)
    monkeypatch.setenv("FAKE_NGROK_MODE", "echo_token")  # the agent echoes the token back, like ngrok does
    code, out = run(capsys, "doctor", "--no-account")
    assert code == 1
    assert "✗ tunnel" in out and "ERR_NGROK_105" in out and "NGROK_AUTHTOKEN" in out
    assert "server: skipped" in out
    assert not any(value in out for value in SECRETS.values())


def test_doctor_live_mode_with_public_url_skips_ngrok(capsys, monkeypatch, rsa_key):
    live_env(monkeypatch, rsa_key)
    monkeypatch.setenv("PUBLIC_URL", "https://lab.example.test")
    code, out = run(capsys, "doctor", "--no-server", "--no-account")  # never Vonage in tests
    assert code == 0 and "PUBLIC_URL is set, so no ngrok" in out


def test_tunnel_kill_with_nothing_running(capsys):
    code, out = run(capsys, "tunnel", "kill")
    assert code == 0 and "No ngrok agent started by labkit is running." in out


class FakeSandbox:
    instances: list[FakeSandbox] = []

    def __init__(self, port=0, speed=1.0, home=None):
        self.port, self.speed = port or 48443, speed
        self.stopped = False
        FakeSandbox.instances.append(self)

    def start(self):
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.api_host = f"127.0.0.1:{self.port}"
        self.ca_path = Path("/state/sandbox-ca.pem")
        self.ca_bundle = Path("/state/ca-bundle.pem")
        self.application_id = APP_ID
        self.private_key_path = Path("/state/private.key")
        self.number = "447700900000"
        self.api_key, self.api_secret, self.signature_secret = "abcd1234", "sandbox-secret", "sig-secret"
        return self

    def configure(self, **settings):
        self.configured = settings
        return self

    def stop(self):
        self.stopped = True


def test_sandbox_command_prints_how_to_use_it_and_stops_cleanly(capsys, monkeypatch):
    import labkit.sandbox

    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setattr(labkit.sandbox, "Sandbox", FakeSandbox, raising=False)
    monkeypatch.setattr(cli.sandbox, "_wait_until_interrupted", interrupt)
    code, out = run(capsys, "sandbox", "--port", "48443", "--speed", "4")
    assert code == 0
    sandbox = FakeSandbox.instances[-1]
    assert (sandbox.port, sandbox.speed, sandbox.stopped) == (48443, 4.0, True)
    for text in ("https://127.0.0.1:48443", "/state/sandbox-ca.pem", "REQUESTS_CA_BUNDLE=/state/ca-bundle.pem",
                 APP_ID, "/state/private.key", "HttpClientOptions(api_host='127.0.0.1:48443'",
                 "Sandbox stopped.", "abcd1234", "sandbox-secret", "rest_host='127.0.0.1:48443'"):
        assert text in out


def test_sandbox_command_configures_the_application_and_prints_each_language(capsys, monkeypatch):
    import labkit.sandbox

    monkeypatch.setattr(labkit.sandbox, "Sandbox", FakeSandbox, raising=False)
    monkeypatch.setattr(cli.sandbox, "_wait_until_interrupted", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    code, out = run(capsys, "sandbox", "--answer-url", "http://127.0.0.1:3000/answer", "--event-url",
                    "http://127.0.0.1:3000/event", "--fallback-url", "http://127.0.0.1:3000/fallback",
                    "--signature-secret", "s3cret", "--number", "447700900999", "--answer-method", "post")
    assert code == 0
    assert FakeSandbox.instances[-1].configured == {
        "answer_url": "http://127.0.0.1:3000/answer", "event_url": "http://127.0.0.1:3000/event",
        "fallback_answer_url": "http://127.0.0.1:3000/fallback", "signature_secret": "s3cret",
        "number": "447700900999", "answer_method": "POST"}
    for text in ("NODE_EXTRA_CA_CERTS=/state/sandbox-ca.pem", "apiHost: 'https://127.0.0.1:48443'",
                 "curl --cacert /state/sandbox-ca.pem", "https://127.0.0.1:48443/_labkit/openapi.json",
                 "REQUESTS_CA_BUNDLE=/state/ca-bundle.pem"):
        assert text in out
    assert "s3cret" not in out  # the secret is never printed


def test_sandbox_command_with_the_real_sandbox(capsys, monkeypatch):
    try:
        from labkit.sandbox import Sandbox  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"labkit.sandbox is not importable yet: {exc}")

    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.sandbox, "_wait_until_interrupted", interrupt)
    code, out = run(capsys, "sandbox", "--port", "0")
    assert code == 0 and "https://127.0.0.1:" in out and "Sandbox stopped." in out


def test_lab_command_runs_jupyterlab_on_the_notebooks(capsys, monkeypatch, tmp_path):
    notebooks = tmp_path / "nbs"
    notebooks.mkdir()
    started = {}

    class FakePopen:
        def __init__(self, argv, cwd=None, env=None, **options):
            started.update(argv=argv, cwd=cwd, env=env, options=options)

        def poll(self):
            return None

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(cli.lab.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(cli.lab, "_wait_for_port", lambda port, proc, timeout=60.0, token="": True)
    code, out = run(capsys, "lab", "--port", "8899", "--notebooks", str(notebooks))
    assert code == 0
    argv, token = started["argv"], started["env"]["JUPYTER_TOKEN"]
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"] and "--no-browser" in argv
    assert "--port=8899" in argv and f"--ServerApp.root_dir={notebooks.resolve()}" in argv
    assert token not in " ".join(argv)  # not visible in ps
    assert started["options"]["start_new_session"]  # Ctrl-C reaches labkit lab, which stops JupyterLab itself
    assert f"http://127.0.0.1:8899/lab?token={token}" in out
    assert "sandbox mode" in out


def test_lab_command_without_notebooks(capsys, tmp_path):
    code, out = run(capsys, "lab", "--notebooks", str(tmp_path / "nope"))
    assert code == 1 and "no notebooks folder" in out


def test_notebooks_dir_prefers_the_repository():
    repo = Path(cli.__file__).resolve().parents[2] / "notebooks"
    if not repo.is_dir():
        pytest.skip("no notebooks/ folder next to the package")
    assert cli.notebooks_dir() == repo.resolve()


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


def test_sandbox_command_chaos_flag(capsys, monkeypatch):
    """`--chaos SPEC` sets the sandbox's chaos delivery (and the banner says so); a bad SPEC is a clear error."""
    import labkit.sandbox

    monkeypatch.setattr(labkit.sandbox, "Sandbox", FakeSandbox, raising=False)
    monkeypatch.setattr(cli.sandbox, "_wait_until_interrupted", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    code, out = run(capsys, "sandbox", "--chaos", "jitter=0.1,duplicate=0.5,seed=3")
    chaos = FakeSandbox.instances[-1].webhook_chaos
    assert code == 0 and (chaos.jitter, chaos.duplicate, chaos.seed) == (0.1, 0.5, 3)
    assert "webhook chaos" in out and "duplicate 0.5" in out
    code = cli.main(["sandbox", "--chaos", "often"])
    err = capsys.readouterr().err
    assert code == 1 and "--chaos" in err and "unknown setting 'often'" in err
    assert not hasattr(FakeSandbox.instances[-1], "base_url")  # never started


def test_sandbox_command_vonage_proxy_flags_that_do_not_go_together(capsys):
    """--vonage-proxy tunnels TLS (not with --http); --proxy-port and --env-file only mean something with it."""
    for argv in (["--vonage-proxy", "--http"], ["--env-file", "/tmp/x.env"], ["--proxy-port", "3128"]):
        code = cli.main(["sandbox", *argv])
        err = capsys.readouterr().err
        assert code == 1 and "--vonage-proxy" in err, (argv, err)
