"""The control panel in a real browser: JupyterLab + Debian chromium, driven by Playwright.

Runs `notebooks/07_control_panel.ipynb` in JupyterLab, clicks Call, answers on the softphone, toggles
the stream, checks the waveform image changes, hangs up, and saves screenshots to test-artifacts/.
JupyterLab runs in its own process group and is torn down with every process it started.

Needs /usr/bin/chromium (`make test` installs it; never `playwright install`, which downloads a browser).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "notebooks/07_control_panel.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# JupyterLab settings for a quiet, read-only session: no news toast, and no autosave, so running the
# notebook never writes outputs into the repository's copy.
SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def button_name(text: str) -> re.Pattern:
    """A button's accessible name: its description after the icon glyph (Font Awesome adds one)."""
    return re.compile(rf"^\W*{re.escape(text)}\s*$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (kernels run in their own sessions, so killpg misses them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def jupyter(tmp_path) -> Iterator[tuple[str, str]]:
    """A JupyterLab server on a free port (base URL, token); everything it started dies afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian chromium is missing ({CHROMIUM}): run `make test`, whose system-deps target "
                    "installs it (or `apt-get install -y chromium`). Never `playwright install`.")
    port, token = _free_port(), secrets.token_hex(16)
    settings_dir = tmp_path / "settings"
    for name, values in SETTINGS.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "LABKIT_MODE": "sandbox",
           "LABKIT_HOME": str(tmp_path / "labkit-home")}
    notebook = ROOT / NOTEBOOK
    original = notebook.read_bytes()
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
         f"--LabApp.user_settings_dir={settings_dir}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
         "--LabApp.extension_manager=readonly",  # the default "pypi" manager would query the index
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    started: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n"
                            + (tmp_path / "jupyter.log").read_text()[-3000:])
            try:
                if requests.get(f"{base}/api/status", params={"token": token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("jupyter lab did not answer within 60 s")
            time.sleep(0.2)
        yield base, token
    finally:
        started = _descendants(proc.pid)
        try:  # shut kernels down politely first: they live in their own process groups
            for kernel in requests.get(f"{base}/api/kernels", params={"token": token}, timeout=5).json():
                requests.delete(f"{base}/api/kernels/{kernel['id']}", params={"token": token}, timeout=10)
        except (requests.RequestException, ValueError):
            pass
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    continue
        for pid in started:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        log.close()
        changed = notebook.read_bytes() != original
        if changed:
            notebook.write_bytes(original)
        leftovers = [pid for pid in [proc.pid, *started] if _alive(pid)]
        assert proc.returncode is not None and not leftovers, f"processes left running: {leftovers}"
        assert not changed, f"the browser session wrote into {NOTEBOOK} (restored it)"


def test_control_panel_in_jupyterlab(jupyter):
    from playwright.sync_api import expect, sync_playwright

    base, token = jupyter
    ARTIFACTS.mkdir(exist_ok=True)
    digest = hashlib.sha256((ROOT / NOTEBOOK).read_bytes()).hexdigest()

    def shot(page, name: str) -> None:
        """The whole window, and the panel with its softphone (JupyterLab scrolls inside its own pane)."""
        page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"))
        widgets = page.locator(".labkit-panel").first.locator("xpath=..")
        if widgets.count():
            widgets.screenshot(path=str(ARTIFACTS / f"browser-{name}-panel.png"))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            # Clicking Run All before the kernel is idle was flaky (stack notes): wait for it.
            page.get_by_text("| Idle").first.wait_for(timeout=90_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator('[data-command="runmenu:run-all"]').click()

            panel = page.locator(".labkit-panel").first
            panel.wait_for(state="attached", timeout=60_000)
            panel.scroll_into_view_if_needed()
            status = panel.locator(".labkit-status")
            phone = page.locator(".labkit-softphone").first
            phone_state = phone.locator(".labkit-phone-state")
            expect(status).to_have_text("no call", timeout=10_000)
            shot(page, "1-panel")

            panel.get_by_role("button", name=button_name("Call")).click()
            expect(phone_state).to_have_text("ringing", timeout=30_000)
            shot(page, "2-ringing")
            phone.get_by_role("button", name=button_name("Answer")).click()
            expect(status).to_have_text("answered", timeout=30_000)
            expect(phone_state).to_have_text("answered", timeout=10_000)
            shot(page, "3-answered")

            # Let the greeting pass: the live waveform then shows only silence.
            waveform = panel.locator("img.labkit-waveform")
            caption = panel.locator(".labkit-waveform-caption")
            expect(caption).to_contain_text("peak silence", timeout=30_000)
            before = waveform.get_attribute("src")
            panel.get_by_role("button", name=button_name("Stream")).click()
            expect(panel.get_by_role("button", name=button_name("Stop stream"))).to_be_visible(timeout=10_000)
            page.wait_for_function(
                "([img, before]) => img.getAttribute('src') !== before",
                arg=[waveform.element_handle(), before], timeout=15_000)
            expect(caption).to_contain_text("dBFS", timeout=15_000)
            expect(phone.locator(".labkit-waveform-caption")).to_contain_text("dBFS", timeout=15_000)
            expect(panel.locator(".labkit-events")).to_contain_text("stream-started", timeout=10_000)
            shot(page, "4-streaming")

            panel.get_by_role("button", name=button_name("Stop stream")).click()
            expect(panel.locator(".labkit-events")).to_contain_text("stream-stopped", timeout=10_000)
            panel.get_by_role("button", name=button_name("Hang up")).click()
            expect(status).to_have_text("completed", timeout=30_000)
            expect(phone_state).to_have_text("idle", timeout=10_000)
            assert panel.locator(".labkit-error").inner_text().strip() == ""
            shot(page, "5-completed")
        except Exception:
            shot(page, "failure")  # what the page looked like when the step failed
            (ARTIFACTS / "browser-failure.html").write_text(page.content())
            raise
        finally:
            browser.close()
    assert hashlib.sha256((ROOT / NOTEBOOK).read_bytes()).hexdigest() == digest
