"""A public https URL for the lab's server: `PUBLIC_URL` when given, otherwise an ngrok tunnel via pyngrok.

Notebook cells get re-run, interrupted and reloaded, and a free ngrok account allows one agent session,
so this module works hard to have exactly one agent:

* the agent is started in its own session (`start_new_session=True`), so interrupting a cell (SIGINT to
  the kernel's process group) does not kill it;
* `Tunnel.open(port)` reuses a tunnel to the same port that the running agent already has;
* a process-wide registry (kept in `sys.modules`, so `importlib.reload` does not reset it) serialises
  opens and remembers which agents exist; agent pids are also written to the state directory so that
  `labkit tunnel kill` can stop an agent left behind by a kernel that died.

Every pyngrok failure becomes a `TunnelError` subclass saying what happened and what to do
(`translate_error` holds the whole mapping). The authtoken never appears in messages or logs.

Split by what each part holds: this module is the Tunnel; labkit.live.tunnel.errors the pyngrok error mapping;
labkit.live.tunnel.processes the agent registry, the pid file and `kill_agents`; labkit.live.tunnel.agent the
agent's config file and why it quit. `kill_agents` and `translate_error` are importable from here too.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from labkit.config import WHERE, Settings
from labkit.errors import TunnelAuthtokenMissingError, TunnelError
from labkit.live.tunnel.agent import startup_error, write_config
from labkit.live.tunnel.errors import translate_error
from labkit.live.tunnel.processes import agent_registry, forget_agent, kill_agents, protect_secret, remember_agent

if TYPE_CHECKING:  # pragma: no cover
    from pyngrok.conf import PyngrokConfig
    from pyngrok.ngrok import NgrokTunnel

__all__ = ["Tunnel", "kill_agents", "translate_error"]

DEFAULT_STARTUP_TIMEOUT = 15.0



def _default_ngrok_path() -> str:
    """PYNGROK_NGROK_PATH, else pyngrok's own copy if present, else `ngrok` on PATH, else pyngrok's path
    (where it will try to download the agent)."""
    from pyngrok import conf

    configured = os.environ.get("PYNGROK_NGROK_PATH")
    if configured:
        return configured
    if os.path.exists(conf.DEFAULT_NGROK_PATH):
        return conf.DEFAULT_NGROK_PATH
    return shutil.which("ngrok") or conf.DEFAULT_NGROK_PATH


def _upstream_port(tunnel: NgrokTunnel) -> int | None:
    target = str((tunnel.upstream or {}).get("url") or (tunnel.config or {}).get("addr") or "")
    if "://" in target:
        try:
            return urlsplit(target).port
        except ValueError:
            return None
    tail = target.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


class Tunnel:
    """The lab's public URL. `open(port)` is idempotent across cell re-runs, interrupts and reloads."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        ngrok_path: str | None = None,
        config_path: str | None = None,
        region: str | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        self.startup_timeout = startup_timeout
        self._ngrok_path = ngrok_path
        self.config_path = config_path
        self.region = region
        self._public_url: str | None = None
        self._port: int | None = None
        self._agent_config: str | None = None
        protect_secret(self.settings.ngrok_authtoken)

    # ----- properties

    @property
    def ngrok_path(self) -> str:
        """The agent binary pyngrok runs (resolved lazily so that constructing a Tunnel is cheap)."""
        if self._ngrok_path is None:
            self._ngrok_path = _default_ngrok_path()
        return self._ngrok_path

    @property
    def public_url(self) -> str | None:
        """The https URL Vonage should call, once `open()` has run."""
        return self._public_url

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def host(self) -> str | None:
        """The public Host header value (host[:port], lower case), for the server's Host allow list."""
        return urlsplit(self._public_url).netloc.lower() if self._public_url else None

    @property
    def uses_ngrok(self) -> bool:
        return not self.settings.public_url

    @property
    def agent_pid(self) -> int | None:
        """The pid of the ngrok agent this process runs for `ngrok_path`, if any."""
        if not self.uses_ngrok or not self._agent_running():
            return None
        from pyngrok import ngrok

        return ngrok.get_ngrok_process(self.pyngrok_config()).proc.pid

    def pyngrok_config(self) -> PyngrokConfig:
        """The PyngrokConfig used for every call (new session, so cell interrupts spare the agent)."""
        from pyngrok.conf import PyngrokConfig

        token = self.settings.ngrok_authtoken or os.environ.get("NGROK_AUTHTOKEN")
        if token and self._agent_config is None:  # the token goes in a 0600 file, never on a command line
            self._agent_config = str(write_config(token, self.config_path))
        config = PyngrokConfig(
            ngrok_path=self.ngrok_path,
            config_path=self._agent_config if token else self.config_path,
            region=self.region,
            startup_timeout=self.startup_timeout,  # type: ignore[arg-type]  # used as seconds, float is fine
            start_new_session=True,
        )
        config.auth_token = None  # PyngrokConfig falls back to NGROK_AUTHTOKEN and would pass --authtoken
        return config

    # ----- operations

    def open(self, port: int) -> str:
        """Return a public https URL forwarding to `127.0.0.1:port`, reusing an existing tunnel."""
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise TunnelError(f"The port to tunnel to must be 1-65535 (got {port!r}).")
        if self.settings.public_url:
            self._public_url, self._port = self.settings.public_url.rstrip("/"), port
            return self._public_url

        from pyngrok import ngrok
        from pyngrok.exception import PyngrokError

        registry = agent_registry()
        with registry.lock:
            config = self.pyngrok_config()
            existing = self._existing_tunnel(port, config)
            if existing is None:
                self._require_authtoken()
                started = time.monotonic()
                try:
                    # NGROK_DOMAIN: a reserved domain keeps the URL (and the application's) across restarts
                    domain = {"domain": self.settings.ngrok_domain} if self.settings.ngrok_domain else {}
                    tunnel = ngrok.connect(str(port), "http", pyngrok_config=config, **domain)
                except PyngrokError as exc:
                    elapsed = time.monotonic() - started
                    if getattr(exc, "ngrok_error", "") is None and elapsed < 0.9 * self.startup_timeout:
                        # it quit before pyngrok read why (see labkit.live.tunnel.agent): read it now
                        exc = startup_error(self.ngrok_path, config.config_path,
                                                         self.startup_timeout) or exc
                    raise translate_error(exc, startup_timeout=self.startup_timeout, elapsed=elapsed,
                                          secrets=registry.secrets) from None
                except KeyboardInterrupt:
                    self._discard_unhealthy_agent(config)
                    raise
                existing = tunnel.public_url or ""
                if not existing.startswith("https://"):
                    ngrok.disconnect(existing, pyngrok_config=config)
                    raise TunnelError(
                        f"ngrok opened {existing!r}, which is not an https URL, and Vonage's webhooks need "
                        "https. A 'pyngrok-default' endpoint in ngrok's config file may be forcing http: "
                        "remove it, or set PUBLIC_URL."
                    )
            self._note_agent()
            self._public_url, self._port = existing, port
            return existing

    def close(self) -> None:
        """Disconnect this tunnel; the agent keeps running for the next `open()` (use `kill()` to stop it)."""
        url = self._public_url
        self._public_url = None
        if not self.uses_ngrok or url is None:
            return
        from pyngrok import ngrok
        from pyngrok.exception import PyngrokError

        registry = agent_registry()
        with registry.lock:
            if not self._agent_running():
                return
            try:
                ngrok.disconnect(url, pyngrok_config=self.pyngrok_config())
            except PyngrokError as exc:
                raise translate_error(exc, secrets=registry.secrets) from None

    def kill(self) -> None:
        """Stop the ngrok agent (and with it every tunnel it holds), freeing the account's session."""
        self._public_url = None
        if not self.uses_ngrok:
            return
        with agent_registry().lock:
            self._stop_agent(self.pyngrok_config(), self.agent_pid)

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        source = "PUBLIC_URL" if not self.uses_ngrok else "ngrok"
        return f"Tunnel({source}, port={self._port!r}, public_url={self._public_url!r})"

    # ----- helpers

    def _agent_running(self) -> bool:
        from pyngrok import process

        return process.is_process_running(self.ngrok_path)

    def _note_agent(self) -> None:
        """Record the running agent's pid (registry and pid file) so `kill_agents` can find it later."""
        registry = agent_registry()
        pid = self.agent_pid
        if pid is not None and registry.agents.get(self.ngrok_path) != pid:
            registry.agents[self.ngrok_path] = pid
            remember_agent(pid, self.ngrok_path)

    def _existing_tunnel(self, port: int, config: PyngrokConfig) -> str | None:
        """The https URL of a tunnel to `port` in the running agent, or None (restarting a broken agent)."""
        if not self._agent_running():
            return None
        from pyngrok import ngrok
        from pyngrok.exception import PyngrokError

        agent = ngrok.get_ngrok_process(config)
        if not agent.healthy():  # e.g. a cell interrupted while the agent was starting
            self._discard_unhealthy_agent(config)
            return None
        try:
            tunnels = ngrok.get_tunnels(config)
        except PyngrokError:
            self._discard_unhealthy_agent(config, force=True)
            return None
        for tunnel in tunnels:
            if _upstream_port(tunnel) == port and (tunnel.public_url or "").startswith("https://"):
                domain = self.settings.ngrok_domain
                if domain and urlsplit(tunnel.public_url).hostname != domain.lower():
                    continue  # a random-URL tunnel from before NGROK_DOMAIN was set
                return tunnel.public_url
        return None

    def _discard_unhealthy_agent(self, config: PyngrokConfig, *, force: bool = False) -> None:
        from pyngrok import ngrok

        try:
            if not self._agent_running():
                return
            agent = ngrok.get_ngrok_process(config)
            if force or not agent.healthy():
                self._stop_agent(config, agent.proc.pid)
        except Exception:  # best effort while already handling another failure
            logging.getLogger(__name__).debug("could not discard the ngrok agent", exc_info=True)

    def _stop_agent(self, config: PyngrokConfig, pid: int | None) -> None:
        """Kill the agent at `ngrok_path` (pid `pid`) and forget it in the registry and the pid file."""
        from pyngrok import ngrok

        ngrok.kill(config)
        agent_registry().agents.pop(self.ngrok_path, None)
        if pid is not None:
            forget_agent(pid)

    def _require_authtoken(self) -> None:
        if self.settings.ngrok_authtoken or os.environ.get("NGROK_AUTHTOKEN") or self._config_has_authtoken():
            return
        raise TunnelAuthtokenMissingError(
            f"NGROK_AUTHTOKEN is not set, and ngrok needs one to open a tunnel. Get it from "
            f"{WHERE['NGROK_AUTHTOKEN']}; put NGROK_AUTHTOKEN=... in the .env file next to the notebooks "
            "and restart the kernel."
        )

    def _config_has_authtoken(self) -> bool:
        """Whether the agent's own config file (`ngrok config add-authtoken`) already holds a token."""
        from pyngrok import conf

        path = Path(self.config_path or conf.DEFAULT_NGROK_CONFIG_PATH)
        try:
            import yaml

            data = yaml.safe_load(path.read_text()) or {}
        except Exception:  # missing or unreadable config: no token there
            return False
        if not isinstance(data, dict):
            return False
        agent = data.get("agent") if isinstance(data.get("agent"), dict) else {}
        return bool(agent.get("authtoken") or data.get("authtoken"))
