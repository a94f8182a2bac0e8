"""`labkit sandbox --vonage-proxy`: the environment that sends clients with hard-coded Vonage hosts to the
sandbox, without root (no port 443, no hosts entry, no namespace).

One mechanism per kind of client (README, "Clients that cannot be pointed at https on another port"):
- `HTTPS_PROXY` -> the sandbox's CONNECT proxy (labkit/sandbox/wire/vonage_proxy.py), for every client
  that honours it (curl, Python requests/httpx and so the Python SDK, Ruby Net::HTTP, Go, Guzzle, .NET);
- `NODE_OPTIONS=--require vonage_hosts.cjs` + `LABKIT_VONAGE_HOSTS_TO`, for Node, whose http/https modules
  ignore `HTTPS_PROXY` (measured on Node 20: the `nexmo` 2.x package, Node-RED's nodes, fetch);
- `JAVA_TOOL_OPTIONS` with Java's own proxy properties, for Java, which ignores `HTTPS_PROXY` too.
Plus the CA variables, so each language trusts the sandbox's certificate for Vonage's names.
"""

from __future__ import annotations

import shlex
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["client_env", "env_lines", "node_preload_path", "write_env_file"]


def node_preload_path() -> Path:
    """The Node preload shipped in the package (labkit/sandbox/wire/vonage_hosts.cjs)."""
    return Path(str(resources.files("labkit.sandbox.wire") / "vonage_hosts.cjs"))


def _node_require(path: Path) -> str:
    """`--require PATH` as NODE_OPTIONS parses it (double quotes around a path with spaces)."""
    text = str(path)
    return f'--require "{text}"' if any(c in text for c in ' "\\') else f"--require {text}"


def client_env(sandbox: Any, proxy_url: str) -> dict[str, str]:
    """The variables a client's shell needs: the proxy, the Node preload, and the sandbox CA for each language."""
    ca, bundle = str(sandbox.ca_path), str(sandbox.ca_bundle)
    host, _, port = proxy_url.removeprefix("http://").rpartition(":")
    return {
        "HTTPS_PROXY": proxy_url, "https_proxy": proxy_url,  # Ruby and some tools read only the lower case
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",  # your app and the control API
        "LABKIT_VONAGE_HOSTS_TO": f"127.0.0.1:{sandbox.port}",
        "NODE_OPTIONS": _node_require(node_preload_path()),
        "NODE_EXTRA_CA_CERTS": ca,
        # Java ignores HTTPS_PROXY but reads these (HttpURLConnection and java.net.http's default selector);
        # it trusts the CA once imported with keytool (README)
        "JAVA_TOOL_OPTIONS": f"-Dhttps.proxyHost={host} -Dhttps.proxyPort={port} "
                             "-Dhttp.nonProxyHosts=127.0.0.1|localhost",
        "REQUESTS_CA_BUNDLE": bundle,  # Python requests (the Python SDK)
        "SSL_CERT_FILE": bundle,  # OpenSSL's default: Ruby, PHP, Go, Python's ssl module
        "CURL_CA_BUNDLE": bundle,
    }


def env_lines(env: dict[str, str]) -> list[str]:
    """`export NAME=value` lines a POSIX shell can paste or `source`."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def write_env_file(path: str | Path, env: dict[str, str]) -> Path:
    """Write the export lines to `path`, for `. path` in a script (no secrets: addresses and CA paths)."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# labkit sandbox --vonage-proxy: source this in the client's shell\n"
                      + "\n".join(env_lines(env)) + "\n")
    return target
