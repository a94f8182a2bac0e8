"""Clients with hard-coded Vonage hosts against `labkit sandbox --vonage-proxy`, all as a user without root.

The sandbox (its own process) and every client run as `nobody` (setpriv) when the tests run as root, else
as the current user: no port 443, no hosts entry, no namespace. Each client gets only the environment the
sandbox wrote with `--env-file` (the lines its banner prints):
- curl and Vonage's Python SDK with its default hosts (api.nexmo.com), through the CONNECT proxy
  (`HTTPS_PROXY`);
- the `nexmo` 2.x Node package, Vonage's Node SDK without apiHost and Node-RED with node-red-contrib-nexmo
  3.1.1 (which pins nexmo 2.4.0, hosts fixed), through the Node preload (`NODE_OPTIONS=--require
  vonage_hosts.cjs`): Node's https module ignores `HTTPS_PROXY`;
- the proxy refuses every other host and port, including a service on this machine.
And the namespace way without root: `unshare -rmn`, the sandbox on the namespace's own 443, nexmo 2.x as is.
Node tests skip without node/npm or when npm cannot install the packages (offline); the installs are kept
in .pytest_cache as the other Node tests keep theirs.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import requests
from support.npm import npm_folder
from support.sandbox_process import SandboxProcess
from support.webhook_app import WebhookApp
from test_sandbox_legacy_node import _install as install_nexmo
from test_sandbox_standalone import node_sdk  # noqa: F401 - the fixture (npm-installed @vonage/server-sdk)

REPO = Path(__file__).resolve().parents[2]
SPEED = 10
NODE_RED = ("node-red@4.1.15", "node-red-contrib-nexmo@3.1.1")


@functools.cache
def _unprivileged() -> tuple[list[str], str | None]:
    if os.geteuid() != 0:
        return [], None
    if not shutil.which("setpriv"):
        return [], "setpriv (util-linux) is needed to run the clients as a user without root"
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import labkit.sandbox, vonage"], cwd="/",
                           capture_output=True, text=True)
    if probe.returncode != 0:  # e.g. a checkout in a folder only root may enter
        return [], f"the user nobody cannot run this checkout's Python ({REPO}): {probe.stderr.strip()[-300:]}"
    return prefix, None


def as_user() -> list[str]:
    """The prefix that runs a command as a user without root: `nobody` when the tests run as root."""
    prefix, reason = _unprivileged()
    if reason:
        pytest.skip(reason)
    return prefix


def give(*paths: Path) -> None:
    """Hand `paths` to the user the clients run as (nobody when the tests run as root)."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in paths:
            os.lchown(path, nobody.pw_uid, nobody.pw_gid)


