"""The emulator's own control surface (like moto's `moto_api`), apart from the emulated APIs:
`actions` (phones, calls, reset, free of HTTP), `routes` (the same over HTTP under `/_labkit/`),
`openapi` (its description), `page` (the softphone page at `/`), `client` (`connect(url)`: a sandbox
in another process, driven over that API).

May import: sandbox.apis (for their auth), sandbox.engine and below, media and the foundations.
"""
