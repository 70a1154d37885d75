"""The version counters, mirrored in this process and kept honest by Redis itself.

A stored answer is valid while the catalogue and its stylists' version counters have not moved
(`salon.public_times.stored_answers`). Asking Redis on every repeat costs a round trip and most of a
repeat's CPU; instead this process may know a counter's value, and Redis tells it the moment that
counter changes: client-side-caching invalidations in broadcast mode (`CLIENT TRACKING ... BCAST
PREFIX`), pushed to a connection of our own subscribed to `__redis__:invalidate`. No writer knows
about this: any change to a counter (an INCR, a restart, a flush) reaches every process.

A value is learned only from a read made while the mirror is live and only if no
invalidation arrived during that read (`token`/`learn`), so a change racing the read is never
lost. The mirror is trusted only while its connection answers its pings; otherwise callers
ask Redis as before. The connection is a plain one (`salon.infra.redis_socket`): redis-py keeps
`__redis__:invalidate` messages for its own client-side cache. Over TLS there is no mirror.

Measured (`bench slots --redis-paths`, rate limit on: a repeat is never answered from this
process, so the mirror saves one MGET round trip per answer; docs/performance.md): without
it /v1/slots answers 0.87x the requests a second (CPU per answer 1.13x), also 0.87x once the
pipelines go through redis-py: at or under the 15 % a hand-written part must save.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import hiredis

from salon.infra import redis_socket

log = logging.getLogger(__name__)

CHANNEL = "__redis__:invalidate"
PING_EVERY = 1.0
# Silence longer than this (no pong, no message) and nothing mirrored is trusted.
TRUST_FOR = 3.0
RETRY_AFTER = 0.5
MAX_KEYS = 100_000


class VersionMirror:
    def __init__(
        self, connection_kwargs: dict[str, Any], prefixes: Sequence[str], name: str
    ) -> None:
        self.kwargs = connection_kwargs
        self.prefixes = list(prefixes)
        self.name = name  # the connection's CLIENT SETNAME, for operators (CLIENT LIST)
        self._values: dict[str, int] = {}
        self._seq = 0  # invalidations seen: a read spanning one learns nothing
        self._live = False
        self._heard = 0.0
        self._lock = threading.Lock()
        self._socket_lock = threading.Lock()  # reading the connection: its thread or a reader
        self._socket: socket.socket | None = None
        self._reader: Any = None
        self._started = False
        self._stop = threading.Event()

    # --- what readers use ---------------------------------------------------------------

    def token(self) -> int | None:
        """Taken before a read of counters; None while the mirror is not live."""
        self._ensure_started()
        with self._lock:
            return self._seq if self._trusted() else None

    def learn(self, token: int | None, keys: Sequence[str], values: Sequence[int]) -> None:
        """Remember counters read since `token`, unless any invalidation arrived meanwhile."""
        if token is None:
            return
        with self._lock:
            if token != self._seq or not self._trusted():
                return
            if len(self._values) > MAX_KEYS:
                self._values.clear()
            self._values.update(zip(keys, values, strict=True))

    def values(self, keys: Sequence[str]) -> tuple[int, ...] | None:
        """The counters' current values, or None if any is not known to be current.

        Invalidations already on the socket are read first: Redis writes them before it
        answers the write that caused them, so a write finished before this call is seen."""
        self._drain()
        with self._lock:
            if not self._trusted():
                return None
            try:
                return tuple(map(self._values.__getitem__, keys))
            except KeyError:
                return None

    def stop(self) -> None:
        self._stop.set()

    def _trusted(self) -> bool:
        return self._live and time.monotonic() - self._heard < TRUST_FOR

    # --- the connection -----------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="version-mirror", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except (OSError, redis_socket.ReplyError) as exc:
                log.debug("version mirror connection lost: %s", exc)
            self._forget(live=False)
            self._stop.wait(RETRY_AFTER)

    def _follow(self) -> None:
        conn = redis_socket.Plain(self.kwargs, timeout=TRUST_FOR, name=self.name)
        sock, reader = conn.sock, conn.reader
        try:
            client_id = conn.call("CLIENT", "ID")
            tracking = ["CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST"]
            for prefix in self.prefixes:
                tracking += ["PREFIX", prefix]
            conn.call(*tracking)
            conn.call("SUBSCRIBE", CHANNEL)
            sock.setblocking(False)
            with self._socket_lock:
                self._socket, self._reader = sock, reader
            self._forget(live=True)
            last_ping = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                if now - last_ping >= PING_EVERY:
                    with self._socket_lock:
                        sock.sendall(hiredis.pack_command(("PING",)))
                    last_ping = now
                redis_socket.wait_readable(sock, PING_EVERY / 2)
                if not self._drain():
                    raise OSError("connection closed")
        finally:
            with self._socket_lock:
                self._socket = self._reader = None
            sock.close()

    def _drain(self) -> bool:
        """Read whatever the connection holds (never waits); False once it is closed."""
        with self._socket_lock:
            sock, reader = self._socket, self._reader
            if sock is None or reader is None or not redis_socket.has_input(sock):
                return True
            while True:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    return True
                except OSError:
                    data = b""
                if not data:
                    return self._lost()
                try:
                    reader.feed(data)
                    while (message := reader.gets()) is not False:
                        self._heard_from(message)
                except hiredis.ProtocolError:
                    # Nothing read from here on can be trusted (callers ask Redis meanwhile:
                    # never an error of theirs).
                    return self._lost()

    def _lost(self) -> bool:
        """The connection can no longer be trusted; its thread starts over."""
        with self._lock:
            self._live = False
        return False

    def _heard_from(self, message: Any) -> None:
        kind = message[0] if isinstance(message, list) and message else None
        with self._lock:
            self._heard = time.monotonic()
            if kind != b"message":
                return  # a pong
            self._seq += 1
            keys = message[2]
            if keys is None:  # a flush: everything may have changed
                self._values.clear()
                return
            for key in keys:
                self._values.pop(key.decode(), None)

    def _forget(self, *, live: bool) -> None:
        with self._lock:
            self._values.clear()
            self._seq += 1
            self._live = live
            self._heard = time.monotonic()