@pytest.fixture(scope="module")
def shared():
    """A folder the unprivileged user owns (pytest's tmp_path is root's only): the sandbox's home, the env
    file, Node-RED's user folder."""
    folder = Path(tempfile.mkdtemp(prefix="labkit-noroot-"))
    folder.chmod(0o755)
    (folder / "home").mkdir()
    give(folder, folder / "home")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def app():
    server = WebhookApp()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sb(shared, app, tmp_path_factory):
    # The environment a user's shell may carry from elsewhere: a CA bundle they cannot read (here root's,
    # under a folder only root may enter, as pytest-xdist workers that ran other sandboxes have it). The
    # sandbox passes over it instead of failing to start.
    private = tmp_path_factory.mktemp("root-only")
    (private / "bundle.pem").write_text("not for nobody\n")
    private.chmod(0o700)
    home_env = {"HOME": str(shared), "LABKIT_HOME": str(shared / "state"),
                "REQUESTS_CA_BUNDLE": str(private / "bundle.pem")}
    proc = SandboxProcess(shared / "home", "--vonage-proxy", "--env-file", str(shared / "vonage.env"),
                          "--event-url", f"{app.url}/event", "--answer-url", f"{app.url}/answer",
                          speed=SPEED, env=home_env, wrapper=as_user())
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client_env(sb, shared) -> dict[str, str]:
    """What a user's shell has after `. vonage.env`: the file the sandbox wrote, on a bare environment."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(shared), "LANG": "C.UTF-8"}
    for line in (shared / "vonage.env").read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
    return env


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`cmd` as the unprivileged user, with only `env`."""
    return subprocess.run([*as_user(), *cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def phone(sb: SandboxProcess, number: str) -> None:
    sb.request("POST", "phones", json={"number": number, "answer_after": 0})


def answered(app: WebhookApp, uuid: str) -> dict:
    """The `answered` event the sandbox posted to the application's event_url for that call."""
    return app.wait_for(lambda h: h.fields.get("uuid") == uuid and h.fields.get("status") == "answered").fields


def proxy_says(env: dict[str, str], request: bytes) -> bytes:
    """What the proxy (`HTTPS_PROXY` of `env`) answers to `request`: its reply's head, as a raw socket sees it."""
    proxy = env["HTTPS_PROXY"].rsplit(":", 1)
    with socket.create_connection(("127.0.0.1", int(proxy[1])), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_the_env_file_is_what_the_banner_prints(sb, client_env):
    printed = "".join(sb.output)
    for name in ("HTTPS_PROXY", "NODE_OPTIONS", "LABKIT_VONAGE_HOSTS_TO", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"):
        assert f"export {name}=" in printed
    assert client_env["LABKIT_VONAGE_HOSTS_TO"] == sb.host
    assert client_env["NODE_OPTIONS"].endswith("labkit/sandbox/wire/vonage_hosts.cjs")
    assert sb.request("GET", "application").json()["number"] == sb.rows["number"]


PYTHON_SCRIPT = """
import sys
from vonage import Auth, Vonage
from vonage_voice import CreateCallRequest, Phone, Record, Talk, ToPhone
step, application_id, key, *rest = sys.argv[1:]
client = Vonage(Auth(application_id=application_id, private_key=key))  # default hosts: api.nexmo.com
if step == "call":
    number, recorded = rest
    made = client.voice.create_call(CreateCallRequest(to=[ToPhone(number="447700900502")], from_=Phone(number=number),
        ncco=[Talk(text="Hello from Python"), Record(timeOut=3, format="wav", eventUrl=[recorded])]))
    print(made.uuid)
else:
    url, target = rest
    client.voice.download_recording(url, target)  # the SDK's own check: a Vonage host name
"""


def test_curl_and_the_python_sdk_with_default_hosts_through_the_proxy(sb, app, client_env):
    phone(sb, "447700900501")
    phone(sb, "447700900502")
    body = json.dumps({"to": [{"type": "phone", "number": "447700900501"}],
                       "from": {"type": "phone", "number": sb.rows["number"]},
                       "ncco": [{"action": "talk", "text": "Hello from curl"}]})
    curl = run(["curl", "-sS", "-X", "POST", "https://api.nexmo.com/v1/calls", "-H", "Content-Type: application/json",
                "-H", f"Authorization: {sb.bearer()['Authorization']}", "-d", body], client_env)
    assert curl.returncode == 0, curl.stderr
    assert answered(app, json.loads(curl.stdout)["uuid"])["to"] == "447700900501"

    py = run([sys.executable, "-c", PYTHON_SCRIPT, "call", sb.rows["application id"], sb.rows["private key"],
              sb.rows["number"], f"{app.url}/recorded"], client_env)
    assert py.returncode == 0, py.stderr[-2000:]
    assert answered(app, py.stdout.split()[-1])["to"] == "447700900502"
    # the recording URL is Vonage's own (no port); the SDK's download_recording fetches it through the proxy
    url = app.wait_for(lambda h: h.path == "/recorded" and "recording_url" in h.fields).fields["recording_url"]
    assert url.startswith("https://api.nexmo.com/v1/files/")
    target = Path(client_env["HOME"]) / "recording.wav"
    py = run([sys.executable, "-c", PYTHON_SCRIPT, "download", sb.rows["application id"], sb.rows["private key"],
              url, str(target)], client_env)
    assert py.returncode == 0, py.stderr[-2000:]
    direct = sb.raw("GET", url.removeprefix("https://api.nexmo.com"), headers=sb.bearer())
    assert direct.status_code == 200 and target.read_bytes() == direct.content and direct.content[:4] == b"RIFF"


def test_the_proxy_refuses_every_other_host_and_port(sb, app, client_env):
    """Never an open proxy: another host, another port, this machine's own services, plain proxying."""
    for target in ("example.com:443", "api.nexmo.com:22", "api.nexmo.com.evil.example:443", "nexmo.com:443",
                   f"127.0.0.1:{app.url.rsplit(':', 1)[1]}"):
        hits = len(app.hits)
        smuggled = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\nGET / HTTP/1.1\r\n\r\n"
        reply = proxy_says(client_env, smuggled.encode())
        assert reply.startswith(b"HTTP/1.1 403 "), (target, reply)
        assert b"NO_PROXY" in reply
        assert len(app.hits) == hits  # the local web app never saw the request smuggled after the CONNECT
    for request in (b"GET http://api.nexmo.com/v1/calls HTTP/1.1\r\nHost: api.nexmo.com\r\n\r\n", b"garbage\r\n\r\n"):
        assert proxy_says(client_env, request).startswith(b"HTTP/1.1 403 ")
    assert proxy_says(client_env, b"CONNECT API.Nexmo.com.:443 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    # what a user sees: curl names the refusal
    curl = run(["curl", "-sS", "https://example.com/"], client_env)
    assert curl.returncode != 0 and "403" in curl.stderr


JAVA_SOURCE = """
import java.net.*;
import java.net.http.*;

public class Call {
    public static void main(String[] args) throws Exception {
        String auth = args[0], body = args[1];
        HttpClient client = HttpClient.newHttpClient();  // its default proxy selector reads https.proxyHost
        HttpResponse<String> made = client.send(HttpRequest.newBuilder(URI.create("https://api.nexmo.com/v1/calls"))
            .header("Authorization", auth).header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        String uuid = made.body().replaceAll(".*\\"uuid\\": *\\"([^\\"]+)\\".*", "$1");
        HttpURLConnection get = (HttpURLConnection) new URL("https://api.nexmo.com/v1/calls/" + uuid).openConnection();
        get.setRequestProperty("Authorization", auth);
        System.out.println(made.statusCode() + " " + get.getResponseCode() + " " + uuid);
    }
}
"""


def test_java_with_its_proxy_properties(sb, app, client_env, shared):
    """Java ignores HTTPS_PROXY; JAVA_TOOL_OPTIONS from the env file carries its own proxy properties, and
    the CA goes into a truststore with keytool (README). java.net.http and HttpURLConnection, unchanged."""
    if not shutil.which("java") or not shutil.which("keytool"):
        pytest.skip("java and keytool are not installed (a JDK 11 or newer)")
    store = shared / "trust.p12"
    keytool = run(["keytool", "-importcert", "-noprompt", "-alias", "labkit-sandbox", "-file",
                   client_env["NODE_EXTRA_CA_CERTS"], "-keystore", str(store), "-storetype", "PKCS12",
                   "-storepass", "changeit"], client_env)
    assert keytool.returncode == 0, keytool.stderr
    source = shared / "Call.java"
    source.write_text(JAVA_SOURCE)
    give(source)
    env = {**client_env, "JAVA_TOOL_OPTIONS": client_env["JAVA_TOOL_OPTIONS"]
           + f" -Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStorePassword=changeit"}
    phone(sb, "447700900507")
    body = json.dumps({"to": [{"type": "phone", "number": "447700900507"}],
                       "from": {"type": "phone", "number": sb.rows["number"]},
                       "ncco": [{"action": "talk", "text": "Hello from Java"}]})
    java = run(["java", str(source), sb.bearer()["Authorization"], body], env)
    assert java.returncode == 0, java.stderr[-2000:]
    created, got, uuid = java.stdout.split()[-3:]
    assert (created, got) == ("201", "200")
    assert answered(app, uuid)["to"] == "447700900507"


NEXMO_SCRIPT = r"""
const Nexmo = require('nexmo');
const [apiKey, apiSecret, applicationId, privateKey, to, from] = process.argv.slice(2);
const nexmo = new Nexmo({ apiKey, apiSecret, applicationId, privateKey });  // hosts fixed: api.nexmo.com:443
const step = (name, fn) => new Promise((resolve, reject) =>
  fn((err, res) => err ? reject(new Error(name + ': ' + JSON.stringify(err))) : resolve(res)));
(async () => {
  const app = await step('applications.create', cb => nexmo.applications.create(
    'made by nexmo 2.x', 'voice', 'https://example.com/answer', 'https://example.com/event', {}, cb));
  const call = await step('calls.create', cb => nexmo.calls.create({
    to: [{ type: 'phone', number: to }], from: { type: 'phone', number: from },
    ncco: [{ action: 'talk', text: 'Hello from nexmo 2' }] }, cb));
  console.log(JSON.stringify({ app: app.id, call: call.uuid }));
})().catch((err) => { console.error(String(err)); process.exit(1); });
"""


def test_the_nexmo_2_package_with_its_fixed_hosts_through_the_node_preload(sb, app, client_env):
    folder = install_nexmo("2.4.2")
    (folder / "noroot.js").write_text(NEXMO_SCRIPT)
    phone(sb, "447700900503")
    proc = run(["node", "noroot.js", sb.rows["API key"], sb.rows["API secret"], sb.rows["application id"],
                sb.rows["private key"], "447700900503", sb.rows["number"]], client_env, cwd=folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    made = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answered(app, made["call"])["to"] == "447700900503"
    got = sb.raw("GET", f"/v2/applications/{made['app']}", auth=(sb.rows["API key"], sb.rows["API secret"]))
    assert got.status_code == 200 and got.json()["name"] == "made by nexmo 2.x"


NODE_SDK_SCRIPT = r"""
const { Vonage } = require('@vonage/server-sdk');
const [applicationId, privateKey, to, from] = process.argv.slice(2);
const vonage = new Vonage({ applicationId, privateKey });  // no apiHost: https://api.nexmo.com
vonage.voice.createOutboundCall({ to: [{ type: 'phone', number: to }], from: { type: 'phone', number: from },
                                  ncco: [{ action: 'talk', text: 'Hello from the Node SDK' }] })
  .then((made) => console.log(made.uuid))
  .catch((err) => { console.error(err); process.exit(1); });
"""


def test_vonage_node_sdk_with_its_default_hosts_through_the_node_preload(sb, app, client_env, node_sdk):  # noqa: F811
    (node_sdk / "noroot.js").write_text(NODE_SDK_SCRIPT)
    phone(sb, "447700900505")
    proc = run(["node", "noroot.js", sb.rows["application id"], sb.rows["private key"], "447700900505",
                sb.rows["number"]], client_env, cwd=node_sdk)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert answered(app, proc.stdout.split()[-1])["to"] == "447700900505"


def install_node_red() -> Path:
    return npm_folder("node-red", NODE_RED)


def node_red_flow(sb: SandboxProcess, app: WebhookApp, to: str) -> tuple[list, dict]:
    """An inject node wired to node-red-contrib-nexmo's "Create Call" node, and its credentials (the
    application made on the sandbox), as the editor saves them with credentialSecret off."""
    flow = [
        {"id": "tab", "type": "tab", "label": "calls"},
        {"id": "creds", "type": "nexmovoiceapp", "name": "sandbox"},
        {"id": "go", "type": "inject", "z": "tab", "props": [{"p": "payload"}], "payload": "", "payloadType": "date",
         "repeat": "", "once": False, "wires": [["call"]]},
        {"id": "call", "type": "createcall", "z": "tab", "creds": "creds", "endpoint": "phone", "to": to,
         "from": sb.rows["number"], "answertype": "json",
         "answer": json.dumps([{"action": "talk", "text": "Hello from Node-RED"}]),
         "eventurl": f"{app.url}/event", "eventmethod": "POST", "machinedetection": "", "contenttype": "",
         "headers": "{}", "wsuri": "", "sipuri": "", "extension": "", "ringingtimer": "", "lengthtimer": "",
         "dtmfanswer": "", "wires": [[]]},
    ]
    creds = {"creds": {"apikey": sb.rows["API key"], "apisecret": sb.rows["API secret"],
                       "appid": sb.rows["application id"], "privatekey": Path(sb.rows["private key"]).read_text()}}
    return flow, creds


def test_node_red_flow_and_create_application_button_through_the_node_preload(sb, app, client_env, shared):
    folder = install_node_red()
    user_dir = shared / "node-red"
    user_dir.mkdir()
    flow, creds = node_red_flow(sb, app, "447700900504")
    (user_dir / "flows.json").write_text(json.dumps(flow))
    (user_dir / "flows_cred.json").write_text(json.dumps(creds))
    (user_dir / "settings.js").write_text('module.exports = { uiHost: "127.0.0.1", uiPort: 0, flowFile: '
                                          '"flows.json", credentialSecret: false };\n')
    (user_dir / "node_modules").symlink_to(folder / "node_modules")  # as `npm install` in ~/.node-red
    give(user_dir, *user_dir.iterdir())
    phone(sb, "447700900504")
    red = subprocess.Popen([*as_user(), "node", str(folder / "node_modules" / "node-red" / "red.js"),
                            "--userDir", str(user_dir), "--settings", str(user_dir / "settings.js")],
                           env=client_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    started = threading.Event()

    def read() -> None:  # all of Node-RED's log, so its pipe never fills
        assert red.stdout is not None
        for line in red.stdout:
            seen.append(line)
            if "Started flows" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert started.wait(60), "".join(seen)
        url = next(line.split("Server now running at ", 1)[1].strip().rstrip("/") for line in seen
                   if "Server now running at " in line)

        # the flow: the inject button, then Create Call (nexmo 2.4.0 -> api.nexmo.com:443 -> the sandbox)
        assert requests.post(f"{url}/inject/go", timeout=10).status_code == 200, "".join(seen)
        assert answered(app, app.wait_for(lambda h: h.fields.get("to") == "447700900504").fields["uuid"])
        # the "create application" button of the credentials dialog: a form POST to Node-RED's admin API
        form = {"api_key": sb.rows["API key"], "api_secret": sb.rows["API secret"], "name": "from node-red",
                "answer_url": f"{app.url}/answer", "event_url": f"{app.url}/event"}
        made = requests.post(f"{url}/nexmo-auth/new-voice-app", data=form, timeout=30)
        assert made.status_code == 200, made.text + "".join(seen)
        made_app = made.json()
        assert made_app["id"] and "PRIVATE KEY" in made_app["keys"]["private_key"]
        got = sb.raw("GET", f"/v2/applications/{made_app['id']}", auth=(sb.rows["API key"], sb.rows["API secret"]))
        assert got.status_code == 200 and got.json()["name"] == "from node-red"
    finally:
        red.terminate()
        try:
            red.wait(10)
        except subprocess.TimeoutExpired:
            red.kill()
            red.wait(5)


NAMESPACE_DRIVER = """
import json, os, subprocess, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from labkit.sandbox import Sandbox

class Hook(BaseHTTPRequestHandler):  # the app's event_url, inside the namespace with everything else
    def log_message(self, *a):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()

hooks = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=hooks.serve_forever, daemon=True).start()
home, nexmo_dir = Path(sys.argv[1]), sys.argv[2]
sb = Sandbox(port=443, speed=10, home=home, vonage_hostnames=True).start()  # 443: the namespace's own
sb.configure(event_url=f"http://127.0.0.1:{hooks.server_address[1]}/event")
sb.phone("447700900506").set(answer_after=0)
env = {"PATH": os.environ["PATH"], "HOME": str(home.parent), "NODE_EXTRA_CA_CERTS": str(sb.ca_path)}  # no proxy
run = subprocess.run(["node", "noroot.js", sb.api_key, sb.api_secret, sb.application_id, str(sb.private_key_path),
                      "447700900506", sb.number], cwd=nexmo_dir, env=env, capture_output=True, text=True, timeout=60)
made = json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else {}
result = {"rc": run.returncode, "err": run.stderr[-1500:], "uid": os.getuid(),
          "to": sb.call(made["call"]).to_address if made else None,
          "app": sb.account.get(made["app"]).name if made else None}
sb.stop(); hooks.shutdown()
print(json.dumps(result))
"""


def namespace_python(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """An interpreter with labkit that the user can run inside its own user namespace, else skip.

    This environment's own first; here its interpreter can sit under /root, which a process in a user
    namespace cannot reach, so then the system's python3 of the same version with this environment's
    packages on PYTHONPATH."""
    probe = run(["unshare", "-rmn", "true"], env)
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses unprivileged user namespaces here: {probe.stderr.strip()}")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    system = shutil.which("python3", path="/usr/bin:/bin")
    check = f"import sys; assert sys.version_info[:2] == {sys.version_info[:2]}"
    same = system and subprocess.run([system, "-c", check], capture_output=True).returncode == 0
    candidates = [(sys.executable, env)]
    if same:
        candidates.append((system, {**env, "PYTHONPATH": f"{REPO}{os.pathsep}{site}"}))
    for exe, exe_env in candidates:
        if run(["unshare", "-rmn", exe, "-c", "import labkit.sandbox"], exe_env).returncode == 0:
            return exe, exe_env
    pytest.skip("no Python with labkit can be run inside a user namespace by this user")


def test_unchanged_nexmo_2_in_a_user_namespace_without_root(shared):
    """The namespace way, no root: `unshare -rmn`, loopback up, a hosts file bind-mounted, the sandbox on
    443. The `nexmo` 2.x package runs with no proxy and no preload: the names resolve to the sandbox."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(shared), "LANG": "C.UTF-8"}
    python, env = namespace_python(base)
    folder = install_nexmo("2.4.2")
    (folder / "noroot.js").write_text(NEXMO_SCRIPT)
    hosts = shared / "hosts"
    hosts.write_text("127.0.0.1 localhost api.nexmo.com rest.nexmo.com api.vonage.com api-us-3.vonage.com\n")
    (shared / "ns-home").mkdir()
    give(hosts, shared / "ns-home")
    inner = (f"ip link set lo up && mount --bind {hosts} /etc/hosts && "
             f"exec {python} -c {shlex.quote(NAMESPACE_DRIVER)} {shared / 'ns-home'} {folder}")
    proc = run(["unshare", "-rmn", "sh", "-c", inner], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, result["err"]
    assert result["to"] == "447700900506" and result["app"] == "made by nexmo 2.x"
    assert result["uid"] == 0  # root only inside its own namespace: outside, the unprivileged user

