"""The APIs as Vonage serves them, each as its model (what it does) and its routes (HTTP only):
`voice` + `voice_input` + `voice_routes` (Voice API v1 calls, streams, talks, DTMF, files),
`accounts` + `account_models` + `account_routes` (the account's applications and numbers: Application
API v2, Numbers API), `application_v1` (the Application API v1 over the same applications),
`account_store` (applications and number links kept under the sandbox home across restarts), `auth`
(JWT and Basic as Vonage checks them).

May import: sandbox.engine, sandbox.audio, sandbox.wire, media and the foundations; never the control
surface (the sandbox's own, not Vonage's) or the facade.
"""
