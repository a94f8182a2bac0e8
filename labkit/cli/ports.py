"""Free local ports for the commands that start servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the OS says is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first_free_port(start: int, tries: int = 20) -> int:
    """The first free port from `start` on (JupyterLab's habit), else any free one."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()
