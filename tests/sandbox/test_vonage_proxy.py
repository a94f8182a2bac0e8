"""The CONNECT proxy and the Node preload of `labkit sandbox --vonage-proxy`, in process: they send the same
names to the sandbox, and the proxy lets go of every tunnel when it stops (`labkit sandbox` stops cleanly
with clients still connected). The whole path, as a user without root, is in test_sandbox_no_root.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess

import pytest

from labkit.cli.sandbox_env import node_preload_path
from labkit.sandbox.wire.vonage_proxy import VonageProxy

PRELOAD_PROBE = r"""
const net = require('net');
const decide = (host, port) => new Promise((resolve) => {
  // a name the preload leaves alone comes to this lookup: answer it here, so nothing leaves the machine
  const lookup = (name, options, callback) => callback(Object.assign(new Error('left alone'), { code: 'LEFT' }));
  const socket = net.connect({ host, port, lookup });
  socket.on('connect', () => { socket.destroy(); resolve(true); });
  socket.on('error', (err) => resolve(err.code === 'LEFT' ? false : 'error: ' + err.message));
});
(async () => {
  const out = {};
  for (const [host, port] of JSON.parse(process.argv[2])) out[`${host}:${port}`] = await decide(host, port);
  console.log(JSON.stringify(out));
})();
"""


def test_the_node_preload_and_the_proxy_send_the_same_names_to_the_sandbox(tmp_path):
    """vonage_hosts.cjs and vonage_proxy.py each list Vonage's API hosts: the same decision for each name."""
    if not shutil.which("node"):
        pytest.skip("node is not installed (make system-deps installs it)")
    targets = [(host, port) for host in ("api.nexmo.com", "rest.nexmo.com", "api.vonage.com", "api-us-3.vonage.com",
                                         "api-sg-1.nexmo.com", "API.Nexmo.COM.", "nexmo.com", "www.vonage.com",
                                         "evilapi.nexmo.com", "api.nexmo.com.evil.example", "api.nexmo.co")
               for port in (443, 80)]
    with socket.socket() as listener:  # stands in for the sandbox: a redirected connection lands here
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LABKIT_VONAGE_HOSTS_TO": f"127.0.0.1:{listener.getsockname()[1]}"}
        (tmp_path / "probe.js").write_text(PRELOAD_PROBE)
        proc = subprocess.run(["node", "--require", str(node_preload_path()), "probe.js", json.dumps(targets)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    node = json.loads(proc.stdout)
    proxy = VonageProxy(("127.0.0.1", 1))
    assert node == {f"{h}:{p}": proxy.allows(h, p) for h, p in targets}
    assert node["api.nexmo.com:443"] and not node["api.nexmo.com:80"] and not node["nexmo.com:443"]



def test_stopping_the_proxy_ends_its_open_tunnels_and_frees_its_port():
    """What `labkit sandbox` needs on Ctrl-C with a client still connected (Node-RED keeps its connections)."""
    with socket.socket() as target:  # stands in for the sandbox
        target.bind(("127.0.0.1", 0))
        target.listen(4)
        proxy = VonageProxy(target.getsockname()).start()
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        client.sendall(b"CONNECT api.nexmo.com:443 HTTP/1.1\r\nHost: api.nexmo.com:443\r\n\r\nhello")
        assert client.recv(100).startswith(b"HTTP/1.1 200 ")
        inner, _ = target.accept()
        assert inner.recv(5) == b"hello"  # bytes sent with the CONNECT reach the sandbox
        inner.sendall(b"back")
        assert client.recv(4) == b"back"
        proxy.stop()
        assert client.recv(10) == b""  # the tunnel ended: the client sees the close, not a hang
        inner.close()
        client.close()
        with VonageProxy(target.getsockname(), port=proxy.port) as again:  # a restart on the same --proxy-port
            assert again.port == proxy.port
