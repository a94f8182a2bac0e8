"""The plugin from the outside: a user's test file (the README's example, as written there) run by
pytest in a fresh process with pytest-xdist, as in their CI. Each worker gets its own sandbox; a failing
assertion says what the caller heard and leaves the heard audio as a WAV next to the JUnit report."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The README's "Test your own app" example, as a user would copy it."""
    section = (ROOT / "README.md").read_text().split("## Test your own app", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) < 15, "the README promises under 15 lines"
    return code


SECOND_TEST = '''
def test_a_wrong_greeting_fails(vonage_app, phone):
    from test_greeting import app, serve

    with serve(app) as url:
        vonage_app(answer_url=f"{url}/answer", event_url=f"{url}/event")
        call = phone("447700900001").dial()
        call.wait_until_hung_up()
        call.assert_heard_text("Welcome to Globex")
'''

NOTE_SANDBOX = '''
import os, pytest

@pytest.fixture(autouse=True)
def note_the_sandbox(request):
    yield
    with open(os.environ["PYTEST_XDIST_WORKER"] + ".url", "w") as f:
        f.write(request.node.funcargs["vonage_sandbox"].url)
'''


@pytest.mark.slow  # three pytest processes and two sandboxes: about 20 s on an idle machine
def test_a_users_test_file_runs_in_parallel_and_a_failure_says_what_was_heard(tmp_path: Path) -> None:
    (tmp_path / "test_greeting.py").write_text(readme_example())
    (tmp_path / "test_wrong.py").write_text(SECOND_TEST)
    (tmp_path / "conftest.py").write_text(NOTE_SANDBOX)
    cmd = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider",
           "--vonage-speed", "10", "--junitxml", "report/junit.xml", "-o", "addopts=", "-q"]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    # the failure tells a person what happened instead, and where to listen to it
    assert "the caller was never told 'Welcome to Globex'" in out, out
    assert "'Thanks for calling Acme'" in out, out
    saved = re.search(r"is saved at (\S+\.wav)", out)
    assert saved, out
    wav = Path(saved.group(1))
    assert wav.is_file() and (tmp_path / "report" / "vonage-artifacts") in wav.parents
    failure = ET.parse(tmp_path / "report" / "junit.xml").getroot().find(".//failure")
    assert failure is not None and str(wav) in (failure.get("message", "") + (failure.text or ""))
    # each xdist worker had its own sandbox
    urls = {p.stem: p.read_text() for p in tmp_path.glob("gw*.url")}
    assert sorted(urls) == ["gw0", "gw1"], out
    assert len(set(urls.values())) == 2, urls
