"""`has_input`: the peek every request makes, without letting go of the GIL."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from salon import resp


@pytest.fixture(params=["libc", "python"])
def peek(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Both ways: libc's recv holding the GIL, and Python's socket call where there is none."""
    if request.param == "python":
        monkeypatch.setattr(resp, "_RECV", None)
    yield


def test_libc_is_used_on_linux() -> None:
    assert (resp._RECV is not None) == sys.platform.startswith("linux")


@pytest.mark.usefixtures("peek")
def test_nothing_to_read_then_data_left_where_it_was_then_closed() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert not resp.has_input(ours)
        theirs.sendall(b"+PONG\r\n")
        assert resp.has_input(ours)
        assert resp.has_input(ours)  # peeked, not taken
        assert ours.recv(100) == b"+PONG\r\n"
        assert not resp.has_input(ours)
        theirs.close()
        assert resp.has_input(ours)  # closed reads as something to read: the caller drops it


@pytest.mark.usefixtures("peek")
def test_a_closed_socket_of_our_own_reads_as_closed() -> None:
    ours, theirs = socket.socketpair()
    ours.close()
    with theirs:
        assert resp.has_input(ours)  # its descriptor is gone: as good as closed
