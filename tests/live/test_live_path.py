"""The live code path end to end, with the sandbox standing in for Vonage.

The lab runs in `LABKIT_MODE=live`: its settings are what a user's `.env` holds (application id and
private key, number, API key and secret, signature secret), read from what `labkit sandbox` printed,
with VONAGE_API_HOST / VONAGE_REST_HOST pointed at that command running in a real separate process
(tests/support/sandbox_process.py) and PUBLIC_URL at the lab itself. The lab sets its application up through
the Application and Numbers APIs only, exactly as it does on Vonage. The sandbox delivers webhooks with
chaos (jitter, reordering, duplicates: `labkit sandbox --chaos`). The five tutorial stories run, and the
phones are driven and checked for what they heard through the sandbox's HTTP control API only
(`labkit.sandbox.connect(url)`), as a test in any language would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from support.sandbox_process import SandboxProcess

from labkit import Lab, ncco
from labkit.config import Settings
from labkit.media import Recording

SPEED = 2.0
LABELS = ("base URL", "CA bundle", "application id", "private key", "number", "API key", "API secret",
          "signature secret")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox_proc(tmp_path_factory):
    # A home of its own: under pytest-xdist each worker that runs tests of this module starts this sandbox,
    # and two on one home share the account's applications.json (the last write wins), so one worker's
    # `labkit setup` could route the number to another worker's lab (a call that never arrived, once in 10)
    sp = SandboxProcess(tmp_path_factory.mktemp("live-path-sandbox"), "--chaos", "jitter=0.15,duplicate=0.3",
                        speed=SPEED)
    assert set(LABELS) <= set(sp.rows), f"labkit sandbox printed {sp.rows}"
    yield sp
    sp.stop()


def live_env(sandbox_proc, port: int, *, signed: bool = True) -> dict[str, str]:
    """What a user's `.env` holds for a live lab on `port` whose Vonage is the separate sandbox."""
    r = sandbox_proc.rows
    env = {"LABKIT_MODE": "live", "VONAGE_APPLICATION_ID": r["application id"],
           "VONAGE_PRIVATE_KEY": r["private key"], "VONAGE_NUMBER": r["number"],
           "VONAGE_API_KEY": r["API key"], "VONAGE_API_SECRET": r["API secret"],
           "VONAGE_API_HOST": sandbox_proc.host, "VONAGE_REST_HOST": sandbox_proc.host,
           "PUBLIC_URL": f"http://127.0.0.1:{port}", "LABKIT_PORT": str(port)}
    if signed:
        env["VONAGE_SIGNATURE_SECRET"] = r["signature secret"]
    return env


@pytest.fixture(scope="module")
def live(sandbox_proc):
    """A live-mode lab whose Vonage is the separate sandbox."""
    r = sandbox_proc.rows
    port = free_port()
    env = live_env(sandbox_proc, port)
    old_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = r["CA bundle"]  # as `labkit sandbox` says to
    lab = Lab(Settings.load(env_file="/nonexistent/.env", environ=env), quiet=True)
    try:
        lab._start()
        assert lab.mode == "live" and lab.sandbox is None
        assert "answer_url" in lab._account_note  # it pointed the application at itself
        yield lab
    finally:
        lab.stop()
        if old_bundle is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = old_bundle


@pytest.fixture
def lab(live):
    live.clear_handlers()
    yield live
    live.clear_handlers()


def heard(sandbox_proc, number, call) -> Recording:
    """What the phone heard in this call: `GET /_labkit/phones/{number}/heard.wav?call=...`."""
    return sandbox_proc.remote.phone(number).heard_in(call.uuid)


def dial(sandbox_proc, number) -> str:
    """The phone calls the application's number (`POST /_labkit/phones/{number}/dial`): its uuid."""
    return sandbox_proc.remote.dial(number)["uuid"]


def position(sandbox_proc, number) -> int:
    """Samples the phone has heard so far (`GET /_labkit/phones/{number}`), for `wait_until_audible`."""
    return sandbox_proc.remote.phone(number).position


