"""/v1/slots's own CPU per request, in-process: the bench's mix through two app instances.

Not a target figure (those come from `bench.availability`, through gunicorn); a steadier
view of our code's cost, for trying a change. Two `wsgi_app` instances stand for two API
processes (each its own kept answers and day lists), sharing one Redis and one database set
up as `bench.availability` sets them up. Every (location, date) day list is computed first in
both, so what is measured is the steady state: 80 % repeats, 20 % new asks.

``--threads 1`` gives the CPU of a new ask and of a repeat; with more threads (as gunicorn
runs them) the CPU of all threads together per request, which includes what the threads cost
each other (the GIL handed back and forth). Runs alternate with ``--runs``; compare figures
from the same invocation only.

    .venv/bin/python -m bench.slots_in_process [--requests 20000] [--threads 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from bench.availability import Ask, slots_mix, slots_request
from bench.generation import fresh_database
from bench.loadgen import Request
from bench.salon_setup import (
    DEFAULT_ADMIN_URL,
    DEFAULT_REDIS_URL,
    drop_database,
    product_env,
    seed_salon,
    sprinkle_bookings,
    wipe_namespace,
)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


def environ(request: Request) -> dict[str, Any]:
    path, _, query = request.path.partition("?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "bench",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
    }
    for name, value in request.headers:
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"/v1/slots answered {status}")


def one_thread(apps: Sequence[WSGIApp], mix: list[Request], rng: random.Random) -> str:
    """CPU per new ask and per repeat (a repeat: the same request seen before in the mix)."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    cpu: dict[str, float] = {}
    count: Counter[str] = Counter()
    for request in mix:
        kind = "repeat" if (request.path, request.headers) in seen else "new"
        seen.add((request.path, request.headers))
        env = environ(request)
        app = apps[rng.randrange(len(apps))]
        started = time.process_time()
        b"".join(app(env, start_response))
        cpu[kind] = cpu.get(kind, 0.0) + time.process_time() - started
        count[kind] += 1
    whole = sum(cpu.values()) / len(mix)
    parts = ", ".join(f"{k} {cpu[k] / count[k] * 1e6:.0f} µs ({count[k]})" for k in sorted(count))
    return f"{whole * 1e6:.1f} µs CPU per request; {parts}"


def many_threads(apps: Sequence[WSGIApp], mix: list[Request], threads: int) -> str:
    """CPU of all threads (and wall time) per request, `threads` taking requests in turn."""
    picks = [(random.randrange(len(apps)), request) for request in mix]
    position = iter(picks)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                item = next(position, None)
            if item is None:
                return
            b"".join(apps[item[0]](environ(item[1]), start_response))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    cpu, wall = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return f"{cpu / len(mix) * 1e6:.1f} µs CPU, {wall / len(mix) * 1e6:.1f} µs wall per request"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.slots_in_process", description=__doc__)
    ap.add_argument("--admin-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    ap.add_argument("--database", default="salon_bench_slots_in_process")
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)

    url = fresh_database(args.admin_url, args.database)
    namespace = f"bench-inproc-{uuid.uuid4().hex[:6]}"
    try:
        salon = seed_salon(url)
        rng = random.Random(1)
        sprinkle_bookings(url, salon, share=0.2, rng=rng)
        os.environ.update(product_env(url, args.redis_url, namespace))
        from api.app import wsgi_app  # after the environment is set, as gunicorn's workers
        from salon.bootstrap import bootstrap
        from salon.settings import Settings

        apps = [wsgi_app(bootstrap(Settings.from_env())) for _ in range(2)]
        for app in apps:  # every day list computed: the steady state
            for place in range(len(salon.places)):
                for day in salon.dates:
                    ask = Ask(uuid.uuid4().hex, place, day)
                    b"".join(app(environ(slots_request(salon, ask)), start_response))
        for run in range(args.runs):
            mix, _ = slots_mix(salon, args.requests, rng)  # fresh sessions every run
            if args.threads == 1:
                figure = one_thread(apps, mix, rng)
            else:
                figure = many_threads(apps, mix, args.threads)
            print(f"run {run + 1}, {args.threads} thread(s): {figure}", flush=True)
    finally:
        wipe_namespace(args.redis_url, namespace)
        drop_database(args.admin_url, args.database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
