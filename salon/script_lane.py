"""A Lua script called on a plain connection per thread: the read path's Redis round trip.

A repeat of /v1/slots or /v1/dates that this process does not keep costs one script call,
and a new exposure two. Through redis-py a call costs ~110 µs of CPU (its pool, retry,
argument and command layers); the same EVALSHA on a socket with hiredis's reader costs
~45 µs (docs/performance.md). Errors are redis-py's (`redis.ConnectionError`,
`redis.TimeoutError`, `redis.ResponseError`), so callers handle an outage as before. Over
TLS the calls go through redis-py.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import redis

from salon import resp


class ScriptLane:
    def __init__(
        self,
        client: redis.Redis,
        source: str | bytes,
        *,
        retry: bool,
        name: str = "salon-reads",
    ) -> None:
        """`retry`: call again on a fresh connection when a kept one turns out dead (only
        for a script that may run twice: the first call may have reached Redis). `name`:
        the connections' CLIENT SETNAME, for operators (CLIENT LIST)."""
        self.source = source
        self.name = name
        self.sha = hashlib.sha1(source.encode() if isinstance(source, str) else source).hexdigest()
        self.retry = retry
        self.kwargs = dict(client.connection_pool.connection_kwargs)
        self.timeout = float(self.kwargs.get("socket_timeout") or 1.0)
        self._fallback = None if resp.is_plain(client) else client.register_script(source)
        self._local = threading.local()

    def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self._fallback is not None:
            return self._fallback(keys=keys, args=args)
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        kept = self._kept()
        try:
            return self._call(kept or self._open(), command)
        except (OSError, resp.ReplyError) as exc:
            self._drop()
            if isinstance(exc, resp.ReplyError):
                raise redis.ResponseError(str(exc)) from exc
            if kept is None or not self.retry or isinstance(exc, TimeoutError):
                raise _connection_error(exc) from exc
        try:  # the kept connection was dead (a restart, an idle timeout): once more
            return self._call(self._open(), command)
        except (OSError, resp.ReplyError) as exc:
            self._drop()
            if isinstance(exc, resp.ReplyError):
                raise redis.ResponseError(str(exc)) from exc
            raise _connection_error(exc) from exc

    def _call(self, conn: resp.Plain, command: tuple[Any, ...]) -> Any:
        try:
            return conn.call(*command)
        except resp.ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # The server does not know the script yet (a restart, SCRIPT FLUSH): load it once.
        conn.call("SCRIPT", "LOAD", self.source)
        return conn.call(*command)

    def _kept(self) -> resp.Plain | None:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn, local.pid = None, os.getpid()  # a forked child never shares a socket
        conn: resp.Plain | None = local.conn
        if conn is not None and conn.readable():
            # Nothing is owed to us between calls: a readable socket was closed by the server
            # (an idle timeout, a restart). Replaced before sending, so a call that must not
            # run twice does not fail for it.
            self._drop()
            return None
        return conn

    def _open(self) -> resp.Plain:
        conn = resp.Plain(self.kwargs, timeout=self.timeout, name=self.name)
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()


class LaneScript:
    """A lane called as redis-py calls a registered script (`script(keys=..., args=...)`):
    what Dramatiq's Redis broker does with its dispatch script."""

    def __init__(self, lane: ScriptLane) -> None:
        self.lane = lane
        self.script = lane.source
        self.sha = lane.sha

    def __call__(
        self, keys: Sequence[str] = (), args: Sequence[Any] = (), client: Any = None
    ) -> Any:
        return self.lane(keys, args)


def _connection_error(exc: OSError) -> redis.RedisError:
    if isinstance(exc, TimeoutError):
        return redis.TimeoutError(f"Redis did not answer in time: {exc}")
    return redis.ConnectionError(f"Redis connection failed: {exc}")
