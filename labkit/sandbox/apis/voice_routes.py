"""The Voice API's routes: wire format only; the work is in voice.py and the engine.

Routes (all need `Authorization: Bearer <RS256 JWT>` from the sandbox application's key):

    POST   /v1/calls                   201 {uuid, status, direction, conversation_uuid}
    GET    /v1/calls                   200 paged list with _links and _embedded.calls
    GET    /v1/calls/{uuid}            200 CallObj
    PUT    /v1/calls/{uuid}            204 hangup, mute, unmute, earmuff, unearmuff, transfer
    PUT    /v1/calls/{uuid}/stream     200 {"message": "Stream started", "uuid"}
    DELETE /v1/calls/{uuid}/stream     200 {"message": "Stream stopped", "uuid"}
    PUT    /v1/calls/{uuid}/talk       200 {"message": "Talk started", "uuid"}
    DELETE /v1/calls/{uuid}/talk       200 {"message": "Talk stopped", "uuid"}
    PUT    /v1/calls/{uuid}/dtmf       200 {"message": "DTMF sent", "uuid"}
    PUT    /v1/calls/{uuid}/input/dtmf 200 (asynchronous DTMF listener, voice_input.py)
    DELETE /v1/calls/{uuid}/input/dtmf 200
    GET    /v1/files/{id}              200 the recording (audio/mpeg, audio/wav or audio/ogg)

The Application API (/v2/applications) and Numbers API (/account/numbers, /number/update) use HTTP
Basic instead: see account_routes.py. A JWT of any of the account's applications is accepted here (the
check is in labkit/sandbox/app.py, which also mounts the control API under /_labkit/).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, g, request

from labkit.sandbox.apis import voice, voice_audio, voice_input
from labkit.sandbox.engine.exceptions import invalid
from labkit.sandbox.engine.ncco_schema import NCCO_MAX_BYTES
from labkit.sandbox.engine.platform import Platform


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


# The largest Voice API request body read: an NCCO at its cap (ncco_schema.NCCO_MAX_BYTES) and room for the
# rest. A bigger body is refused before it is read or parsed, so it costs the sandbox no memory.
MAX_BODY_BYTES = NCCO_MAX_BYTES + 64 * 1024


def _body() -> Any:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise invalid("ncco", "Too large", f"the request body is {request.content_length} bytes; the sandbox "
                      f"reads at most {MAX_BODY_BYTES} (an NCCO holds at most {NCCO_MAX_BYTES})")
    raw = request.get_data(cache=True)
    if not raw or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise invalid("body", "Invalid JSON body", "the request body is not valid JSON") from None


def install(app: Flask, p: Platform) -> None:
    """The Voice API's routes on `app` (labkit.sandbox.app authenticates each request first: `g.claims`)."""

    @app.post("/v1/calls")
    def create_call() -> Response:
        return _json(voice.create_call(p, _body(), application_id=g.claims.get("application_id")), 201)

    @app.get("/v1/calls")
    def list_calls() -> Response:
        return _json(voice.list_calls(p, request.args.to_dict(), application_id=g.claims.get("application_id")))

    @app.get("/v1/calls/<uuid>")
    def get_call(uuid: str) -> Response:
        return _json(voice.get_call(p, uuid))

    @app.put("/v1/calls/<uuid>")
    def update_call(uuid: str) -> Response:
        voice.update_call(p, uuid, _body())
        return Response(status=204)

    @app.put("/v1/calls/<uuid>/stream")
    def start_stream(uuid: str) -> Response:
        return _json(voice_audio.start_stream(p, uuid, _body()))

    @app.delete("/v1/calls/<uuid>/stream")
    def stop_stream(uuid: str) -> Response:
        return _json(voice_audio.stop_stream(p, uuid))

    @app.put("/v1/calls/<uuid>/talk")
    def start_talk(uuid: str) -> Response:
        return _json(voice_audio.start_talk(p, uuid, _body()))

    @app.delete("/v1/calls/<uuid>/talk")
    def stop_talk(uuid: str) -> Response:
        return _json(voice_audio.stop_talk(p, uuid))

    @app.put("/v1/calls/<uuid>/dtmf")
    def send_dtmf(uuid: str) -> Response:
        return _json(voice_audio.send_dtmf(p, uuid, _body()))

    @app.put("/v1/calls/<uuid>/input/dtmf")
    def add_dtmf_listener(uuid: str) -> Response:
        voice_input.add_dtmf_listener(p, uuid, _body())
        return Response(status=200)

    @app.delete("/v1/calls/<uuid>/input/dtmf")
    def remove_dtmf_listener(uuid: str) -> Response:
        voice_input.remove_dtmf_listener(p, uuid)
        return Response(status=200)

    @app.get("/v1/files/<file_id>")
    def get_file(file_id: str) -> Response:
        data, ctype = voice.get_file(p, file_id)
        return Response(data, mimetype=ctype)

