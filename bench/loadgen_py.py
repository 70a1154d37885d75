"""Pure-Python engine of :mod:`bench.loadgen`: processes x epoll loops over raw sockets.

Why this shape: http.client/httpx cost tens of microseconds of Python per request, which
on 2 cores is CPU the server under test no longer gets. Here each request is pre-encoded
bytes sent with one ``sendall``, and a response is recognised by slicing out the status and
Content-Length (or walking chunks) only. Sockets stay blocking: we only ``recv`` after epoll
says readable, and requests are small enough that ``sendall`` never waits in practice.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.loadgen import LoadResult, Request, summarize_ns


@dataclass
class _Conn:
    sock: socket.socket
    idx: int  # index of the next request in the shared list
    buf: bytes = b""
    sent_at: int = 0
    busy: bool = False


def _parse(buf: bytes) -> tuple[int, int, bool] | None:
    """(status, response length, server closes) if ``buf`` holds a whole response."""
    he = buf.find(b"\r\n\r\n")
    if he < 0:
        return None
    status = int(buf[9:12])
    head = buf[:he].lower()
    closes = b"\r\nconnection: close" in head
    body = he + 4
    cl = head.find(b"\r\ncontent-length:")
    if cl >= 0:
        end = head.find(b"\r\n", cl + 17)
        n = int(head[cl + 17 : end if end >= 0 else len(head)])
        return (status, body + n, closes) if len(buf) >= body + n else None
    if b"\r\ntransfer-encoding: chunked" in head:
        pos = body
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            if size == 0:  # last chunk, then optional trailers, then an empty line
                end = buf.find(b"\r\n\r\n", pos)
                return (status, end + 4, closes) if end >= 0 else None
            pos = eol + 2 + size + 2
            if pos > len(buf):
                return None
    if status in (204, 304) or status < 200:
        return status, body, closes
    # No length: the body runs to EOF; treated as complete when the peer closes.
    return None


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _worker(
    host: str,
    port: int,
    payloads: list[bytes],
    first: int,
    nconn: int,
    stride: int,
    duration_ns: int | None,
    quota: int | None,
    warmup_ns: int,
    timeout_ns: int,
) -> dict[str, Any]:
    """One client process: connect, say ready, wait for "go" on stdin, run, return totals."""
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    lat = array("q")
    sel = selectors.DefaultSelector()
    try:
        conns = [_Conn(_connect(host, port), first + i) for i in range(nconn)]
    except OSError as exc:
        _say({"ready": False, "error": f"connect failed: {exc}"})
        return {}
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    _say({"ready": True})
    sys.stdin.readline()  # the parent's "go", sent once every process is connected
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter_ns()
    measure_from = t0 + warmup_ns
    deadline = measure_from + duration_ns if duration_ns is not None else None
    sent = 0  # counted only after warmup, for the quota
    last_done = measure_from
    n = len(payloads)

    def send(c: _Conn, now: int) -> None:
        nonlocal sent
        if quota is not None and now >= measure_from:
            if sent >= quota:
                return
            sent += 1
        c.sent_at = now
        c.busy = True
        c.sock.sendall(payloads[c.idx % n])
        c.idx += stride

    def reopen(c: _Conn) -> None:
        sel.unregister(c.sock)
        c.sock.close()
        c.sock, c.buf, c.busy = _connect(host, port), b"", False
        sel.register(c.sock, selectors.EVENT_READ, c)

    now = next_check = time.perf_counter_ns()
    for c in conns:
        send(c, now)
    while True:
        now = time.perf_counter_ns()
        if deadline is not None and now >= deadline:
            break
        if quota is not None and sent >= quota and not any(c.busy for c in conns):
            break  # count mode: quota reached and every answer read
        for key, _ in sel.select(0.05):
            c = key.data
            try:
                data = c.sock.recv(262144)
            except OSError:
                data = b""
            if not data:
                # Server closed: a lost in-flight request is an error, then reconnect.
                errors["read"] += 1 if c.busy else 0
                errors["reconnect"] += 1
                reopen(c)
                send(c, time.perf_counter_ns())
                continue
            c.buf += data
            parsed = _parse(c.buf)
            if parsed is None:
                continue
            status, length, closes = parsed
            done = time.perf_counter_ns()
            c.buf, c.busy = c.buf[length:], False
            if c.sent_at >= measure_from and (deadline is None or done <= deadline):
                lat.append(done - c.sent_at)
                statuses[status] += 1
                last_done = done
                if status >= 400:
                    errors["status"] += 1
            if closes:
                errors["reconnect"] += 1
                reopen(c)
            send(c, done)
        # A request stuck past the timeout is dropped and its connection replaced; checked
        # every 100 ms only, to keep the per-event path short.
        if now >= next_check:
            next_check = now + 100_000_000
            for c in conns:
                if c.busy and now - c.sent_at > timeout_ns:
                    errors["timeout"] += 1
                    reopen(c)
                    send(c, time.perf_counter_ns())
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = (time.perf_counter_ns() - t0) / 1e9
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    window = (deadline if deadline is not None else last_done) - measure_from
    for c in conns:
        c.sock.close()
    return {
        "lat": base64.b64encode(lat.tobytes()).decode(),
        "errors": dict(errors),
        "status": {str(k): v for k, v in statuses.items()},
        "cpu_frac": cpu / wall if wall else 0.0,
        "window_ns": window,
    }


def _say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def run_python(
    url: str,
    requests: list[Request],
    *,
    connections: int,
    duration: float,
    count: int | None,
    warmup: float,
    processes: int | None,
    timeout: float,
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payloads = [r.encode(f"{host}:{port}") for r in requests]
    nproc = max(1, min(processes or os.cpu_count() or 1, connections))
    # Plain child processes (not multiprocessing): nothing of the caller is re-imported or
    # copied, and a crashed client shows up as a dead process, not a silent queue wait.
    procs: list[subprocess.Popen[str]] = []
    first = 0
    try:
        nconns = [
            connections // nproc + (1 if i < connections % nproc else 0) for i in range(nproc)
        ]
        # --count split in proportion to connections; the rounding remainder goes to the first.
        quotas: list[int | None] = [None] * nproc
        if count is not None:
            shares = [count * n // connections for n in nconns]
            shares[0] += count - sum(shares)
            quotas = list(shares)
        for nconn, quota in zip(nconns, quotas, strict=True):
            cfg = {
                "host": host,
                "port": port,
                "payloads": [base64.b64encode(p).decode() for p in payloads],
                "first": first,
                "nconn": nconn,
                "stride": connections,
                "duration_ns": None if count is not None else int(duration * 1e9),
                "quota": quota,
                "warmup_ns": int(warmup * 1e9),
                "timeout_ns": int(timeout * 1e9),
            }
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen_py"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=_env(),
            )
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(cfg) + "\n")
            proc.stdin.flush()
            procs.append(proc)
            first += nconn
        for proc in procs:
            assert proc.stdout is not None
            hello = json.loads(proc.stdout.readline() or '{"error": "client process died"}')
            if not hello.get("ready"):
                raise RuntimeError(f"load generator: {hello.get('error')}")
        for proc in procs:  # "go" to all at once, so their windows line up
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        docs = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0 or not out.strip():
                raise RuntimeError(f"load generator process failed ({proc.returncode})")
            docs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lat: array[int] = array("q")
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for d in docs:
        lat.frombytes(base64.b64decode(d["lat"]))
        errors.update(d["errors"])
        statuses.update({int(k): v for k, v in d["status"].items()})
    window_s = max(d["window_ns"] for d in docs) / 1e9
    stats, hist = summarize_ns(lat)
    errors.update({f"http_{k}": v for k, v in statuses.items() if k >= 400})
    return LoadResult(
        engine="python",
        url=url,
        connections=connections,
        workers=nproc,
        duration_s=window_s,
        requests=len(lat),
        rps=len(lat) / window_s if window_s else 0.0,
        latency_ms=stats,
        histogram=hist,
        errors=dict(errors),
        client_cpu_pct=100 * sum(d["cpu_frac"] for d in docs),
    )


def _env() -> dict[str, str]:
    # The child must import bench.* whatever the caller's cwd is.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


if __name__ == "__main__":
    conf = json.loads(sys.stdin.readline())
    conf["payloads"] = [base64.b64decode(p) for p in conf["payloads"]]
    _say(_worker(**conf))
