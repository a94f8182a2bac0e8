"""`GET /_labkit/openapi.json`: the control API described in OpenAPI 3.1 (what routes.py serves).

Kept next to the routes and checked by a test that every `/_labkit/` route is described and that real
answers validate against these schemas, so a client in any language (or the softphone page) can rely on it.
"""

from __future__ import annotations

from typing import Any

NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_STRING = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "description": "RFC 7807 error (the same style as the Voice API's).",
        "required": ["type", "title", "detail", "instance"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "detail": {"type": "string"},
                       "instance": {"type": "string"},
                       "invalid_parameters": {"type": "array", "items": {"type": "object"}}},
    },
    "PhoneSettings": {
        "type": "object", "required": ["number"], "additionalProperties": False,
        "properties": {
            "number": {"type": "string", "description": "E.164 without '+', e.g. 447700900001"},
            "answer_after": {"type": "number", "minimum": 0, "description": "seconds of ringing before the outcome"},
            "outcome": {"enum": ["answer", "busy", "reject", "unanswered", "fail", "manual"],
                        "description": "what the phone does when called; manual rings until answer/reject"},
            "hangup_after": {**NULLABLE_NUMBER, "description": "hang up this many seconds after answering"},
            "machine": {"type": "boolean", "description": "an answering machine (greeting + beep; machine "
                                                          "detection reports it)"},
        },
    },
    "Phone": {
        "type": "object",
        "required": ["number", "state", "outcome", "answer_after", "hangup_after", "machine", "call", "calls",
                     "speaking", "position", "heard_rate", "received_dtmf"],
        "properties": {
            "number": {"type": "string"}, "state": {"enum": ["idle", "ringing", "answered"]},
            "outcome": {"type": "string"}, "answer_after": {"type": "number"}, "hangup_after": NULLABLE_NUMBER,
            "machine": {"type": "boolean"}, "call": NULLABLE_STRING,
            "calls": {"type": "array", "items": {"type": "string"}}, "speaking": {"type": "boolean"},
            "position": {"type": "integer", "description": "samples heard so far at heard_rate (for ?since=)"},
            "heard_rate": {"const": 16000}, "received_dtmf": {"type": "string"},
        },
    },
    "PhoneList": {"type": "object", "required": ["phones"],
                  "properties": {"phones": {"type": "array", "items": {"$ref": "#/components/schemas/Phone"}}}},
    "Webhook": {
        "type": "object", "required": ["kind", "url", "method", "payload", "answer"],
        "properties": {
            "kind": {"enum": ["answer", "event", "instruction"]}, "url": {"type": "string"},
            "method": {"type": "string"}, "payload": {"type": "object"}, "sent_at": {"type": "number"},
            "answer": {"type": ["object", "null"], "description": "what the app answered (null while pending)",
                       "properties": {"ok": {"type": "boolean"}, "status": {"type": ["integer", "null"]},
                                      "body": {}, "error": NULLABLE_STRING, "attempts": {"type": "integer"},
                                      "url": {"type": "string"},
                                      "ms": {"type": "number", "description": "time the app took, retries in"}}},
        },
    },
    "Call": {
        "type": "object",
        "required": ["uuid", "conversation_uuid", "direction", "kind", "status", "from", "to", "ncco", "errors",
                     "webhooks"],
        "properties": {
            "uuid": {"type": "string"}, "conversation_uuid": {"type": "string"},
            "direction": {"enum": ["inbound", "outbound"]}, "kind": {"type": "string"},
            "status": {"type": "string"}, "detail": NULLABLE_STRING,
            "from": {"type": "object"}, "to": {"type": "object"}, "phone": NULLABLE_STRING,
            "parent": NULLABLE_STRING, "children": {"type": "array", "items": {"type": "string"}},
            "created_at": NULLABLE_STRING, "answered_at": NULLABLE_STRING, "ended_at": NULLABLE_STRING,
            "duration": {"type": "integer"},
            "ncco": {"type": "object", "description": "the NCCO running and the index of its current action",
                     "properties": {"actions": {"type": ["array", "null"]}, "current": {"type": ["integer", "null"]}}},
            "errors": {"type": "array", "items": {"type": "string"}, "description": "why an NCCO was refused"},
            "problem": {**NULLABLE_STRING, "description": "the first error in the app author's words, with what to "
                                                          "do (\"your app at URL refused the connection: ...\")"},
            "region_url": {**NULLABLE_STRING, "description": "the region_url its answer webhook carried"},
            "control_hosts": {"type": "object", "additionalProperties": {"type": "integer"},
                              "description": "Voice API requests about the call, by the host they were sent to"},
            "webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}},
            "played": {"type": "array", "items": {"$ref": "#/components/schemas/Played"},
                       "description": "what the platform played to this leg (NCCO or REST talk, stream, DTMF), "
                                      "so a test can check what the caller was told without speech recognition"},
            "ended_by": {"enum": ["phone", "app", "ncco", "platform", None],
                         "description": "who ended the call: the phone (caller hung up), the app (REST hangup or "
                                        "its WebSocket closed), the NCCO (ran out of actions), the platform"},
            "finished": {"type": "boolean", "description": "ended, and every webhook of it answered"},
            "time": {"type": "number", "description": "call seconds since answer (-1 before; stops at the end): "
                                                      "the offset into heard.wav?call= of what is heard now"},
        },
    },
    "Played": {
        "type": "object", "required": ["kind", "slot", "at", "seconds", "by"],
        "properties": {
            "kind": {"enum": ["talk", "stream", "dtmf"]}, "text": {"type": "string"}, "url": {"type": "string"},
            "digits": {"type": "string"}, "slot": {"type": "string"}, "by": {"enum": ["ncco", "rest"]},
            "at": {"type": "number", "description": "call seconds after answer when it began (0 before answer); "
                                                    "the offset into heard.wav?call="},
            "seconds": {**NULLABLE_NUMBER, "description": "its length, loops included (null: loops forever)"},
        },
    },
    "CallList": {"type": "object", "required": ["calls"],
                 "properties": {"calls": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}}}},
    "Application": {
        "type": "object", "required": ["application_id", "number", "base_url"],
        "properties": {k: NULLABLE_STRING for k in (
            "application_id", "api_key", "number", "base_url", "answer_url", "answer_method", "event_url",
            "event_method", "fallback_answer_url")} | {"signed_webhooks": {"type": "boolean"}},
    },
    "Said": {"type": "object", "required": ["seconds"], "properties": {
        "seconds": {"type": "number"},
        "queued_seconds": {"type": "number", "description": "speech queued and not yet spoken, this included "
                                                            "(how far behind live a microphone runs)"},
        "starts_at": {"type": ["number", "null"], "description": "the call second this speech starts at (as "
                                                                 "the call's `time` and heard.wav count; null "
                                                                 "outside an answered call)"}}},
    "Reset": {"type": "object", "required": ["reset", "cleared", "kept"], "properties": {
        "reset": {"const": True},
        "cleared": {"type": "array", "items": {"type": "string"}, "description": "what was forgotten"},
        "kept": {"type": "array", "items": {"type": "string"}, "description": "what stays as it was"}}},
    "WebhookLog": {
        "type": "object",
        "required": ["chaos", "sent", "failed", "pending", "duplicates", "out_of_order", "webhooks"],
        "properties": {
            "chaos": {"type": ["object", "null"], "description": "chaos delivery (`labkit sandbox --chaos`), or null",
                      "properties": {"jitter": {"type": "number"}, "duplicate": {"type": "number"},
                                     "seed": {"type": ["integer", "null"]}}},
            "sent": {"type": "integer", "description": "webhooks kept (the last 2000)"},
            "failed": {"type": "integer", "description": "of those, delivered without a 2xx answer after the retry "
                                                         "(and the fallback URL for answer/instruction webhooks)"},
            "pending": {"type": "integer", "description": "of those, still in flight"},
            "duplicates": {"type": "integer", "description": "sent again with the same kind, URL and payload"},
            "out_of_order": {"type": "integer", "description": "status events sent after a later one of their leg"},
            "webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}},
        },
    },
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _op(summary: str, ok: tuple[str, str, str], *, body: dict | None = None, params: list | None = None,
        errors: tuple[int, ...] = (400, 404), also: tuple[str, str, str] | None = None) -> dict:
    """One operation: its success answer (`also`: a second one, e.g. 200 beside 201) and its errors."""
    code, schema, what = ok
    responses: dict[str, Any] = {code: _json_response(schema, what)}
    if also is not None:
        responses[also[0]] = _json_response(also[1], also[2])
    for status in errors:
        responses[str(status)] = {"description": {400: "bad input", 404: "no such phone or call",
                                                  409: "the phone's state does not allow it"}[status],
                                  "content": {"application/problem+json": {"schema": _ref("Problem")}}}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


