"""Modes for clients that cannot be pointed at https on another port: `--http` and `--vonage-hostnames`.

The real test of the host names runs Vonage's Python SDK with its default hosts (api.nexmo.com) inside a
private network and mount namespace (`unshare -mn`), where /etc/hosts maps Vonage's names to 127.0.0.1
and the sandbox listens on 443. It needs root (or the capabilities to unshare) and skips otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from test_sandbox_standalone import node_sdk  # noqa: F401 - the fixture (npm-installed @vonage/server-sdk)


def app_jwt(sb) -> str:
    now = int(time.time())
    claims = {"application_id": sb.application_id, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, Path(sb.private_key_path).read_bytes(), algorithm="RS256")


def test_http_mode_serves_the_voice_api_and_the_control_api_in_plain_http(tmp_path):
    from labkit.sandbox import Sandbox

    with Sandbox(speed=10, home=tmp_path, http=True) as sb:
        assert sb.base_url.startswith("http://127.0.0.1:")
        assert requests.get(f"{sb.base_url}/_labkit/application", timeout=10).json()["number"] == sb.number
        sb.phone("447700900401").set(answer_after=0)
        r = requests.post(f"{sb.base_url}/v1/calls", timeout=10, headers={"Authorization": f"Bearer {app_jwt(sb)}"},
                          json={"to": [{"type": "phone", "number": "447700900401"}],
                                "from": {"type": "phone", "number": sb.number}, "event_url": ["http://127.0.0.1:9/e"],
                                "ncco": [{"action": "record", "timeOut": 3, "format": "wav"}]})
        assert r.status_code == 201
        call = sb.call(r.json()["uuid"])
        assert call.wait(lambda c: any("recording_url" in e for e in c.events), timeout=20)
        url = next(e["recording_url"] for e in call.events if "recording_url" in e)
        assert url.startswith(f"{sb.base_url}/v1/files/")
        got = requests.get(url, headers={"Authorization": f"Bearer {app_jwt(sb)}"}, timeout=10)
        assert got.status_code == 200 and got.content[:4] == b"RIFF"


def _handshake(port: int, name: str, ca: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name):
                return True
    except ssl.SSLCertVerificationError:
        return False


def test_vonage_hostnames_certificate_and_recording_urls(tmp_path):
    """The certificate covers the hosts Vonage's clients hard-code (vonage-platform.md section 9), and
    recording URLs use api.nexmo.com so the SDKs' own download checks accept them."""
    from labkit.sandbox import Sandbox

    with Sandbox(speed=10, home=tmp_path, vonage_hostnames=True) as sb:
        for name in ("api.nexmo.com", "rest.nexmo.com", "api.vonage.com", "api-us-3.vonage.com",
                     "api-eu.vonage.com", "api-sg-1.nexmo.com"):
            assert _handshake(sb.port, name, sb.ca_path), name
        assert not _handshake(sb.port, "example.com", sb.ca_path)
        assert sb.vonage_base_url == f"https://api.nexmo.com:{sb.port}"
        assert sb._platform.files_base == sb.vonage_base_url
        # region_url: the real regional host name of the application's region [OAS-APP] (api-us-3 without one)
        from types import SimpleNamespace

        from labkit.sandbox.engine.regions import region_url_for

        assert sb.region_url == f"https://api-us-3.vonage.com:{sb.port}"
        eu, _key = sb.account.create({"name": "eu", "capabilities": {"voice": {"region": "eu-west", "webhooks": {
            "answer_url": {"address": "https://example.com/a"}, "event_url": {"address": "https://example.com/e"}}}}})
        leg = SimpleNamespace(application_id=eu.id)
        assert region_url_for(sb._platform, leg) == f"https://api-eu-3.vonage.com:{sb.port}"
    with Sandbox(speed=10, home=tmp_path) as plain:  # the default certificate stays 127.0.0.1/localhost only
        assert not _handshake(plain.port, "api.nexmo.com", plain.ca_path)
        assert plain.region_url.startswith("https://127.0.0.1:") and plain.region_url != plain.base_url
        assert requests.get(f"{plain.region_url}/_labkit/application", verify=str(plain.ca_path),
                            timeout=10).json()["number"] == plain.number  # the same API at its second address