def wait_until_audible(sandbox_proc, number, since: int, timeout: float = 30) -> None:
    """Until the phone hears sound after position `since` (`heard.wav?since=`): the audio really plays.
    A fetched file starts only once downloaded and decoded, so a fixed sleep after asking is a race."""
    phone = sandbox_proc.remote.phone(number)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = phone.heard_since(since).samples
        if samples.size and int(abs(samples.astype("int32")).max()) > 100:
            return
        time.sleep(0.05)
    raise AssertionError(f"{number} heard nothing after position {since}")


def say_and_wait(sandbox_proc, number, path) -> None:
    """The phone says a WAV file into its call (`POST .../say`) and we wait until it is said."""
    phone = sandbox_proc.remote.phone(number)
    phone.say(path)
    deadline = time.monotonic() + 30
    while phone.speaking and time.monotonic() < deadline:
        time.sleep(0.05)


def music(lab, start, end) -> Recording:
    return Recording(lab.audio_path("music.wav")).segment(start, end)


def test_01_inbound_call_hears_the_music(lab, sandbox_proc):
    lab.on_answer(lambda fields: [ncco.talk("Welcome to the lab. Here is some music."),
                                  ncco.stream(lab, "music.mp3")])
    number = "447700900002"
    uuid = dial(sandbox_proc, number)
    call = lab.wait_for_call(timeout=30)
    assert call.uuid == uuid
    call.wait_for("completed", timeout=60)
    statuses = [e.status for e in call.events.filter(kind="event")]
    assert "answered" in statuses and call.status == "completed"
    assert statuses.count("completed") == 1  # duplicates are recorded once
    assert heard(sandbox_proc, number, call).correlate(music(lab, 1, 3)) > 0.8


def test_02_outbound_call_with_a_rest_stream(lab, sandbox_proc):
    number = "447700900003"
    call = lab.call(number, ncco=[ncco.keep_open(lab)])
    call.wait_for("answered", timeout=30)
    since = position(sandbox_proc, number)
    call.stream("music.mp3", loop=0)
    wait_until_audible(sandbox_proc, number, since)  # then three seconds of call time of it
    time.sleep(3 / SPEED)
    call.stop_stream()
    call.hangup()
    call.wait_for("completed", timeout=30)
    assert call.status == "completed"
    assert heard(sandbox_proc, number, call).correlate(music(lab, 0, 2)) > 0.8


def test_03_conference_with_quorum(lab, sandbox_proc):
    room = "live-path-room"
    lab.on_answer(lambda fields: [ncco.conversation(room)])
    numbers = ["447700900011", "447700900012", "447700900013"]
    for n, after in zip(numbers, (0.5, 2.0, 3.5), strict=True):
        sandbox_proc.remote.phone(n).set(answer_after=after)
    waiting, everyone_here, guard = [], threading.Event(), threading.Lock()

    @lab.on_event
    def hold_music_until_quorum(event):
        if event.get("status") != "answered" or event.get("to") not in numbers:
            return None
        deadline = time.monotonic() + 30  # lab.call() registers the call once POST /v1/calls has answered,
        while event["uuid"] not in lab.calls and time.monotonic() < deadline:  # which a fast phone's
            time.sleep(0.01)  # `answered` (plus jitter) may beat on a busy machine
        with guard:
            waiting.append(lab.calls[event["uuid"]])
            if len(waiting) < len(numbers):
                waiting[-1].stream("music.mp3", loop=0)
            else:
                for caller in waiting[:-1]:
                    caller.stop_stream()
                everyone_here.set()
        return None

    calls = [lab.call(n) for n in numbers]
    assert everyone_here.wait(timeout=60), "the quorum was not reached"
    assert [c.uuid for c in waiting] == [c.uuid for c in calls]  # each answered once, duplicates or not
    time.sleep(1 / SPEED)
    for caller in waiting:
        caller.hangup()
    for caller in waiting:
        caller.wait_for("completed", timeout=30)
    first = heard(sandbox_proc, numbers[0], waiting[0])
    last = heard(sandbox_proc, numbers[-1], waiting[-1])
    assert first.correlate(music(lab, 0.5, 1.5)) > 0.5
    assert first.rms(first.duration - 0.5) < 0.01 and last.rms() < 0.01


