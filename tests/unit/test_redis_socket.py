"""A plain connection's socket calls (`salon.infra.redis_socket`): the peek for a closed
connection, sends that wait for room or time out, replies read whole."""

from __future__ import annotations

import socket
import threading

import pytest

from salon.infra import redis_socket


def test_nothing_to_read_then_data_left_where_it_was_then_closed() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert not redis_socket.has_input(ours)
        theirs.sendall(b"+PONG\r\n")
        assert redis_socket.has_input(ours)
        assert redis_socket.has_input(ours)  # peeked, not taken
        assert ours.recv(100) == b"+PONG\r\n"
        assert not redis_socket.has_input(ours)
        theirs.close()
        assert redis_socket.has_input(
            ours
        )  # closed reads as something to read: the caller drops it


def test_a_closed_socket_of_our_own_reads_as_closed() -> None:
    ours, theirs = socket.socketpair()
    ours.close()
    with theirs:
        assert redis_socket.has_input(ours)  # its descriptor is gone: as good as closed


def plain_over(sock: socket.socket) -> redis_socket.Plain:
    """A `Plain` around an already connected socket (no handshake with a server)."""
    conn = redis_socket.Plain.__new__(redis_socket.Plain)
    conn.sock = sock
    redis_socket.kernel_timeouts(sock, 0.5)
    return conn


def test_a_send_larger_than_the_socket_takes_at_once_is_sent_whole() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = bytes(range(256)) * 4096  # 1 MiB: the first send takes part of it
        got = bytearray()

        def drain() -> None:
            while len(got) < len(data):
                got.extend(theirs.recv(65536))

        reader = threading.Thread(target=drain)
        reader.start()
        plain_over(ours).send(data)
        reader.join(5)
        assert bytes(got) == data


def test_a_send_to_a_closed_connection_is_an_os_error() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        theirs.close()
        with pytest.raises(OSError):
            plain_over(ours).send(b"*1\r\n$4\r\nPING\r\n")


def test_a_send_nobody_reads_times_out() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = plain_over(ours)
        with pytest.raises(TimeoutError):
            for _ in range(1000):  # until both buffers are full
                conn.send(b"x" * 65536)


def test_a_reply_owed_is_read_whole_also_when_it_comes_in_parts() -> None:
    import hiredis

    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = plain_over(ours)
        conn.reader = hiredis.Reader()
        theirs.sendall(b":41\r\n$5\r\nhel")  # one whole reply, and a part of the next
        assert conn.read() == 41
        threading.Timer(0.05, lambda: theirs.sendall(b"lo\r\n")).start()
        assert conn.read() == b"hello"  # the rest waited for
        theirs.close()
        with pytest.raises(redis_socket.Closed):
            conn.read()