NUMBER = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
UUID = {"name": "uuid", "in": "path", "required": True, "schema": {"type": "string"}}
WAIT = {"name": "wait", "in": "query", "required": False, "schema": {"type": "number", "minimum": 0, "maximum": 25},
        "description": "a long poll: hold the answer up to this many seconds until the condition holds "
                       "(woken by the change itself, not polled); then check the answer"}


def _json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def paths() -> dict:
    phone_ok = ("200", "Phone", "the phone")
    act = {"post": _op("", phone_ok, params=[NUMBER], errors=(404, 409))}
    return {
        "/_labkit/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
            "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/_labkit/application": {"get": _op("The sandbox application (id, number, webhooks)",
                                            ("200", "Application", "the application"), errors=())},
        "/_labkit/phones": {
            "get": _op("List the virtual phones with their state", ("200", "PhoneList", "phones"), errors=()),
            "post": _op("Create or update a phone (fields left out keep their value)",
                        ("201", "Phone", "the phone, created"), also=("200", "Phone", "the phone, updated"),
                        body=_json_body(_ref("PhoneSettings")), errors=(400,)),
        },
        "/_labkit/phones/{number}": {"get": _op(
            "One phone; with wait, a long poll held until it is in `state` and/or has had more than `calls` calls",
            phone_ok, errors=(400, 404), params=[
                NUMBER, WAIT,
                {"name": "state", "in": "query", "required": False,
                 "schema": {"enum": ["idle", "ringing", "answered"]}},
                {"name": "calls", "in": "query", "required": False, "schema": {"type": "integer"},
                 "description": "answer once the phone has been in more than this many calls (a call arrived)"}])},
        "/_labkit/phones/{number}/dial": {"post": _op(
            "The phone calls a number (default: the application's): an inbound call to that application",
            ("201", "Call", "the new call"), params=[NUMBER], errors=(400, 404, 409),
            body={"content": {"application/json": {"schema": {"type": "object",
                                                              "properties": {"to": {"type": "string"}}}}}})},
        "/_labkit/phones/{number}/answer": {"post": {**act["post"], "summary": "Answer the ringing call"}},
        "/_labkit/phones/{number}/reject": {"post": {**act["post"], "summary": "Decline the ringing call"}},
        "/_labkit/phones/{number}/hangup": {"post": {**act["post"], "summary": "Put the phone down"}},
        "/_labkit/phones/{number}/press": {"post": _op(
            "Press keys (0-9 * # A-D), one every 0.3 s of call time", phone_ok, params=[NUMBER],
            errors=(400, 404, 409),
            body=_json_body({"type": "object", "required": ["digits"], "properties": {
                "digits": {"type": "string"}, "duration_ms": {"type": "integer"}}}))},
        "/_labkit/phones/{number}/say": {"post": _op(
            "What the phone says into its call: text (synthesized), or a WAV/MP3 body (?text= is its transcript "
            "for speech input)", ("200", "Said", "seconds of speech queued"), errors=(400, 404),
            params=[NUMBER, {"name": "text", "in": "query", "required": False, "schema": {"type": "string"}}],
            body={"required": True, "content": {
                "application/json": {"schema": {"type": "object", "required": ["text"],
                                                "properties": {"text": {"type": "string"}}}},
                "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                "audio/mpeg": {"schema": {"type": "string", "format": "binary"}}}})},
        "/_labkit/phones/{number}/heard.wav": {"get": {
            "summary": "What the phone heard (16 kHz mono WAV): all, since a sample position, or in one call",
            "parameters": [NUMBER,
                           {"name": "since", "in": "query", "required": False, "schema": {"type": "integer"}},
                           {"name": "call", "in": "query", "required": False, "schema": {"type": "string"}},
                           {"name": "wait", "in": "query", "required": False,
                            "schema": {"type": "number", "minimum": 0, "maximum": 10},
                            "description": "with since: a long poll. Hold the answer up to this many seconds "
                                           "until 40 ms were heard after `since` (listening live without a "
                                           "WebSocket; the softphone page uses /audio)"}],
            "responses": {"200": {
                "description": "WAV; X-Labkit-Position is the end position (pass it as ?since= next time); "
                               "X-Labkit-Time is when the answer was made (Unix ms)",
                "headers": {h: {"schema": {"type": "integer"}} for h in
                            ("X-Labkit-Start", "X-Labkit-Position", "X-Labkit-Rate", "X-Labkit-Time")},
                "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                "400": {"description": "since or wait is not a number",
                        "content": {"application/problem+json": {"schema": _ref("Problem")}}},
                "404": {"description": "no such phone",
                        "content": {"application/problem+json": {"schema": _ref("Problem")}}}}}},
        "/_labkit/phones/{number}/audio": {"get": {
            "summary": "The phone's ears and voice, live, as one WebSocket (how the softphone page listens and talks)",
            "description": (
                "Upgrade to a WebSocket (ws:// or wss://, the control API's rule: loopback, or the application's "
                "JWT; a browser's Origin must be the sandbox's own). Out: each 20 ms the phone hears, the moment "
                "the sandbox mixes it, as a binary message of 16-bit little-endian PCM at 16 kHz (640 bytes); "
                "now and then a text message {\"t\": Unix ms sent, \"age_ms\": age of its mean sample then, "
                "\"position\": its first sample in heard.wav} describes the binary message after it; every 25 "
                "pieces of voice, {\"mic\": {...}} gives the voice's delay by stage. In: binary messages of the "
                "same format are the phone's voice in its call (a cushion as long as the measured arrival jitter "
                "goes first when it has run dry, and pieces are dropped when more than that waits, to stay "
                "live; nothing is kept while the phone is not in a call); {\"listen\": false} pauses the audio "
                "out; {\"t\": Unix ms} dates the next piece of voice. Limits: a message is at most 16 KB "
                "(else close 1009), voice at most 1.5x real time over a second (else close 1008), 32 sockets "
                "in the sandbox. Measured in headless chromium on the softphone page "
                "(tests/sandbox/test_sandbox_page.py, a loaded 2-core machine): call to speaker 33-73 ms with the "
                "browser's own output latency, microphone to call 25-46 ms."),
            "parameters": [NUMBER],
            "responses": {
                "101": {"description": "Switching Protocols: the WebSocket is open"},
                "400": {"description": "not a WebSocket request, or 32 sockets are open already",
                        "content": {"application/problem+json": {"schema": _ref("Problem")}}},
                "403": {"description": "a browser page from another origin"},
                "404": {"description": "no such phone",
                        "content": {"application/problem+json": {"schema": _ref("Problem")}}}}}},
        "/_labkit/calls": {"get": _op("Every call leg: status, NCCO progress, webhooks sent and their answers",
                                      ("200", "CallList", "calls, oldest first"), errors=())},
        "/_labkit/calls/{uuid}": {"get": _op(
            "One call leg; with wait and until, a long poll held until the call reached `until` or ended",
            ("200", "Call", "the call (as it is when the wait ends: check its status)"), errors=(400, 404),
            params=[UUID, WAIT, {"name": "until", "in": "query", "required": False, "schema": {"type": "string"},
                                 "description": "a status the call went through (ringing, answered, completed, "
                                                "...), `ended` (hung up), `finished` (its last webhook "
                                                "answered), `action:NAME` (its NCCO runs that action now; "
                                                "`action:input` once it listens, `action:connect` once its "
                                                "leg is dialled), `played:KIND` (a talk, stream or dtmf "
                                                "played to its end) or `time:T` (T seconds of call time "
                                                "after answer)"}])},
        "/_labkit/webhooks": {"get": _op("Every webhook sent, oldest first, with chaos delivery's duplicates and "
                                         "reordering counted", ("200", "WebhookLog", "the webhook log"), errors=())},
        "/_labkit/page/{name}": {"get": {
            "summary": "A file of the softphone page served at / (sandbox.js, callaudio.js, ...)",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file", "content": {
                "text/javascript": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}}},
                "404": {"description": "no such file",
                        "content": {"application/problem+json": {"schema": _ref("Problem")}}}}}},
        "/_labkit/reset": {"post": _op(
            "Forget every call, phone, recording and the webhook log; keep the account, its applications "
            "(with their keys and webhooks) and numbers with their links, the certificate and chaos settings",
            ("200", "Reset", "what was cleared and what was kept"), errors=())},
    }


def openapi(base_url: str = "") -> dict:
    """The whole document (`servers` points at this sandbox)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "labkit sandbox control API", "version": "1.0.0",
                 "description": "Drive the sandbox's virtual phones and inspect its calls, from any language. "
                                "Loopback callers need no credentials; others send the application's JWT. "
                                "The sandbox's / is a softphone page built on these routes."},
        "servers": [{"url": base_url}] if base_url else [],
        "paths": paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"applicationJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{}, {"applicationJwt": []}],
    }
