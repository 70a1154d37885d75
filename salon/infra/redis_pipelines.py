"""Redis pipelines on a plain connection per thread, for the round trips every request makes.

A repeat of /v1/slots or /v1/dates costs two round trips here (the stored answer, with the
catalogue version and the rate-limit count; then the counters it was computed under), a new
exposure the lookup and a store sent without waiting; every booking write one pipeline after
its commit. Through redis-py a round trip costs ~110-130 µs of CPU (its pool, retry, argument
and command layers, and Python's socket timeouts, which poll() before every send and
receive); the same pipeline on a socket with hiredis's packer and reader ~45 µs. Measured
(`bench slots --redis-paths`, rate limit on; docs/performance.md): /v1/slots with these
through redis-py answers 0.83x the requests a second (CPU per answer 1.21x): over the 15 % a
hand-written part must save. Errors are redis-py's (`redis.ConnectionError`,
`redis.TimeoutError`, `redis.ResponseError`), so callers handle an outage as before. Over TLS
the calls go through redis-py.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import hiredis
import redis

from salon.infra import redis_socket
from salon.infra.redis_breaker import breaker_of

_T = TypeVar("_T")

log = logging.getLogger(__name__)

# Bumped in a forked child: a connection made before the fork is never used after it. (A
# counter, not os.getpid(): that is a syscall per call.)
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class ThreadConnections:
    """A plain connection per thread (and per process: a forked child opens its own)."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.name = name  # the connections' CLIENT SETNAME, for operators (CLIENT LIST)
        self.kwargs = dict(client.connection_pool.connection_kwargs)
        self.timeout = float(self.kwargs.get("socket_timeout") or 1.0)
        # The client's breaker guards these calls too: a frozen Redis costs one timeout.
        self.breaker = breaker_of(client)
        self._local = threading.local()

    def run(self, work: Callable[[redis_socket.Plain], _T], *, retry: bool) -> _T:
        """`work` on this thread's connection, with redis-py's errors. `retry`: run it again
        on a fresh connection when the kept one turns out dead (only for work that may run
        twice: the first attempt may have reached Redis)."""
        if self.breaker is None:
            return self._run(work, retry)
        return self.breaker.call(self._run, work, retry)

    def _run(self, work: Callable[[redis_socket.Plain], _T], retry: bool) -> _T:
        kept = self._kept()
        try:
            return work(kept or self._open())
        except (OSError, redis_socket.ReplyError) as exc:
            self._drop()
            if isinstance(exc, redis_socket.ReplyError):
                raise _reply_error(exc) from exc
            if kept is None or not retry or isinstance(exc, TimeoutError):
                raise _connection_error(exc) from exc
        try:  # the kept connection died with the call in flight (a restart): once more
            return work(self._open())
        except (OSError, redis_socket.ReplyError) as exc:
            self._drop()
            if isinstance(exc, redis_socket.ReplyError):
                raise _reply_error(exc) from exc
            raise _connection_error(exc) from exc

    def send_only(self, data: bytes, replies: int) -> None:
        """Send `data` on this thread's connection without waiting for its `replies`: they
        are read before the thread's next call (an error reply is logged). Raises redis-py's
        errors only when `data` could not be sent; never sent twice."""
        if self.breaker is None:
            self._send_only(data, replies)
        else:
            self.breaker.call(self._send_only, data, replies)

    def _send_only(self, data: bytes, replies: int) -> None:
        try:
            (self._kept() or self._open()).send(data)
        except (OSError, redis_socket.ReplyError) as exc:  # the latter: a new connection refused
            self._drop()
            if isinstance(exc, redis_socket.ReplyError):
                raise _reply_error(exc) from exc
            raise _connection_error(exc) from exc
        self._local.owed = replies

    def _kept(self) -> redis_socket.Plain | None:
        local = self._local
        if getattr(local, "forks", None) != _forks:
            # A forked child never shares a socket (nor what was owed on it).
            local.conn, local.forks, local.owed = None, _forks, 0
        conn: redis_socket.Plain | None = local.conn
        if conn is not None and local.owed:
            owed, local.owed = local.owed, 0
            if not self._settle(conn, owed):
                self._drop()
                return None
        if conn is not None and conn.readable():
            # Nothing is owed to us between calls: a readable socket was closed by the server
            # (an idle timeout, a restart). Replaced before sending, so a call that must not
            # run twice does not fail for it.
            self._drop()
            return None
        return conn

    def _settle(self, conn: redis_socket.Plain, owed: int) -> bool:
        """Read the replies owed to a `send_only` (there by now, unless Redis is slow); False
        when the connection can no longer be used, redis.TimeoutError when Redis does not
        answer."""
        try:
            for _ in range(owed):
                error = _first_error(_flattened(conn.read()))
                if error is not None:
                    log.warning("Redis refused a command sent without waiting: %s", error)
        except TimeoutError as exc:
            # Redis does not answer (frozen): a new connection would wait as long again.
            self._drop()
            raise _connection_error(exc) from exc
        except OSError as exc:
            log.warning("the reply to a command sent without waiting was lost: %s", exc)
            return False
        return True

    def _open(self) -> redis_socket.Plain:
        conn = redis_socket.Plain(self.kwargs, timeout=self.timeout, name=self.name)
        self._local.conn, self._local.forks, self._local.owed = conn, _forks, 0
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn, self._local.owed = None, 0
        if conn is not None and getattr(self._local, "forks", None) == _forks:
            conn.close()