def test_04_three_ways_to_script(lab, sandbox_proc):
    from vonage_voice import Dtmf, Input, Stream, Talk

    number = "447700900004"
    first = lab.call(number, ncco=[Talk(text="One: typed models."), Stream(streamUrl=[lab.audio_url("beep.wav")])])
    assert first.wait_for("completed", timeout=60).status == "completed"
    second = lab.call(number, ncco=[{"action": "talk", "text": "Two: plain JSON."},
                                    {"action": "stream", "streamUrl": [lab.audio_url("beep.wav")], "level": -0.5}])
    assert second.wait_for("completed", timeout=60).status == "completed"
    lab.on_answer(lambda fields: [ncco.talk(f"Three: from the answer URL, for {fields['to']}.")])
    third = lab.call(number)
    assert third.wait_for("completed", timeout=60).status == "completed"
    digits = []

    @lab.on_event
    def on_input(event):
        if event.get("dtmf"):
            digits.append(event["dtmf"]["digits"])
            return [ncco.talk(f"You pressed {event['dtmf']['digits']}. Goodbye.")]
        return None

    call = lab.call(number, ncco=[ncco.stream(lab, "music.mp3", loop=0, level=0.2, barge_in=True),
                                  Input(type=["dtmf"], dtmf=Dtmf(maxDigits=1, timeOut=10))])
    call.wait_for("answered", timeout=30)
    since = position(sandbox_proc, number)
    wait_until_audible(sandbox_proc, number, since)  # the stream plays, so a key barges in (not lost before)
    sandbox_proc.remote.phone(number).press("7")
    call.wait_for("input", timeout=30)
    call.wait_for("completed", timeout=60)
    assert digits == ["7"]
    assert [c.status for c in (first, second, third, call)] == ["completed"] * 4


def test_05_websocket_recording(lab, sandbox_proc):
    number = "447700900005"
    call = lab.call(number, ncco=[ncco.websocket(lab, rate=16000)])
    call.wait_for("answered", timeout=30)
    say_and_wait(sandbox_proc, number, lab.audio_path("prompt.wav"))
    time.sleep(0.3)
    call.hangup()
    call.wait_for("completed", timeout=30)
    rec = call.recording()
    assert rec.call_uuid == call.uuid and rec.rate == 16000 and rec.frames_malformed == 0
    said = Recording(lab.audio_path("prompt.wav")).segment(0.2, 1.9)
    assert rec.correlate(said) > 0.9


def test_a_record_action_downloads_from_the_api_host(lab, sandbox_proc):
    """The record event's recording_url is on VONAGE_API_HOST: the lab sends its JWT there, and only there."""
    from vonage_voice import Record

    number = "447700900006"
    call = lab.call(number, ncco=[Record(format="wav", endOnKey="#"), ncco.keep_open(lab)])
    call.wait_for("answered", timeout=30)
    say_and_wait(sandbox_proc, number, lab.audio_path("prompt.wav"))
    sandbox_proc.remote.phone(number).press("#")
    event = call.wait_for("record", timeout=30)
    assert event.payload["recording_url"].startswith(f"https://{sandbox_proc.host}/")
    rec = lab.download_recording(event)
    call.hangup()
    assert rec.correlate(Recording(lab.audio_path("prompt.wav")).segment(0.2, 1.9)) > 0.9


# -- issue 18: never harm the account; control each call in its region -----------------------------------------

def account_http(sandbox_proc):
    """The account's Application and Numbers APIs (HTTP Basic), as a user's dashboard or script reaches them."""
    from labkit.live.account import clients

    r = sandbox_proc.rows
    apps, numbers = clients(r["API key"], r["API secret"], api_host=sandbox_proc.host, rest_host=sandbox_proc.host)
    return apps.http_client, numbers.http_client


