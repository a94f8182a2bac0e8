"""The lab's server: the Flask webhook app (answer, event, audio files) and the /socket WebSocket,
on one port, served by uvicorn on a background thread.

May import: media and the foundations. Never the sandbox (the two share only the foundations: the
WebSocket protocol, webhook signing, ports), live, the lab or anything above.
"""

from labkit.server.app import ServerContext, create_app
from labkit.server.runner import ServerRunner

__all__ = ["ServerContext", "ServerRunner", "create_app"]