class RedisPipelines:
    """Pipelines of plain commands on a connection per thread: what a write sends after its
    commit (version bumps, the done signal), what a public read looks up and stores. Over
    TLS they go through a redis-py pipeline."""

    def __init__(self, client: redis.Redis, name: str = "salon-writes") -> None:
        self.client = client
        self._plain = redis_socket.is_plain(client)
        self._connections = ThreadConnections(client, name)

    def pipeline(
        self, commands: Sequence[tuple[Any, ...]], *, retry: bool = True, transaction: bool = False
    ) -> list[Any]:
        """Every command's reply, in order; the first error reply raised (as redis-py's
        pipelines do: NOSCRIPT as `NoScriptError`) once all were read. `retry`: send them again
        when a kept connection turns out dead with them in flight (only for commands that do
        no harm twice; see `ThreadConnections.run`). `transaction`: in MULTI/EXEC."""
        if not commands:
            return []
        if not self._plain:
            pipe = self.client.pipeline(transaction=transaction)
            for command in commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return list(pipe.execute())
        if transaction:
            commands = [("MULTI",), *commands, ("EXEC",)]
        replies = self._connections.run(lambda conn: _send_all(conn, commands), retry=retry)
        if not transaction:
            return replies
        if replies[-1] is None:
            raise redis.exceptions.WatchError("transaction aborted")
        error = _first_error(replies[-1])  # EXEC's replies: Redis runs the rest around one
        if error is not None:
            raise _reply_error(error)
        return list(replies[-1])

    def send_later(self, commands: Sequence[tuple[Any, ...]], *, transaction: bool = False) -> None:
        """Send `commands` without waiting for their replies, which this thread reads before
        its next call on its connection (an error reply is logged): for best-effort writes
        whose outcome nobody waits for. Waiting for the reply is a blocking receive, and the
        thread then has to win the GIL back (docs/performance.md). Raises redis-py's errors
        only when the commands could not be sent; never sends them twice. Over TLS: a
        redis-py pipeline, waited for."""
        if not commands:
            return
        if not self._plain:
            self.pipeline(commands, retry=False, transaction=transaction)
            return
        if transaction:
            commands = [("MULTI",), *commands, ("EXEC",)]
        data = b"".join([hiredis.pack_command(c) for c in commands])
        self._connections.send_only(data, len(commands))


def _flattened(reply: Any) -> list[Any]:
    """A reply and, for EXEC's, the replies inside it."""
    return [reply, *reply] if isinstance(reply, list) else [reply]


def _first_error(replies: Sequence[Any]) -> redis_socket.ReplyError | None:
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            return redis_socket.ReplyError(str(reply))
    return None


def _send_all(conn: redis_socket.Plain, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    conn.send(b"".join([hiredis.pack_command(c) for c in commands]))
    replies = [conn.read() for _ in commands]
    error = _first_error(replies)
    if error is not None:
        raise error
    return replies


def _reply_error(exc: redis_socket.ReplyError) -> redis.ResponseError:
    if str(exc).startswith("NOSCRIPT"):
        return redis.exceptions.NoScriptError(str(exc))
    return redis.ResponseError(str(exc))


def _connection_error(exc: OSError) -> redis.RedisError:
    if isinstance(exc, TimeoutError):
        return redis.TimeoutError(f"Redis did not answer in time: {exc}")
    return redis.ConnectionError(f"Redis connection failed: {exc}")
