"""One API process's recovery from the lost-change watch's catalogue bump (issue 18, 5c).

After Redis lost its data the watch (`salon.lost_bumps`) found every recent change without
its receipt and made one catalogue bump for all of them. This measures what that bump costs
one API process that keeps a few hundred day lists: the process's CPU seconds above its
steady rate, how long until it computes no more lists because of it, how many it computed,
and the p99 of `/v1/slots` around it.

Setup as `bench.slots_in_process` (one `wsgi_app` stands for one API process, in-process):
4 locations x 10 stylists x `--days` days of slots, some bookings. Every (location, date) day
list is computed first. Then `--threads` threads ask for new exposures (a new session each,
a random location and date) at `--rate` requests a second in all, paced (a request's latency
counts from when it was due, so a stall shows as one); after `--before` seconds the watch's
bump (`LostBumpWatch._make_up_for` with `--lost` changes), then `--after` seconds more.

    .venv/bin/python -m bench.lost_bump_recovery [--days 90] [--rate 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from bench.availability import Ask, slots_request
from bench.generation import fresh_database
from bench.salon_setup import (
    DEFAULT_ADMIN_URL,
    DEFAULT_REDIS_URL,
    Salon,
    drop_database,
    product_env,
    seed_salon,
    sprinkle_bookings,
    wipe_namespace,
)
from bench.slots_in_process import environ, start_response


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


class Computations:
    """When each day list was computed (LiveTimes._compute, wrapped)."""

    def __init__(self) -> None:
        from salon.live_times import LiveTimes

        self.at: list[float] = []
        self.took: list[float] = []
        self.by_request: list[float] = []  # when a request (not the refresh thread) computed
        self._lock = threading.Lock()
        real = LiveTimes._compute

        def counted(lists: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            result = real(lists, *args, **kwargs)
            with self._lock:
                self.at.append(time.monotonic())
                self.took.append(time.monotonic() - started)
                if not threading.current_thread().name.startswith("day-refresh"):
                    self.by_request.append(started)
            return result

        LiveTimes._compute = counted  # type: ignore[method-assign,assignment]


def new_ask(salon: Salon, rng: random.Random) -> Ask:
    return Ask(uuid.uuid4().hex, rng.randrange(len(salon.places)), rng.choice(salon.dates))


def paced_load(
    app: Any, salon: Salon, args: argparse.Namespace, start: float, end: float, seed: int
) -> tuple[list[threading.Thread], list[tuple[float, float]]]:
    """`args.threads` threads asking for new exposures at `args.rate` a second in all, from
    `start` to `end`; each request's (due, latency), counted from when it was due."""
    latencies: list[tuple[float, float]] = []
    lock = threading.Lock()
    interval = args.threads / args.rate

    def load(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        due = start + index * interval / args.threads
        while due < end:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            b"".join(app(environ(slots_request(salon, new_ask(salon, rng))), start_response))
            with lock:
                latencies.append((due, time.monotonic() - due))
            due += interval

    threads = [threading.Thread(target=load, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    return threads, latencies


def steady_cpu(app: Any, salon: Salon, args: argparse.Namespace) -> float:
    """CPU seconds per second at the load's rate with nothing to recompute."""
    start = time.monotonic() + 0.1
    cpu = time.process_time()
    threads, _ = paced_load(app, salon, args, start, start + 4.0, seed=99)
    for t in threads:
        t.join()
    return (time.process_time() - cpu) / (time.monotonic() - start)


def one_run(
    app: Any,
    salon: Salon,
    computations: Computations,
    args: argparse.Namespace,
    run: int,
    steady: float,
) -> dict[str, float]:
    from salon.bootstrap import bootstrap
    from salon.lost_bumps import LostBumpWatch
    from salon.settings import Settings

    start = time.monotonic() + 0.2
    threads, latencies = paced_load(
        app, salon, args, start, start + args.before + args.after, seed=run
    )
    time.sleep(max(0.0, start + args.before - time.monotonic()))
    cpu_at_bump, bumped = time.process_time(), time.monotonic()
    container = bootstrap(Settings.from_env())
    try:
        LostBumpWatch._make_up_for(container, [f"write:{uuid.uuid4()}" for _ in range(args.lost)])
    finally:
        container.close()
    for t in threads:
        t.join()
    finished, cpu_end = time.monotonic(), time.process_time()

    before = [s for due, s in latencies if start + 1 <= due < bumped]
    after = [s for due, s in latencies if bumped <= due < bumped + args.window]
    recomputed = [t for t in computations.at if t >= bumped]
    took = [d for t, d in zip(computations.at, computations.took, strict=True) if t >= bumped]
    cpu_after = cpu_end - cpu_at_bump
    return {
        "p99_before_ms": p99(before) * 1000,
        "p99_after_ms": p99(after) * 1000,
        "max_after_ms": max(after, default=0.0) * 1000,
        "lists": float(len(recomputed)),
        "recovery_s": max(recomputed, default=bumped) - bumped,
        "cpu_after_s": cpu_after,
        "cpu_extra_s": cpu_after - steady * (finished - bumped),
        "requests_after": float(len(after)),
        "p99_all_after_ms": p99([s for due, s in latencies if due >= bumped]) * 1000,
        "list_ms": statistics.median(took) * 1000 if took else 0.0,
        "by_requests": float(len([t for t in computations.by_request if t >= bumped])),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.lost_bump_recovery", description=__doc__)
    ap.add_argument("--admin-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    ap.add_argument("--database", default="salon_bench_lost_bump_recovery")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rate", type=float, default=200.0, help="requests a second, all threads")
    ap.add_argument("--before", type=float, default=4.0)
    ap.add_argument("--after", type=float, default=16.0)
    ap.add_argument("--window", type=float, default=10.0, help="seconds after the bump for p99")
    ap.add_argument("--lost", type=int, default=1188)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)

    url = fresh_database(args.admin_url, args.database)
    namespace = f"bench-lostbump-{uuid.uuid4().hex[:6]}"
    try:
        salon = seed_salon(url, days=args.days)
        sprinkle_bookings(url, salon, share=0.2, rng=random.Random(1))
        os.environ.update(product_env(url, args.redis_url, namespace))
        from api.app import wsgi_app
        from salon.bootstrap import bootstrap
        from salon.settings import Settings

        computations = Computations()
        app = wsgi_app(bootstrap(Settings.from_env()))
        for place in range(len(salon.places)):
            for day in salon.dates:
                ask = Ask(uuid.uuid4().hex, place, day)
                b"".join(app(environ(slots_request(salon, ask)), start_response))
        kept = len(computations.at)
        steady = steady_cpu(app, salon, args)
        print(
            f"{kept} day lists kept; steady load {args.rate:.0f} req/s uses {steady:.2f} CPU s/s",
            flush=True,
        )
        results = []
        for run in range(args.runs):
            figures = one_run(app, salon, computations, args, run, steady)
            results.append(figures)
            print(
                f"run {run + 1}: bump of {args.lost} lost changes -> {figures['lists']:.0f} lists"
                f" ({figures['by_requests']:.0f} by requests) recomputed over"
                f" {figures['recovery_s']:.2f} s; CPU {figures['cpu_extra_s']:.2f}"
                f" s above steady ({figures['cpu_after_s']:.2f} s in the {args.after:.0f} s after);"
                f" /v1/slots p99 {figures['p99_before_ms']:.1f} ms before,"
                f" {figures['p99_after_ms']:.1f} ms in the {args.window:.0f} s after"
                f" (max {figures['max_after_ms']:.0f} ms, {figures['requests_after']:.0f} requests;"
                f" {figures['p99_all_after_ms']:.1f} ms over all {args.after:.0f} s); a list took"
                f" {figures['list_ms']:.1f} ms (median)",
                flush=True,
            )
        keys = results[0].keys()
        median = {k: statistics.median(r[k] for r in results) for k in keys}
        print("median: " + ", ".join(f"{k} {v:.2f}" for k, v in median.items()), flush=True)
    finally:
        wipe_namespace(args.redis_url, namespace)
        drop_database(args.admin_url, args.database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