def new_application(sandbox_proc, tmp_path, name: str) -> tuple[str, str]:
    """A user's application (`POST /v2/applications`) with webhooks of its own: (id, private key path)."""
    http, _ = account_http(sandbox_proc)
    hooks = {"answer_url": {"address": f"https://example.com/{name}/answer", "http_method": "GET"},
             "event_url": {"address": f"https://example.com/{name}/event", "http_method": "POST"}}
    made = http.post(http.api_host, "/v2/applications", {"name": name, "capabilities": {"voice": {"webhooks": hooks}}},
                     "basic")
    key = tmp_path / f"{name}.key"
    key.write_text(made["keys"]["private_key"])
    return made["id"], str(key)


def application(sandbox_proc, app_id: str) -> dict:
    http, _ = account_http(sandbox_proc)
    return http.get(http.api_host, f"/v2/applications/{app_id}", None, "basic")


def the_number(sandbox_proc) -> dict:
    """The account's number as `GET /account/numbers` lists it."""
    _, http = account_http(sandbox_proc)
    listed = http.get(http.rest_host, "/account/numbers", {"pattern": sandbox_proc.rows["number"]}, "basic")
    return listed["numbers"][0]


def update_number(sandbox_proc, **form: str) -> None:
    """`POST /number/update`, as the dashboard would."""
    _, http = account_http(sandbox_proc)
    http.post(http.rest_host, "/number/update", {"country": "GB", "msisdn": sandbox_proc.rows["number"], **form},
              "basic", "form")


def lab_on(sandbox_proc, app_id: str, key: str, **kwargs) -> Lab:
    """A live lab on the user's application `app_id`, with VONAGE_NUMBER the account's number."""
    port = free_port()
    env = {**live_env(sandbox_proc, port), "VONAGE_APPLICATION_ID": app_id, "VONAGE_PRIVATE_KEY": key}
    lab = Lab(Settings.load(env_file="/nonexistent/.env", environ=env), quiet=True, **kwargs)
    try:
        lab._start()
    except BaseException:
        lab.stop()
        raise
    return lab


@pytest.fixture
def production(sandbox_proc, live, tmp_path):  # noqa: ARG001 - the live lab set REQUESTS_CA_BUNDLE
    """The user's production application, holding the number (with its SMS webhook); put back afterwards."""
    prod, _ = new_application(sandbox_proc, tmp_path, "production")
    update_number(sandbox_proc, app_id=prod, moHttpUrl="https://example.com/sms")
    yield prod
    update_number(sandbox_proc, app_id=sandbox_proc.rows["application id"], moHttpUrl="")


def test_a_number_linked_to_another_application_stays_there_without_consent(sandbox_proc, production, tmp_path):
    mine, key = new_application(sandbox_proc, tmp_path, "my-lab")
    lab = lab_on(sandbox_proc, mine, key)
    try:
        assert the_number(sandbox_proc)["app_id"] == production  # not moved
        note = lab._account_note
        assert f"'production' ({production})" in note and "take_number=True" in note and "LABKIT_TAKE_NUMBER" in note
    finally:
        lab.stop()
    assert the_number(sandbox_proc)["app_id"] == production


def test_with_consent_the_number_moves_and_comes_back_at_stop(sandbox_proc, production, tmp_path):
    mine, key = new_application(sandbox_proc, tmp_path, "my-lab")
    lab = lab_on(sandbox_proc, mine, key, take_number=True)
    try:
        number = the_number(sandbox_proc)
        assert number["app_id"] == mine and number["moHttpUrl"] == "https://example.com/sms"  # its other fields kept
        assert f"moved from another application, 'production' ({production})" in lab._account_note
    finally:
        lab.stop()
    number = the_number(sandbox_proc)
    assert number["app_id"] == production and number["moHttpUrl"] == "https://example.com/sms"
    assert "moved back to 'production'" in lab.stop_note


