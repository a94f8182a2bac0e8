"""The platform model and the call-script engine: `platform` (state and registry) with `platform_audio`
(players and the mixing tick), `legs`, `conversations`, `lifecycle` (each leg's story), `machine` (answering
machine detection), `recordings`, `clock`, `phones` (virtual phones), the NCCO engine (`ncco`,
`ncco_capture`) and its schema (`ncco_schema`), and `exceptions` (the errors it raises, each with the
status and body Vonage answers).

May import: sandbox.audio, sandbox.wire, media and the foundations. Never the APIs, the control surface
or the facade above it: they call it.
"""
