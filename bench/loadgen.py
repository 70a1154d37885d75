"""HTTP load generator, always run in processes separate from the server under test.

Closed loop: N keep-alive connections, each sends its next request as soon as the previous
answer is read, for D seconds (or until a request count is reached). Prints req/s,
p50/p90/p99/max latency and a coarse histogram, or JSON with ``--json``.

Two engines (``--engine``):

* ``wrk``: the Debian ``wrk`` binary (C, epoll) driven by a generated Lua script. Used by
  ``auto`` when ``wrk`` is on PATH, because on a 2-core machine the client shares the CPU
  with the server and ``wrk`` needs several times less CPU per request than Python.
  Nothing here installs it (``apt-get install wrk``).
* ``python``: several processes, each an epoll loop over raw blocking sockets with a minimal
  HTTP/1.1 response parser (:mod:`bench.loadgen_py`). Used when ``wrk`` is absent, or
  for ``--count`` runs (wrk only knows durations).

Requests: a single URL (GET), or a list given as a JSON-lines file (``--requests``; one
object per line: ``method``, ``path``, optional ``headers`` mapping, and ``body`` string or
``json`` value), or a Python callable ``module:function`` returning an iterable of
:class:`Request` or such mappings (``--requests-from``). Each connection walks the list
round-robin from its own offset, so a list is a *mix*.

Usage: ``python -m bench.loadgen http://127.0.0.1:8000/ -c 16 -d 10 [--json]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

Engine = Literal["auto", "wrk", "python"]

# Coarse histogram bucket upper edges, in microseconds (last bucket is open-ended).
HIST_EDGES_US: tuple[int, ...] = (
    250,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
)


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> Request:
        headers = dict(doc.get("headers") or {})
        body: bytes = b""
        if "json" in doc:
            body = json.dumps(doc["json"], separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        elif doc.get("body") is not None:
            raw = doc["body"]
            body = raw.encode() if isinstance(raw, str) else bytes(raw)
        return cls(
            str(doc.get("method", "GET")).upper(),
            str(doc.get("path", "/")),
            tuple((str(k), str(v)) for k, v in headers.items()),
            body,
        )

    def encode(self, host: str) -> bytes:
        """The raw HTTP/1.1 bytes, pre-built once so the hot loop only calls sendall()."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        names = {k.lower() for k, _ in self.headers}
        lines += [f"{k}: {v}" for k, v in self.headers]
        has_body = self.body or self.method in {"POST", "PUT", "PATCH"}
        if has_body and "content-length" not in names:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class LoadResult:
    engine: str
    url: str
    connections: int
    workers: int  # client processes (python) or threads (wrk)
    duration_s: float
    requests: int
    rps: float
    latency_ms: dict[str, float]
    histogram: list[tuple[str, int]]
    errors: dict[str, int] = field(default_factory=dict)
    # CPU the client itself burnt, in % of one core: on 2 cores, ~100% means the client
    # took a whole core away from the server and the figure is client-bound.
    client_cpu_pct: float = 0.0

    @property
    def error_count(self) -> int:
        """Failed requests (reconnects after a server-side close are not failures)."""
        keys = ("connect", "read", "write", "status", "timeout")
        return sum(self.errors.get(k, 0) for k in keys)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lat = self.latency_ms
        out = [
            f"engine={self.engine} url={self.url} connections={self.connections} "
            f"workers={self.workers} duration={self.duration_s:.1f}s",
            f"requests={self.requests} req/s={self.rps:,.0f} client_cpu={self.client_cpu_pct:.0f}%",
            "latency ms: " + " ".join(f"{k}={v:.2f}" for k, v in lat.items()),
        ]
        if any(self.errors.values()):
            out.append("errors: " + " ".join(f"{k}={v}" for k, v in self.errors.items() if v))
        total = sum(n for _, n in self.histogram) or 1
        for label, n in self.histogram:
            bar = "#" * round(40 * n / total)
            out.append(f"  {label:>10} {n:>9} {100 * n / total:5.1f}% {bar}")
        return "\n".join(out)


def bucket_labels() -> list[str]:
    def ms(us: int) -> str:
        return f"{us / 1000:g}ms"

    return [f"<{ms(e)}" for e in HIST_EDGES_US] + [f">={ms(HIST_EDGES_US[-1])}"]


