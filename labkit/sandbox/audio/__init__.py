"""Audio as the platform makes and hears it: `mixer` (a conversation's 20 ms mix), `sources` (files,
URLs, tones, speech), `tts` + `tts_worker` (espeak-ng speech in a worker process), `heard_audio` (what
a phone heard, spilled to disk), `websocket_leg` (a call's audio over the Voice WebSocket, as Vonage
dials it).

May import: sandbox.wire, media and the foundations; nothing of the engine above it.
"""
