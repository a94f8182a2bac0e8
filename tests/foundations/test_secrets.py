"""No secret ever shows: a whole live-mode session (settings, doctor, tunnel, a live lab started and stopped,
every error it raises) is run with known secret values, and every repr, log line, printed line and error
message it produced is searched for each of them."""

from __future__ import annotations

import gc
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from labkit.errors import LabkitError

# Objects whose repr another issue makes safe (the integrator drops the entry when it is merged).
OWNED_ELSEWHERE: dict[str, str] = {}  # classes whose repr is checked elsewhere (none today)


class Everything(logging.Handler):
    """Every log record of every logger, formatted as a handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs():
    handler = Everything()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(exc_text)s"))
    root, pyngrok = logging.getLogger(), logging.getLogger("pyngrok")
    levels = root.level, pyngrok.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    pyngrok.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(levels[0])
    pyngrok.setLevel(levels[1])


def labkit_reprs() -> list[tuple[str, str]]:
    """repr() of every live object of a labkit class (the lab, its parts, settings, tunnels, events...)."""
    out = []
    frozen = gc.get_freeze_count() > 0  # a running sandbox froze start-up objects (sandbox/heap.py):
    if frozen:  # gc.get_objects() lists only the others, so see them all for the while
        gc.unfreeze()
    objects = gc.get_objects()
    if frozen:
        gc.freeze()
    for obj in objects:
        cls = type(obj)
        module = cls.__dict__.get("__module__") if isinstance(cls.__dict__.get("__module__"), str) else ""
        name = f"{module}.{cls.__qualname__}"
        if not module.startswith("labkit") or name in OWNED_ELSEWHERE or isinstance(obj, type):
            continue
        try:
            out.append((name, repr(obj)))
        except Exception:  # noqa: BLE001 - a half-built object; nothing to show
            continue
    return out


def test_no_secret_in_any_repr_log_line_output_or_error(monkeypatch, tmp_path, capsys, all_logs):
    import pyngrok.conf
    import pyngrok.installer
    from support.fake_ngrok import write_launcher

    from labkit import cli
    from labkit.config import Settings, load_private_key
    from labkit.lab.facade import Lab
    from labkit.live.tunnel.tunnel import Tunnel, kill_agents

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    body = "".join(pem.splitlines()[1:-1])
    secrets = {
        "key body": body,
        "key line": pem.splitlines()[5],
        "signature secret": "sig-SECRET-0123456789abcdef",
        "authtoken": "2ngrokSECRETtoken_abcdefghijklmnop",
    }
    errors: list[str] = []
    monkeypatch.setattr(pyngrok.installer, "_download_file", lambda *a, **k: (_ for _ in ()).throw(OSError("off")))
    monkeypatch.setattr(pyngrok.conf, "DEFAULT_NGROK_CONFIG_PATH", str(tmp_path / "ngrok" / "ngrok.yml"))
    monkeypatch.setenv("PYNGROK_NGROK_PATH", str(write_launcher(tmp_path / "bin")))
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    env = {"LABKIT_MODE": "live", "VONAGE_APPLICATION_ID": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
           "VONAGE_NUMBER": "447700900000", "VONAGE_SIGNATURE_SECRET": secrets["signature secret"],
           "NGROK_AUTHTOKEN": secrets["authtoken"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    # 1. keys pasted wrongly: bare base64, a typo in the PEM armour, a damaged body
    for bad in (body, pem.replace("BEGIN", "BEGN"), pem.replace(pem.splitlines()[5], pem.splitlines()[5][::-1])):
        monkeypatch.setenv("VONAGE_PRIVATE_KEY", bad)
        settings = Settings.load()
        errors += settings.problems()
        with pytest.raises(LabkitError) as info:
            load_private_key(bad)
        errors.append(str(info.value))
        assert "characters" in str(info.value)  # the kind and the length are shown instead
        with pytest.raises(LabkitError) as info:
            settings.require_live()
        errors.append(str(info.value))
        cli.main(["doctor", "--no-server"])
        kill_agents()  # the next doctor or tunnel must start its own agent

    # 2. the agent refuses the token and echoes it back (ERR_NGROK_105)
    monkeypatch.setenv("VONAGE_PRIVATE_KEY", pem)
    monkeypatch.setenv("FAKE_NGROK_MODE", "echo_token")
    with pytest.raises(LabkitError) as info:
        Tunnel(Settings.load(), startup_timeout=10).open(8790)
    errors += [str(info.value), *getattr(info.value, "agent_log", [])]
    cli.main(["doctor"])
    kill_agents()

    # 3. a live lab (PUBLIC_URL: no ngrok), started and stopped beside any shared lab
    monkeypatch.setenv("PUBLIC_URL", "https://lab.example.test")
    lab = Lab(Settings.load(), quiet=True)
    lab._start()
    try:
        errors += [lab.describe(), repr(lab), lab._repr_html_(), repr(lab.settings), str(lab.settings)]
        reprs = labkit_reprs()
    finally:
        lab.stop()

    printed = capsys.readouterr()
    haystacks = {"repr": [f"{n}: {r}" for n, r in reprs], "log": all_logs, "error": errors,
                 "output": [printed.out, printed.err]}
    assert reprs and all_logs and errors
    leaks = [f"{what} in a {kind}: {text[:120]!r}" for what, secret in secrets.items()
             for kind, texts in haystacks.items() for text in texts if secret in text]
    assert not leaks, "\n".join(leaks)
