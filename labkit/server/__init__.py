"""The lab's webhook server: a Flask app (answer, event, audio files, /socket) on a background thread."""

from labkit.server.app import ServerContext, create_app
from labkit.server.runner import ServerRunner

__all__ = ["ServerContext", "ServerRunner", "create_app"]