def summarize_ns(latencies_ns: Sequence[int]) -> tuple[dict[str, float], list[tuple[str, int]]]:
    """Exact nearest-rank percentiles and the coarse histogram from raw latencies."""
    if not latencies_ns:
        return {}, []
    lat = sorted(latencies_ns)
    n = len(lat)

    def pct(p: float) -> float:
        return lat[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] / 1e6

    stats = {
        "min": lat[0] / 1e6,
        "mean": sum(lat) / n / 1e6,
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "p99.9": pct(99.9),
        "max": lat[-1] / 1e6,
    }
    counts = [0] * (len(HIST_EDGES_US) + 1)
    i = 0
    for v in lat:  # sorted, so one forward pass over the edges
        while i < len(HIST_EDGES_US) and v >= HIST_EDGES_US[i] * 1000:
            i += 1
        counts[i] += 1
    return stats, list(zip(bucket_labels(), counts, strict=True))


def load_requests_file(path: str | Path) -> list[Request]:
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(Request.from_mapping(json.loads(line)))
    return out


def load_requests_callable(spec: str) -> list[Request]:
    """``module:function`` -> materialised list (both engines need the whole mix up front)."""
    module, _, name = spec.partition(":")
    func = getattr(importlib.import_module(module), name)
    items: Iterable[Request | Mapping[str, Any]] = func()
    return [r if isinstance(r, Request) else Request.from_mapping(r) for r in items]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(
    url: str,
    requests: Sequence[Request] | None = None,
    *,
    connections: int = 16,
    duration: float = 10.0,
    count: int | None = None,
    warmup: float = 0.0,
    engine: Engine = "auto",
    workers: int | None = None,
    timeout: float = 5.0,
) -> LoadResult:
    """Drive load at ``url`` (scheme://host:port[/path]) from separate processes.

    ``requests`` paths are relative to the URL's host; without them, GET the URL's path.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only plain http:// URLs are supported: {url!r}")
    if not requests:
        path = parts.path or "/"
        requests = [Request("GET", path + (f"?{parts.query}" if parts.query else ""))]
    chosen = engine
    if chosen == "auto":
        chosen = "wrk" if wrk_available() and count is None else "python"
    if chosen == "wrk":
        if count is not None:
            raise ValueError("wrk runs for a duration only; use --engine python with --count")
        from bench.loadgen_wrk import run_wrk

        return run_wrk(
            url,
            list(requests),
            connections=connections,
            duration=duration,
            warmup=warmup,
            threads=workers,
            timeout=timeout,
        )
    from bench.loadgen_py import run_python

    return run_python(
        url,
        list(requests),
        connections=connections,
        duration=duration,
        count=count,
        warmup=warmup,
        processes=workers,
        timeout=timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    ap.add_argument("url", help="http://host:port[/path]; request paths are relative to host")
    ap.add_argument("-c", "--connections", type=int, default=16)
    ap.add_argument("-d", "--duration", type=float, default=10.0, help="seconds (default 10)")
    ap.add_argument("-n", "--count", type=int, help="stop after this many requests (python)")
    ap.add_argument("--warmup", type=float, default=0.0, help="seconds of unrecorded load first")
    ap.add_argument("--requests", help="JSON-lines file of requests (a mix)")
    ap.add_argument("--requests-from", help="module:function returning requests")
    ap.add_argument("--engine", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("-w", "--workers", type=int, help="client processes / wrk threads")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    reqs: list[Request] | None = None
    if args.requests:
        reqs = load_requests_file(args.requests)
    elif args.requests_from:
        reqs = load_requests_callable(args.requests_from)
    result = run_load(
        args.url,
        reqs,
        connections=args.connections,
        duration=args.duration,
        count=args.count,
        warmup=args.warmup,
        engine=args.engine,
        workers=args.workers,
        timeout=args.timeout,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
    return 0


if __name__ == "__main__":
    # Run main() of the *imported* module: requests built by a --requests-from callable are
    # bench.loadgen.Request instances, which __main__.Request would not recognise.
    from bench import loadgen

    sys.exit(loadgen.main())