NAMESPACE_SCRIPT = textwrap.dedent(r"""
    import json, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path
    from labkit.sandbox import Sandbox

    home = Path(sys.argv[1])
    events = []
    got = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            events.append(body)
            if "recording_url" in body:
                got.set()
            self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()

    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{hooks.server_address[1]}"
    sb = Sandbox(port=443, speed=10, home=home, vonage_hostnames=True).start()
    sb.configure(event_url=hook_url + "/event")
    sb.trust()
    sb.phone("447700900402").set(answer_after=0)
    from vonage import Auth, Vonage
    from vonage_voice import CreateCallRequest, Phone, Record, ToPhone
    client = Vonage(Auth(application_id=sb.application_id, private_key=str(sb.private_key_path)))  # default hosts
    created = client.voice.create_call(CreateCallRequest(
        to=[ToPhone(number="447700900402")], from_=Phone(number=sb.number),
        ncco=[Record(timeOut=3, format="wav", eventUrl=[hook_url + "/rec"])]))
    ok = got.wait(30)
    url = next(e["recording_url"] for e in events if "recording_url" in e)
    target = home / "downloaded.wav"
    client.voice.download_recording(url, str(target))  # the SDK's own check: a Vonage host name
    same = target.read_bytes() == sb.recording_path(url).read_bytes()
    status = client.voice.get_call(created.uuid).status
    node = {}
    if len(sys.argv) > 2:  # Vonage's Node SDK, default hosts too: download that recording, place a call
        import os, subprocess
        env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(sb.ca_path)}
        target = home / "node.wav"
        run = subprocess.run(["node", "hosts.js", sb.application_id, str(sb.private_key_path), url, str(target),
                              sb.number], cwd=sys.argv[2], env=env, capture_output=True, text=True, timeout=60)
        uuid = run.stdout.strip().splitlines()[-1] if run.returncode == 0 else ""
        node = {"rc": run.returncode, "err": run.stderr[-800:], "uuid": uuid,
                "same": target.is_file() and target.read_bytes() == sb.recording_path(url).read_bytes(),
                "known": bool(uuid) and sb.call(uuid).to_address == "447700900403"}
    sb.stop(); hooks.shutdown()
    print(json.dumps({"ok": ok, "url": url, "same": same, "status": status, "port": sb.port, "node": node}))
""")

NODE_HOSTS_SCRIPT = r"""
const { Vonage } = require('@vonage/server-sdk');
const [applicationId, privateKey, url, path, from] = process.argv.slice(2);
const vonage = new Vonage({ applicationId, privateKey });  // no apiHost: https://api.nexmo.com
(async () => {
  await vonage.voice.downloadRecording(url, path);
  const created = await vonage.voice.createOutboundCall({
    to: [{ type: 'phone', number: '447700900403' }], from: { type: 'phone', number: from },
    ncco: [{ action: 'talk', text: 'Hello from Node' }] });
  console.log(created.uuid);
})().catch((err) => { console.error(err); process.exit(1); });
"""


def _namespace_skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if not shutil.which("unshare") or not shutil.which("ip") or not shutil.which("mount"):
        return "unshare, ip and mount are needed (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "-mn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network and mount namespace here (needs root): {probe.stderr.strip()}"
    return None


def test_unchanged_clients_reach_the_sandbox_by_vonage_host_names_in_a_namespace(tmp_path, request):
    """Python SDK (and the Node SDK where node is present) with their default hosts, unchanged."""
    reason = _namespace_skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        node_dir = request.getfixturevalue("node_sdk")  # from test_sandbox_standalone
        (node_dir / "hosts.js").write_text(NODE_HOSTS_SCRIPT)
    except pytest.skip.Exception:
        node_dir = None
    hosts = tmp_path / "hosts"
    names = "api.nexmo.com rest.nexmo.com api.vonage.com api-us-3.vonage.com api-eu-3.vonage.com"
    hosts.write_text(f"127.0.0.1 localhost {names}\n::1 localhost\n")
    script = tmp_path / "inside.py"
    script.write_text(NAMESPACE_SCRIPT)
    home = tmp_path / "home"
    home.mkdir()
    inner = f"ip link set lo up && mount --bind {hosts} /etc/hosts && exec {sys.executable} {script} {home}"
    if node_dir is not None:
        inner += f" {node_dir}"
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "https_proxy")}
    proc = subprocess.run(["unshare", "-mn", "sh", "-c", inner], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["same"] and result["port"] == 443
    assert result["url"].startswith("https://api.nexmo.com/v1/files/")
    assert result["status"] in ("answered", "completed")
    if node_dir is not None:
        node = result["node"]
        assert node["rc"] == 0, node["err"]
        assert node["same"] and node["known"]  # downloadRecording's host check passed; the call reached us
