"""Keep-alive `requests` sessions lent to one webhook at a time, so the next call's webhooks reuse the
connection to the app.

Why: sessions used to be per thread, and each call's webhooks have a thread of their own, so every call
opened a new connection to the app (and a new handler thread in a threaded server): about 0.4 ms more
on the way to `answered` (bench/lab/bench_call_setup.py). A session serves one request at a time
(`requests.Session` is not documented as thread-safe). UNCONFIRMED: whether Vonage reuses its
connections to an app; nothing an app may rely on differs either way.
"""

from __future__ import annotations

import threading

import requests


class SessionPool:
    """Idle sessions by kind: loopback ones (the lab's own server: never through a proxy) and others."""

    def __init__(self) -> None:
        self._idle: dict[bool, list[requests.Session]] = {True: [], False: []}
        self._lock = threading.Lock()
        self.closed = False

    def borrow(self, loopback: bool) -> requests.Session:
        with self._lock:
            if self._idle[loopback]:
                return self._idle[loopback].pop()
        sess = requests.Session()
        sess.trust_env = not loopback
        return sess

    def give_back(self, loopback: bool, sess: requests.Session, *, usable: bool = True) -> None:
        """Return a session after its request; one whose request failed midway is closed instead."""
        with self._lock:
            if usable and not self.closed:
                self._idle[loopback].append(sess)
                return
        sess.close()

    def close(self) -> None:
        """Close the idle connections (the sandbox stopped); a session still in use closes when given back."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle[True] + self._idle[False], {True: [], False: []}
        for sess in idle:
            sess.close()
