"""A plain Redis connection: a socket, hiredis's reader, blocking calls.

For the two places where redis-py's layers cost more than the work: the version mirror (whose
invalidation messages redis-py would keep for its own client-side cache) and the read path's
pipelines (`salon.infra.redis_pipelines`). Plain TCP or a unix socket only; callers fall back to
redis-py for anything else (TLS).

Measured (`bench slots --redis-paths`, rate limit on; docs/performance.md): /v1/slots through
redis-py alone, as over TLS, answers 0.68x the requests a second (CPU per answer 1.32x). The
libc calls through ctypes (`has_input`, `received`, `send`) against Python's socket calls:
CPU per answer 1.03x, req/s 0.85x in 4 noisy rounds: no gain over 15 % shown.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import struct
from collections.abc import Callable
from typing import Any

import hiredis
import redis

PLAIN_CONNECTIONS = (redis.Connection, redis.UnixDomainSocketConnection)


def is_plain(client: redis.Redis) -> bool:
    return client.connection_pool.connection_class in PLAIN_CONNECTIONS


def _libc_keeping_the_gil(name: str, buffer: Any) -> Callable[..., int] | None:
    """libc's `name` (recv or send) called with the GIL held (ctypes.PyDLL); None where there
    is no libc."""
    try:
        call = getattr(ctypes.PyDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, buffer, ctypes.c_size_t, ctypes.c_int]
    call.restype = ctypes.c_ssize_t
    return call  # type: ignore[no-any-return]


_RECV = _libc_keeping_the_gil("recv", ctypes.c_void_p)
_SEND = _libc_keeping_the_gil("send", ctypes.c_char_p)
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
# No SIGPIPE for a closed connection: an EPIPE error instead (Python ignores SIGPIPE anyway).
_DONT_WAIT = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)  # not on macOS
# Where a peek puts the byte it looks at (never read; calls hold the GIL, one at a time).
_PEEKED = ctypes.create_string_buffer(1)
# What `received` takes at once (more waits for the next call): our replies are small.
INBOX_BYTES = 16384


def has_input(sock: socket.socket) -> bool:
    """Whether `sock` has something to read or was closed (never waits).

    Asked on every request (`VersionMirror.values`, a pipeline's dead-connection check), so it
    keeps the GIL: Python's socket calls let go of it around even a call that cannot block,
    and under load every such call wakes a thread waiting for the GIL that then finds it
    taken again; measured, the two checks a request made that way cost ~20 % of the
    read path's CPU (docs/performance.md)."""
    if _RECV is None:
        try:
            sock.recv(1, _PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True  # reset: as good as closed
        return True
    if _RECV(sock.fileno(), _PEEKED, 1, _PEEK) >= 0:
        return True  # a byte, or 0: closed
    # Else an error: as good as closed.
    return ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


def received(sock: socket.socket, inbox: ctypes.Array[ctypes.c_char]) -> bytes | None:
    """What `sock` holds now (b"" once closed), or None when it holds nothing or there is no
    libc: never waits, and keeps the GIL (see `has_input`). `inbox`: the caller's own buffer
    (a thread may lose the GIL between the receive and the copy, so it is not shared)."""
    if _RECV is None:
        return None
    n = _RECV(sock.fileno(), inbox, len(inbox), socket.MSG_DONTWAIT)
    if n >= 0:
        return ctypes.string_at(inbox, n)
    code = ctypes.get_errno()
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
        return None
    raise OSError(code, os.strerror(code))


def wait_readable(sock: socket.socket, seconds: float) -> bool:
    """Whether `sock` has something to read (or was closed) within `seconds`. poll, not
    select: a busy process's descriptors may be numbered beyond select's 1024."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(int(seconds * 1000)))


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
        self._inbox = ctypes.create_string_buffer(INBOX_BYTES)
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
        """Send `data`: first without waiting and holding the GIL (see `has_input`; a command
        fits in the socket's buffer, so this is the whole send), then what is left, if any,
        waiting for room as a blocking send does."""
        sent = 0
        if _SEND is not None:
            sent = _SEND(self.sock.fileno(), data, len(data), _DONT_WAIT)
            if sent == len(data):
                return
            if sent < 0:
                code = ctypes.get_errno()
                if code not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    raise OSError(code, os.strerror(code))
                sent = 0
        try:
            self.sock.sendall(data[sent:])
        except BlockingIOError as exc:  # the kernel's send timeout
            raise TimeoutError("Redis did not take the command in time") from exc

    def read(self, *, ready: bool = False) -> Any:
        """The next reply, waiting for it. `ready`: it should have arrived already (a reply
        owed to a command sent earlier), so what the socket holds is taken first without
        letting go of the GIL (see `has_input`)."""
        try:
            while (reply := self.reader.gets()) is False:
                data = received(self.sock, self._inbox) if ready else None
                ready = False
                if data is None:
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