def test_a_killed_kernels_number_and_webhooks_are_put_back(sandbox_proc, production, tmp_path):
    """A lab that took the number, in a kernel killed with SIGKILL: the next start puts both back."""
    import json

    from labkit.live.saved import saved_path

    mine, key = new_application(sandbox_proc, tmp_path, "my-lab")
    port = free_port()
    env = {**os.environ, **live_env(sandbox_proc, port), "VONAGE_APPLICATION_ID": mine, "VONAGE_PRIVATE_KEY": key}
    kernel = subprocess.run([sys.executable, "-c", "import os, signal\nfrom labkit import Lab\n"
                             "Lab.start(take_number=True, quiet=True)\nprint('started', flush=True)\n"
                             "os.kill(os.getpid(), signal.SIGKILL)"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert kernel.returncode == -9 and "started" in kernel.stdout, kernel.stderr[-2000:]
    [record] = saved_path(mine).parent.glob(f"application-{mine}-*.json")  # the dead kernel's, by its pid
    saved = json.loads(record.read_text())
    assert saved["number"]["before"]["app_id"] == production and "answer_url" in saved["fields"]
    assert the_number(sandbox_proc)["app_id"] == mine  # the dead lab's doing
    lab = lab_on(sandbox_proc, mine, key)  # no consent this time
    try:
        assert "did not stop" in lab._account_note
        assert the_number(sandbox_proc)["app_id"] == production
    finally:
        lab.stop()
    hooks = application(sandbox_proc, mine)["capabilities"]["voice"]["webhooks"]
    assert hooks["answer_url"]["address"] == "https://example.com/my-lab/answer"
    assert "fallback_answer_url" not in hooks and not list(saved_path(mine).parent.glob(f"application-{mine}-*"))


def test_a_sip_forwarded_number_is_reported_and_cleared_only_with_consent(sandbox_proc, live, tmp_path):  # noqa: ARG001
    mine, key = new_application(sandbox_proc, tmp_path, "my-lab")
    update_number(sandbox_proc, app_id=mine, voiceCallbackType="sip", voiceCallbackValue="sip:desk@example.com")
    try:
        lab = lab_on(sandbox_proc, mine, key)
        try:
            assert "forwards its calls to SIP URI sip:desk@example.com" in lab._account_note
            assert the_number(sandbox_proc)["voiceCallbackType"] == "sip"
        finally:
            lab.stop()
        lab = lab_on(sandbox_proc, mine, key, take_number=True)
        try:
            assert "forwarding to SIP URI sip:desk@example.com cleared" in lab._account_note
            assert the_number(sandbox_proc)["voiceCallbackType"] == "app"
            dial(sandbox_proc, "447700900021")  # now the number's calls reach the lab
            lab.wait_for_call(timeout=30).hangup()
        finally:
            lab.stop()
        number = the_number(sandbox_proc)
        assert number["voiceCallbackType"] == "sip" and number["voiceCallbackValue"] == "sip:desk@example.com"
        assert "forwarding to SIP URI sip:desk@example.com put back" in lab.stop_note
    finally:
        update_number(sandbox_proc, app_id=sandbox_proc.rows["application id"])


def test_a_dashboard_edit_during_the_session_is_kept_at_stop(sandbox_proc, live, tmp_path):  # noqa: ARG001
    mine, key = new_application(sandbox_proc, tmp_path, "my-lab")
    update_number(sandbox_proc, app_id=mine)
    try:
        lab = lab_on(sandbox_proc, mine, key)
        try:
            http, _ = account_http(sandbox_proc)
            app = application(sandbox_proc, mine)  # the user edits the answer URL on the dashboard meanwhile
            app["capabilities"]["voice"]["webhooks"]["answer_url"]["address"] = "https://example.com/edited"
            http.put(http.api_host, f"/v2/applications/{mine}", {k: app[k] for k in ("name", "capabilities")},
                     "basic")
        finally:
            lab.stop()
        hooks = application(sandbox_proc, mine)["capabilities"]["voice"]["webhooks"]
        assert hooks["answer_url"]["address"] == "https://example.com/edited"  # the user's edit stays
        assert hooks["event_url"]["address"] == "https://example.com/my-lab/event"  # the lab's change is undone
        assert "fallback_answer_url" not in hooks
        assert "answer_url kept as it is now (https://example.com/edited)" in lab.stop_note
        assert "event_url put back (https://example.com/my-lab/event)" in lab.stop_note
    finally:
        update_number(sandbox_proc, app_id=sandbox_proc.rows["application id"])


def test_stop_hangs_up_the_calls_still_up(sandbox_proc, live, tmp_path):  # noqa: ARG001
    mine, key = new_application(sandbox_proc, tmp_path, "my-lab")
    lab = lab_on(sandbox_proc, mine, key)
    try:
        calls = [lab.call(n, ncco=[ncco.keep_open(lab)]) for n in ("447700900031", "447700900032")]
        for call in calls:
            call.wait_for("answered", timeout=30)
    finally:
        lab.stop()
    assert lab.stop_note.startswith("hung up 2 calls still up")
    assert lab.stop_note.index("hung up") < lab.stop_note.index(f"Vonage application {mine}")
    assert [sandbox_proc.remote.call(c.uuid)["status"] for c in calls] == ["completed", "completed"]


def test_each_call_is_controlled_at_its_region_url(lab, sandbox_proc):
    """The answer webhook's region_url is the sandbox's second address: every request about the call goes there."""
    from labkit.errors import CallEndedError

    region = sandbox_proc.rows["region URL"]
    region_host = region.split("://", 1)[1]
    assert region != sandbox_proc.url
    lab.on_answer(lambda fields: [ncco.keep_open(lab)])
    uuid = dial(sandbox_proc, "447700900022")
    call = lab.wait_for_call(timeout=30)
    call.wait_for("answered", timeout=30)
    assert call.uuid == uuid and call.region_url == region
    call.say("Hello")
    call.stream("beep.wav")
    call.mute()
    call.unmute()
    call.dtmf("1")
    assert call.info().uuid == uuid
    call.hangup()
    call.wait_for("completed", timeout=30)
    view = sandbox_proc.remote.call(uuid)
    assert view["region_url"] == region and view["control_hosts"] == {region_host: 7}
    with pytest.raises(CallEndedError, match=f"over at {region_host}"):  # a 404 names the host it came from
        call.hangup()
    out = lab.call("447700900023")  # outbound, scripted by the lab's answer URL: its webhook names the region too
    out.wait_for("answered", timeout=30)
    out.hangup()
    out.wait_for("completed", timeout=30)
    assert sandbox_proc.remote.call(out.uuid)["control_hosts"] == {region_host: 1}


def test_the_application_is_put_back_at_stop(sandbox_proc, tmp_path):
    """A second live lab on the same application: stop() restores what it found (the first lab's URLs)."""
    from labkit.live.account import clients

    r = sandbox_proc.rows
    apps, _ = clients(r["API key"], r["API secret"], api_host=sandbox_proc.host, rest_host=sandbox_proc.host)
    before = apps.get_application(r["application id"]).capabilities.voice.webhooks.answer_url.address
    port = free_port()
    env = live_env(sandbox_proc, port, signed=False)
    second = Lab(Settings.load(env_file="/nonexistent/.env", environ=env), quiet=True)
    try:
        second._start()
        now = apps.get_application(r["application id"]).capabilities.voice.webhooks.answer_url.address
        assert now == f"http://127.0.0.1:{port}/webhooks/answer" != before
    finally:
        second.stop()
    assert apps.get_application(r["application id"]).capabilities.voice.webhooks.answer_url.address == before


def test_a_crashed_kernels_urls_are_restored(sandbox_proc, live):  # noqa: ARG001 - with the live lab running
    """A lab that died without lab.stop() left its saved URLs (here in the first format, a whole voice
    capability, as older labkit saved it): the next lab restores those, not its own."""
    import json

    from labkit.live.account import clients, saved_path

    r = sandbox_proc.rows
    apps, _ = clients(r["API key"], r["API secret"], api_host=sandbox_proc.host, rest_host=sandbox_proc.host)
    original = {"webhooks": {"answer_url": {"address": "https://example.com/mine", "http_method": "GET"}}}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = saved_path(r["application id"], dead.pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"application_id": r["application id"], "pid": dead.pid, "voice": original}))
    port = free_port()
    env = live_env(sandbox_proc, port, signed=False)
    lab = Lab(Settings.load(env_file="/nonexistent/.env", environ=env), quiet=True)
    try:
        lab._start()
        assert "did not stop" in lab._account_note
    finally:
        lab.stop()
    hooks = apps.get_application(r["application id"]).capabilities.voice.webhooks
    assert hooks.answer_url.address == "https://example.com/mine" and not path.exists()


