"""A plain Redis connection: a socket, hiredis's reader, blocking calls.

For the read path's and the writes' pipelines (`salon.infra.redis_pipelines`), where
redis-py's layers cost more than the work. Plain TCP or a unix socket only; callers fall back
to redis-py for anything else (TLS).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import hiredis
import redis

PLAIN_CONNECTIONS = (redis.Connection, redis.UnixDomainSocketConnection)


def is_plain(client: redis.Redis) -> bool:
    return client.connection_pool.connection_class in PLAIN_CONNECTIONS


_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


def has_input(sock: socket.socket) -> bool:
    """Whether `sock` has something to read or was closed (never waits): a pipeline's check
    that the connection it kept is still open."""
    try:
        sock.recv(1, _PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset: as good as closed
    return True  # a byte, or b"": closed


def kernel_timeouts(sock: socket.socket, seconds: float) -> None:
    """Make `sock` blocking with its timeouts kept by the kernel (SO_RCVTIMEO/SO_SNDTIMEO): a
    send or a receive is then one syscall, where Python's own timeouts poll() before each
    (two extra syscalls per round trip, each letting go of the GIL). A call that times out
    raises BlockingIOError, which `Plain` turns into TimeoutError. The timeout bounds each
    send and receive, not a whole call: a call interrupted by signals, or a large send taken
    slowly, may take longer (our calls are small, and nothing signals these threads)."""
    sock.settimeout(None)
    whole = int(seconds)
    # At least a microsecond: a zero timeval means no timeout at all.
    micros = max(int((seconds - whole) * 1_000_000), 0 if whole else 1)
    timeval = struct.pack("@ll", whole, micros)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class ReplyError(Exception):
    """Redis answered a command with an error."""


class Closed(OSError):
    """The server closed the connection, or what it sent cannot be read."""


class Plain:
    """One connection, opened on construction (authenticated, database selected)."""

    def __init__(self, kwargs: dict[str, Any], *, timeout: float, name: str | None = None):
        connect_timeout = float(kwargs.get("socket_connect_timeout") or timeout)
        if kwargs.get("path"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(connect_timeout)
            try:
                sock.connect(kwargs["path"])
            except OSError:
                sock.close()
                raise
        else:
            address = (kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379)))
            sock = socket.create_connection(address, timeout=connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kernel_timeouts(sock, timeout)
        self.sock = sock
        self.reader = hiredis.Reader()
        try:
            password = kwargs.get("password")
            if password:
                username = kwargs.get("username")
                self.call("AUTH", *([username] if username else []), password)
            if int(kwargs.get("db") or 0):
                self.call("SELECT", int(kwargs["db"]))
            if name:
                self.call("CLIENT", "SETNAME", name)
        except BaseException:
            sock.close()
            raise

    def call(self, *args: Any) -> Any:
        """Send one command and wait for its reply (ReplyError if Redis refused it)."""
        self.send(hiredis.pack_command(args))
        reply = self.read()
        if isinstance(reply, hiredis.ReplyError):
            raise ReplyError(str(reply))
        return reply

    def send(self, data: bytes) -> None:
        """Send `data` whole, waiting for room as a blocking send does."""
        try:
            self.sock.sendall(data)
        except BlockingIOError as exc:  # the kernel's send timeout
            raise TimeoutError("Redis did not take the command in time") from exc

    def read(self) -> Any:
        """The next reply, waiting for it."""
        try:
            while (reply := self.reader.gets()) is False:
                data = self.sock.recv(65536)
                if not data:
                    raise Closed("connection closed by the server")
                self.reader.feed(data)
        except hiredis.ProtocolError as exc:
            raise Closed(f"unreadable reply: {exc}") from exc
        except BlockingIOError as exc:  # the kernel's receive timeout
            raise TimeoutError("Redis did not answer in time") from exc
        return reply

    def readable(self) -> bool:
        """Whether the server sent something (or closed): peeked, never waits."""
        return has_input(self.sock)

    def close(self) -> None:
        self.sock.close()
