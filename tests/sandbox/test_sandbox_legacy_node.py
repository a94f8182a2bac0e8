"""The legacy `nexmo` 2.x Node package manages applications on `labkit sandbox --http`, without root.

- nexmo 2.4.2 calls the Application API v1 on the hard-coded host api.nexmo.com (fields and credentials
  in the query string). Its HttpClient takes a `port` option (plain http when it is not 443), and a
  `--require`d preload resolves Vonage's names to 127.0.0.1 in that Node process only: no hosts file,
  no port 443, no root.
- nexmo 2.7.0 (the version node-red-contrib-nexmo 3.3.1 pins, behind Node-RED's "create application"
  button) calls the Application API v2 on `apiHost` with HTTP Basic; `apiHost` + `port` reach the sandbox.
Both must create an application (id and private key back), read it, update it and delete it. Skips
without node/npm or when npm cannot install the packages (offline).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.npm import npm_folder, write_script
from support.sandbox_process import SandboxProcess

REPO = Path(__file__).resolve().parents[2]
SPEED = 10

HOSTS_PRELOAD = r"""
// Vonage's host names -> 127.0.0.1 for this Node process only (what a hosts entry would do, without root)
const dns = require('dns');
const lookup = dns.lookup;
dns.lookup = function (host, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  if (/(^|\.)(nexmo|vonage)\.com$/.test(host)) {
    return options && options.all ? callback(null, [{ address: '127.0.0.1', family: 4 }])
                                   : callback(null, '127.0.0.1', 4);
  }
  return lookup.call(this, host, options, callback);
};
"""

SCRIPT = r"""
const Nexmo = require('nexmo');
const [apiKey, apiSecret, port, useApiHost] = process.argv.slice(2);
const options = { port: Number(port) };
if (useApiHost === 'yes') options.apiHost = '127.0.0.1';
const nexmo = new Nexmo({ apiKey, apiSecret }, options);
const step = (name, fn) => new Promise((resolve, reject) =>
  fn((err, res) => err ? reject(new Error(name + ': ' + JSON.stringify(err))) : resolve(res)));
(async () => {
  const app = await step('create', cb => nexmo.applications.create(
    'node-red app', 'voice', 'https://example.com/answer', 'https://example.com/event', {}, cb));
  const got = await step('get', cb => nexmo.applications.get(app.id, cb));
  const updated = await step('update', cb => nexmo.applications.update(
    app.id, 'renamed', 'voice', 'https://example.com/other', 'https://example.com/event', {}, cb));
  await step('delete', cb => nexmo.applications.delete(app.id, cb));
  console.log(JSON.stringify({ app, got, updated }));
})().catch((err) => { console.error(String(err)); process.exit(1); });
"""


def _install(version: str) -> Path:
    folder = npm_folder(f"nexmo-{version}", [f"nexmo@{version}"])
    write_script(folder, "hosts.js", HOSTS_PRELOAD)
    write_script(folder, "apps.js", SCRIPT)
    return folder


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    proc = SandboxProcess(tmp_path_factory.mktemp("legacy-home"), "--http", speed=SPEED)
    yield proc
    proc.stop()


@pytest.mark.parametrize(("version", "api"), [("2.4.2", "v1"), ("2.7.0", "v2")])
def test_the_nexmo_2_package_manages_applications(sb, version, api):
    folder = _install(version)
    port = sb.url.rsplit(":", 1)[1]
    cmd = ["node", "--require", "./hosts.js", "apps.js", sb.rows["API key"], sb.rows["API secret"], port,
           "yes" if api == "v2" else "no"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP_PROXY", "HTTPS_PROXY", "http_", "https_"))}
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    app, got, updated = result["app"], result["got"], result["updated"]
    assert app["id"] and "PRIVATE KEY" in app["keys"]["private_key"]
    assert got["id"] == app["id"] and got["name"] == "node-red app"
    hooks = {h["endpoint_type"]: h["endpoint"] for h in got["voice"]["webhooks"]}  # both shapes give this
    assert hooks == {"answer_url": "https://example.com/answer", "event_url": "https://example.com/event"}
    assert updated["name"] == "renamed"
    auth = (sb.rows["API key"], sb.rows["API secret"])
    assert sb.raw("GET", f"/v2/applications/{app['id']}", auth=auth).status_code == 404  # deleted
