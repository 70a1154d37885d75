"""The version mirror's reading, without Redis: bad bytes on its connection make it trust
nothing (callers then ask Redis), never an error in the caller's thread."""

from __future__ import annotations

import socket

import hiredis

from salon.public_times.version_mirror import VersionMirror


def test_garbage_on_the_connection_is_not_the_callers_error() -> None:
    mirror = VersionMirror({}, ["ns:"], "test")
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        mirror._socket, mirror._reader = ours, hiredis.Reader()
        mirror._forget(live=True)
        mirror._values["ns:k"] = 3
        assert mirror.values(["ns:k"]) == (3,)
        theirs.sendall(b"?not RESP\r\n")
        assert mirror.values(["ns:k"]) is None
        assert not mirror._live
    finally:
        mirror.stop()
        ours.close()
        theirs.close()