def test_the_stories_ran_under_chaos(sandbox_proc, live):  # noqa: ARG001 - after the stories
    """The sandbox really did deliver duplicates and out-of-order events while the stories passed."""
    log = sandbox_proc.remote.webhooks  # GET /_labkit/webhooks
    assert log["chaos"] == {"jitter": 0.15, "duplicate": 0.3, "seed": None}
    assert log["duplicates"] > 0 and log["out_of_order"] > 0, {k: v for k, v in log.items() if k != "webhooks"}


def test_from_labkit_setup_to_an_answered_call(sandbox_proc, live, tmp_path, capsys):  # noqa: ARG001 - last
    """A new account's path without the dashboard: `labkit setup` writes .env, then a live lab started
    from it answers a call to the number and the caller hears the music (notebook 01)."""
    from dotenv import dotenv_values

    from labkit import cli

    r = sandbox_proc.rows
    env_file = tmp_path / ".env"
    args = ["setup", "--api-key", r["API key"], "--api-secret", r["API secret"], "--api-host", sandbox_proc.host,
            "--env-file", str(env_file), "--key-file", str(tmp_path / "private.key"), "--yes"]
    code = cli.main([*args, "--take-number", "--signature-secret", r["signature secret"]])
    out = capsys.readouterr().out
    assert code == 0 and r["API secret"] not in out and r["signature secret"] not in out, out
    written = dotenv_values(env_file)
    assert written["VONAGE_NUMBER"] == r["number"] and written["VONAGE_APPLICATION_ID"] != r["application id"]
    assert written["VONAGE_SIGNATURE_SECRET"] == r["signature secret"]
    code = cli.main(args)  # `labkit setup` twice: one application, and .env and the link agree
    out = capsys.readouterr().out
    assert code == 0 and "Reusing the Voice application 'labkit'" in out, out
    http, _ = account_http(sandbox_proc)
    listed = http.get(http.api_host, "/v2/applications", {"page_size": 100}, "basic")["_embedded"]["applications"]
    assert [a["id"] for a in listed if a["name"] == "labkit"] == [written["VONAGE_APPLICATION_ID"]]
    assert dotenv_values(env_file) == written and the_number(sandbox_proc)["app_id"] == written["VONAGE_APPLICATION_ID"]
    assert next(a for a in listed if a["name"] == "labkit")["privacy"] == {"improve_ai": False}
    port = free_port()
    extra = {"LABKIT_MODE": "live", "PUBLIC_URL": f"http://127.0.0.1:{port}", "LABKIT_PORT": str(port)}
    lab = Lab(Settings.load(env_file=env_file, environ=extra), quiet=True)
    try:
        lab._start()
        assert lab.settings.application_id == written["VONAGE_APPLICATION_ID"]
        lab.on_answer(lambda fields: [ncco.talk("Welcome."), ncco.stream(lab, "music.mp3")])
        uuid = dial(sandbox_proc, "447700900007")
        call = lab.wait_for_call(timeout=30)
        assert call.uuid == uuid
        call.wait_for("completed", timeout=60)
        assert heard(sandbox_proc, "447700900007", call).correlate(music(lab, 1, 3)) > 0.8
    finally:
        lab.stop()
