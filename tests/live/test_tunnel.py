"""labkit.live.tunnel against an offline fake ngrok agent (tests/support/fake_ngrok.py): no network, no real ngrok."""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest
from support.fake_ngrok import write_launcher

import labkit.live.tunnel.processes
import labkit.live.tunnel.tunnel
from labkit.config import Settings
from labkit.errors import (
    LabkitError,
    TunnelAuthtokenInvalidError,
    TunnelAuthtokenMissingError,
    TunnelError,
    TunnelInstallError,
    TunnelSessionLimitError,
    TunnelTimeoutError,
)

TOKEN = "2fakeAuthtoken_0123456789abcdefXYZ"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test may download ngrok or read the user's ngrok/labkit state."""
    import pyngrok.installer

    def no_download(url, *args, **kwargs):
        raise URLError("downloads are disabled in tests")

    monkeypatch.setattr(pyngrok.installer, "_download_file", no_download)
    for name in ("NGROK_AUTHTOKEN", "PYNGROK_NGROK_PATH", "PUBLIC_URL", "FAKE_NGROK_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "labkit-home"))
    monkeypatch.setenv("FAKE_NGROK_LOG", str(tmp_path / "calls.jsonl"))


@pytest.fixture
def ngrok_bin(tmp_path) -> Path:
    """An executable `ngrok` that runs the fake with this interpreter (exec keeps the pid)."""
    return write_launcher(tmp_path / "bin")


def agent_starts(tmp_path) -> list[dict]:
    log = tmp_path / "calls.jsonl"
    if not log.exists():
        return []
    calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [call for call in calls if call["argv"][:1] == ["start"]]


def gone(pid: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def make_tunnel(tmp_path, ngrok_bin):
    """Build Tunnels on the fake agent; every agent is killed afterwards, even when the test fails."""
    made: list[labkit.live.tunnel.tunnel.Tunnel] = []

    def make(settings: Settings | None = None, module=labkit.live.tunnel.tunnel,
             **kwargs) -> labkit.live.tunnel.tunnel.Tunnel:
        kwargs.setdefault("ngrok_path", str(ngrok_bin))
        kwargs.setdefault("config_path", str(tmp_path / "ngrok.yml"))
        kwargs.setdefault("startup_timeout", 10)
        tunnel = module.Tunnel(settings or Settings(ngrok_authtoken=TOKEN), **kwargs)
        made.append(tunnel)
        return tunnel

    yield make
    for tunnel in made:
        try:
            tunnel.kill()
        except Exception:
            pass
    labkit.live.tunnel.tunnel.kill_agents()
    for call in agent_starts(tmp_path):  # last resort: nothing may outlive the test
        try:
            os.kill(call["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_open_returns_https_url_and_reuses_the_tunnel(make_tunnel, tmp_path):
    tunnel = make_tunnel()
    url = tunnel.open(8765)
    assert url.startswith("https://")
    assert tunnel.public_url == url
    assert tunnel.host == url.removeprefix("https://")
    assert tunnel.port == 8765

    assert tunnel.open(8765) == url  # same object, cell re-run
    again = make_tunnel()  # a new Tunnel, as a re-run cell would build
    assert again.open(8765) == url
    assert again.agent_pid == tunnel.agent_pid is not None
    assert len(agent_starts(tmp_path)) == 1
    # its own session: the SIGINT a notebook's interrupt sends to the kernel's group does not reach it
    assert os.getsid(tunnel.agent_pid) != os.getsid(0)

    start = agent_starts(tmp_path)[0]["argv"]
    assert start[:4] == ["start", "--none", "--log", "stdout"]
    # the authtoken is never on the agent's command line (any local user can read that): it is in a
    # 0600 config file under LABKIT_HOME, which pyngrok points the agent at
    assert "--authtoken" not in start and not any(TOKEN in arg for arg in start)
    agent_config = Path(start[start.index("--config") + 1])
    assert agent_config.is_relative_to(tmp_path / "labkit-home")
    assert stat.S_IMODE(agent_config.stat().st_mode) == 0o600
    assert TOKEN in agent_config.read_text()
    with open(f"/proc/{tunnel.agent_pid}/cmdline", "rb") as handle:
        assert TOKEN.encode() not in handle.read()


def test_reuse_survives_module_reload(make_tunnel, tmp_path):
    url = make_tunnel().open(8766)
    reloaded = importlib.reload(labkit.live.tunnel.tunnel)
    assert reloaded.Tunnel is not None
    assert make_tunnel(module=reloaded).open(8766) == url
    assert len(agent_starts(tmp_path)) == 1


def test_other_port_gets_its_own_tunnel_on_the_same_agent(make_tunnel, tmp_path):
    tunnel = make_tunnel()
    first = tunnel.open(8767)
    second = make_tunnel().open(8768)
    assert first != second
    assert len(agent_starts(tmp_path)) == 1


def test_close_disconnects_but_keeps_the_agent(make_tunnel, tmp_path):
    from pyngrok import ngrok

    tunnel = make_tunnel()
    url = tunnel.open(8769)
    pid = tunnel.agent_pid
    tunnel.close()
    assert tunnel.public_url is None
    assert [t.public_url for t in ngrok.get_tunnels(tunnel.pyngrok_config())] == []
    tunnel.close()  # idempotent
    assert tunnel.open(8769) != url  # a fresh tunnel...
    assert tunnel.agent_pid == pid  # ...on the same agent
    assert len(agent_starts(tmp_path)) == 1


def test_kill_stops_the_agent_and_leaves_no_process(make_tunnel, tmp_path):
    tunnel = make_tunnel()
    tunnel.open(8770)
    pid = tunnel.agent_pid
    assert pid == agent_starts(tmp_path)[0]["pid"]
    pidfile = tmp_path / "labkit-home" / "ngrok-agents.json"
    assert pid in [entry["pid"] for entry in json.loads(pidfile.read_text())]

    tunnel.kill()
    assert gone(pid), "the agent process is still there after kill()"
    assert tunnel.agent_pid is None
    assert pid not in [entry["pid"] for entry in json.loads(pidfile.read_text())]
    tunnel.kill()  # idempotent


def test_public_url_skips_ngrok_entirely(make_tunnel, tmp_path):
    settings = Settings(public_url="https://lab.example.test:8443")
    tunnel = make_tunnel(settings, ngrok_path=str(tmp_path / "missing" / "ngrok"))
    assert tunnel.open(8771) == "https://lab.example.test:8443"
    assert tunnel.host == "lab.example.test:8443"
    assert tunnel.agent_pid is None
    tunnel.close()
    tunnel.kill()
    assert agent_starts(tmp_path) == []
    assert not (tmp_path / "missing").exists()


def test_missing_authtoken_is_reported_before_starting_anything(make_tunnel, tmp_path):
    tunnel = make_tunnel(Settings())
    with pytest.raises(TunnelAuthtokenMissingError) as info:
        tunnel.open(8772)
    message = str(info.value)
    assert "NGROK_AUTHTOKEN" in message and "dashboard" in message and "PUBLIC_URL" in message
    assert agent_starts(tmp_path) == []


def test_authtoken_from_the_agents_own_config_is_enough(make_tunnel, tmp_path):
    (tmp_path / "ngrok.yml").write_text(f"version: '3'\nagent:\n  authtoken: {TOKEN}\n")
    assert make_tunnel(Settings()).open(8773).startswith("https://")


def test_refused_authtoken_maps_to_invalid_token_error(make_tunnel, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_NGROK_MODE", "bad_token")
    tunnel = make_tunnel()
    with pytest.raises(TunnelAuthtokenInvalidError) as info:
        tunnel.open(8774)
    error = info.value
    assert isinstance(error, TunnelError) and isinstance(error, LabkitError)
    assert "ERR_NGROK_4018" in str(error) and "NGROK_AUTHTOKEN" in str(error)
    assert error.ngrok_error_code == "ERR_NGROK_4018"
    assert any("ERR_NGROK_4018" in line for line in error.agent_log)
    assert TOKEN not in str(error) and error.__cause__ is None
    assert tunnel.agent_pid is None
    assert gone(agent_starts(tmp_path)[0]["pid"])


def test_session_limit_maps_to_its_error(make_tunnel, monkeypatch):
    monkeypatch.setenv("FAKE_NGROK_MODE", "session_limit")
    with pytest.raises(TunnelSessionLimitError) as info:
        make_tunnel().open(8775)
    message = str(info.value)
    assert "ERR_NGROK_108" in message and "labkit tunnel kill" in message and "notebooks" in message


@pytest.mark.parametrize("mode", ["hang", "offline"])
def test_agent_that_never_connects_maps_to_timeout(make_tunnel, monkeypatch, tmp_path, mode):
    monkeypatch.setenv("FAKE_NGROK_MODE", mode)
    tunnel = make_tunnel(startup_timeout=1)
    started = time.monotonic()
    with pytest.raises(TunnelTimeoutError) as info:
        tunnel.open(8776)
    assert 0.9 <= time.monotonic() - started < 5
    assert isinstance(info.value, TimeoutError)
    message = str(info.value)
    assert "within 1 s" in message and "internet" in message and "PUBLIC_URL" in message
    if mode == "offline":
        assert "no such host" in message
    assert gone(agent_starts(tmp_path)[0]["pid"])


def test_missing_binary_and_failed_download_maps_to_install_error(make_tunnel, monkeypatch, tmp_path):
    import pyngrok.installer

    attempts = []

    def refuse(url, *args, **kwargs):
        attempts.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(pyngrok.installer, "_download_file", refuse)
    tunnel = make_tunnel(ngrok_path=str(tmp_path / "nowhere" / "ngrok"))
    with pytest.raises(TunnelInstallError) as info:
        tunnel.open(8777)
    message = str(info.value)
    assert "ngrok is not installed and could not be downloaded: no internet?" in message
    assert "PYNGROK_NGROK_PATH" in message and "PUBLIC_URL" in message
    assert len(attempts) == 1


def test_ngrok_path_from_the_environment(monkeypatch, ngrok_bin):
    monkeypatch.setenv("PYNGROK_NGROK_PATH", str(ngrok_bin))
    tunnel = labkit.live.tunnel.tunnel.Tunnel(Settings(ngrok_authtoken=TOKEN))
    assert tunnel.ngrok_path == str(ngrok_bin)
    config = tunnel.pyngrok_config()
    assert config.start_new_session is True and config.ngrok_path == str(ngrok_bin)
    assert config.auth_token is None and TOKEN in Path(config.config_path).read_text()


def test_an_authtoken_only_in_the_environment_stays_off_the_command_line(monkeypatch, ngrok_bin):
    """PyngrokConfig reads NGROK_AUTHTOKEN itself and would pass it as --authtoken."""
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    config = labkit.live.tunnel.tunnel.Tunnel(Settings(), ngrok_path=str(ngrok_bin)).pyngrok_config()
    assert config.auth_token is None
    assert stat.S_IMODE(Path(config.config_path).stat().st_mode) == 0o600


def test_the_users_ngrok_config_is_kept_in_the_agent_config(make_tunnel, tmp_path):
    import yaml

    (tmp_path / "ngrok.yml").write_text("version: '3'\nagent:\n  region: eu\n")
    config = make_tunnel().pyngrok_config()
    data = yaml.safe_load(Path(config.config_path).read_text())
    assert data["agent"] == {"region": "eu", "authtoken": TOKEN}
    assert "authtoken" not in (tmp_path / "ngrok.yml").read_text()  # the user's own file is untouched


def test_a_reason_printed_just_before_the_agent_quits_is_never_lost(make_tunnel, monkeypatch, tmp_path):
    """pyngrok stops reading as soon as the agent has exited; the lines it left in the pipe hold the
    reason. Simulate the worst schedule (pyngrok saw no error line at all) and the reason is still found."""
    from pyngrok import process
    from pyngrok.exception import PyngrokNgrokError

    monkeypatch.setenv("FAKE_NGROK_MODE", "echo_token")

    def quits_before_reading(config):
        subprocess.run([config.ngrok_path, "start", "--none", "--log", "stdout", "--config", config.config_path],
                       stdout=subprocess.DEVNULL)
        raise PyngrokNgrokError("The ngrok process was unable to start.", [], None)

    monkeypatch.setattr(process, "_start_process", quits_before_reading)
    with pytest.raises(TunnelAuthtokenInvalidError) as info:
        make_tunnel().open(8779)
    assert info.value.ngrok_error_code == "ERR_NGROK_105" and TOKEN not in str(info.value)
    assert not any(TOKEN in line for line in info.value.agent_log)


def test_the_authtoken_is_redacted_from_pyngrok_logs(make_tunnel, monkeypatch, caplog):
    """The real agent echoes an unparseable token (ERR_NGROK_105); it must not reach logs or errors."""
    monkeypatch.setenv("FAKE_NGROK_MODE", "echo_token")
    with caplog.at_level(logging.INFO, logger="pyngrok"), pytest.raises(TunnelAuthtokenInvalidError) as info:
        make_tunnel().open(8778)
    assert "ERR_NGROK_105" in str(info.value)
    assert TOKEN not in str(info.value) and not any(TOKEN in line for line in info.value.agent_log)
    assert caplog.records and not any(TOKEN in record.getMessage() for record in caplog.records)


def test_a_plain_http_url_is_refused(make_tunnel, monkeypatch):
    from pyngrok import ngrok

    monkeypatch.setenv("FAKE_NGROK_SCHEME", "http")
    tunnel = make_tunnel()
    with pytest.raises(TunnelError, match="https"):
        tunnel.open(8780)
    assert ngrok.get_tunnels(tunnel.pyngrok_config()) == []


def test_invalid_port_is_refused(make_tunnel):
    with pytest.raises(TunnelError):
        make_tunnel().open(0)


def test_kill_agents_stops_an_agent_left_by_a_dead_kernel(ngrok_bin, tmp_path):
    """`labkit tunnel kill`: pids in the state dir are stopped, but only if they really are agents."""
    orphan = subprocess.Popen([str(ngrok_bin), "start", "--none", "--log", "stdout", "--authtoken", TOKEN],
                              stdout=subprocess.DEVNULL, start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        labkit.live.tunnel.processes.remember_agent(orphan.pid, str(ngrok_bin))
        labkit.live.tunnel.processes.remember_agent(bystander.pid, str(ngrok_bin))
        assert labkit.live.tunnel.tunnel.kill_agents() == [orphan.pid]
        assert gone(orphan.pid)
        assert bystander.poll() is None, "kill_agents() must not touch a process that is not an agent"
    finally:
        for proc in (orphan, bystander):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
    assert labkit.live.tunnel.tunnel.kill_agents() == []


@pytest.mark.parametrize(
    ("make_error", "expected"),
    [
        (lambda e: e.PyngrokNgrokInstallError("boom"), TunnelInstallError),
        (lambda e: e.PyngrokNgrokError("x", None, "failed: ERR_NGROK_107"), TunnelAuthtokenInvalidError),
        (lambda e: e.PyngrokNgrokError("x", None, "ERR_NGROK_108"), TunnelSessionLimitError),
        (lambda e: e.PyngrokNgrokURLError("ngrok client exception, URLError: timed out", "timed out"), TunnelError),
        (lambda e: e.PyngrokNgrokError("The ngrok process was unable to start."), TunnelError),
        (lambda e: e.PyngrokError("something else"), TunnelError),
    ],
)
def test_translate_error_mapping(make_error, expected):
    import pyngrok.exception

    error = labkit.live.tunnel.tunnel.translate_error(make_error(pyngrok.exception), startup_timeout=15, elapsed=0.1)
    assert type(error) is expected
    assert str(error)


def test_an_agent_that_quits_early_is_not_called_a_timeout():
    from pyngrok.exception import PyngrokNgrokError

    quick = labkit.live.tunnel.tunnel.translate_error(PyngrokNgrokError("The ngrok process was unable to start."),
                                          startup_timeout=15, elapsed=0.2)
    slow = labkit.live.tunnel.tunnel.translate_error(PyngrokNgrokError("The ngrok process was unable to start."),
                                         startup_timeout=15, elapsed=15.1)
    assert not isinstance(quick, TunnelTimeoutError)
    assert isinstance(slow, TunnelTimeoutError)


def test_the_fake_agent_speaks_the_cli_commands_pyngrok_uses(ngrok_bin, tmp_path):
    def run(*args: str) -> str:
        return subprocess.run([str(ngrok_bin), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout

    assert "ngrok version" in run("--version")
    assert "Authtoken saved" in run("config", "add-authtoken", TOKEN, "--log", "stdout")
    assert "API key saved" in run("config", "add-api-key", "key", "--log", "stdout")


def test_the_fake_agent_api(make_tunnel):
    tunnel = make_tunnel()
    url = tunnel.open(8779)
    from pyngrok import ngrok

    api = ngrok.get_ngrok_process(tunnel.pyngrok_config()).api_url
    listing = json.load(urlopen(f"{api}/api/endpoints", timeout=5))
    (endpoint,) = listing["endpoints"]
    assert endpoint["url"] == endpoint["public_url"] == url
    assert endpoint["upstream"]["url"] == "http://localhost:8779"
    assert endpoint["uri"] == f"/api/endpoints/{endpoint['name']}"
    assert json.load(urlopen(f"{api}/api/tunnels", timeout=5))["tunnels"][0]["public_url"] == url


def test_ngrok_domain_keeps_the_same_url_across_restarts(make_tunnel):
    """NGROK_DOMAIN: the agent is asked for the reserved domain, so the URL survives a lab restart."""
    settings = Settings(ngrok_authtoken=TOKEN, ngrok_domain="my-lab.ngrok.app")
    random_url = make_tunnel().open(8772)  # a tunnel from before NGROK_DOMAIN was set is not reused
    assert "my-lab" not in random_url
    first = make_tunnel(settings)
    url = first.open(8772)
    assert url == "https://my-lab.ngrok.app"
    first.close()
    assert make_tunnel(settings).open(8772) == url
