"""What the design's write path can reach on this machine at best, vs pgbench (same run).

Issue 5 asks for holds at >= 0.2x the pgbench booking transaction's TPS, POST p99 <= 50 ms,
with 16 clients through gunicorn -> Dramatiq -> PostgreSQL, waiting for results. This bench
runs the same load shape (16 closed-loop clients from separate processes, a JSON POST with
its own Idempotency-Key each, every request waiting for its result) against
``bench.floor_app``, which passes through those parts and does nothing else:

* ``floor``: gunicorn (2 x 8 threads, as ``salon api``) -> stock Dramatiq (2 processes x 8
  threads, as ``salon worker``) -> pgbench's own booking transaction -> result by BLPOP.
* ``floor+record``: the same plus the least the design's guarantees cost: the API records
  the request before enqueueing (its own commit) and the worker locks the record and stores
  the outcome in its transaction (idempotent redelivery).

If even these miss a target, no implementation of the design does better on this machine;
the product's own figures (``bench.bookings``) are then best read against these.

    .venv/bin/python -m bench.floor_holds [--repeat 2] [--duration 10] [--json] [--save]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from bench import baseline_pgbench
from bench.harness import Service, dramatiq_worker, gunicorn, stop_cleanly_on_sigterm
from bench.loadgen import Request, run_load
from bench.measure import paired_ratio
from bench.report import Figure, emit, median_figure
from bench.salon_setup import DEFAULT_REDIS_URL, product_gunicorn, revision, wipe_namespace
from bench.server_runs import Ours, Redos, Run, checked_run
from salon.settings import Settings

# name -> (FLOOR_RECORD, FLOOR_BROKER); "(lane)": the product's broker, not the stock one
VARIANTS = {
    "floor": ("0", "stock"),
    "floor+record": ("1", "stock"),
    "floor (lane)": ("0", "lane"),
    "floor+record (lane)": ("1", "lane"),
}
DEFAULT_VARIANTS = ("floor", "floor+record")
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/salon_bench_floor"
SLOTS = 200_000
STYLISTS = 200


@dataclass
class Options:
    dsn: str = DEFAULT_DSN
    redis_url: str = DEFAULT_REDIS_URL
    repeat: int = 2
    duration: float = 10.0
    warmup: float = 3.0
    connections: int = 16
    api_threads: int = Settings().api_threads
    max_other: float = 25.0
    retries: int = 2
    seed: int = 20261205
    skip_pgbench: bool = False
    variants: tuple[str, ...] = DEFAULT_VARIANTS


def prepare(dsn: str) -> None:
    """pgbench's tables (with the exclusion constraint) and the record table, fresh."""
    from bench.floor_app import SCHEMA

    baseline_pgbench.ensure_database(dsn)
    baseline_pgbench.setup(dsn, slots=SLOTS, stylists=STYLISTS, exclusion=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.encode())


def reset(dsn: str) -> None:
    time.sleep(0.5)  # answers still in flight after the load's end finish first
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE bench_booking, floor_record")
        conn.execute("VACUUM ANALYZE bench_booking")
        conn.execute("VACUUM ANALYZE floor_record")


def outcome(dsn: str, recorded: bool) -> dict[str, Any]:
    time.sleep(0.5)
    with psycopg.connect(dsn, autocommit=True) as conn:
        bookings = conn.execute("SELECT count(*) FROM bench_booking").fetchone()
        records = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FROM floor_record"
        ).fetchone()
    out: dict[str, Any] = {"bookings": int(bookings[0]) if bookings else -1}
    if recorded and records:
        out["records_done"], out["records"] = int(records[0]), int(records[1])
    return out


def hold_requests(rng: random.Random, n: int) -> list[Request]:
    return [
        Request.from_mapping(
            {
                "method": "POST",
                "path": "/holds",
                "headers": {"Idempotency-Key": uuid.uuid4().hex},
                "json": {"slot": slot, "client": rng.randrange(1, 1_000_000)},
            }
        )
        for slot in rng.sample(range(1, SLOTS + 1), n)
    ]


@contextmanager
def floor_stack(opts: Options, variant: str, namespace: str) -> Iterator[tuple[Service, Service]]:
    record, broker = VARIANTS[variant]
    env = {
        "FLOOR_DSN": opts.dsn,
        "FLOOR_RECORD": record,
        "FLOOR_BROKER": broker,
        "BENCH_REDIS_URL": opts.redis_url,
        "BENCH_DRAMATIQ_NAMESPACE": namespace,
    }
    settings = product_gunicorn(workers=2, threads=opts.api_threads)
    with (
        dramatiq_worker("bench.floor_app", processes=2, threads=8, env=env) as worker,
        gunicorn("bench.floor_app:app", settings=settings, env=env, ready_path="/healthz") as api,
    ):
        yield api, worker


def measure(opts: Options) -> tuple[list[Figure], dict[str, Any]]:
    rng = random.Random(opts.seed)
    prepare(opts.dsn)
    dbname = opts.dsn.rsplit("/", 1)[1]
    redos = Redos()
    kept: dict[str, list[Run]] = {v: [] for v in opts.variants}
    pg_runs: list[dict[str, Any]] = []
    n = 20_000  # more than 16 clients can send in a run at ~1,000/s

    def floor_run(name: str) -> None:
        namespace = f"bench-floor-{uuid.uuid4().hex[:6]}"
        try:
            with floor_stack(opts, name, namespace) as (api, worker):
                reset(opts.dsn)
                run_load(
                    api.url,
                    hold_requests(rng, n),
                    connections=opts.connections,
                    duration=opts.warmup,
                    engine="python",
                    timeout=30.0,
                )
                ours = Ours(
                    {"api": api, "worker": worker},
                    dbname=dbname,
                    redis_server=True,
                    clients=("bench.loadgen_py",),
                )
                run = checked_run(
                    name,
                    api,
                    ours,
                    requests=lambda: hold_requests(rng, n),
                    connections=opts.connections,
                    duration=opts.duration,
                    engine="python",
                    client_workers=None,
                    max_other=opts.max_other,
                    retries=opts.retries,
                    redos=redos,
                    before=lambda: reset(opts.dsn),
                    after=lambda _t, _r: outcome(opts.dsn, VARIANTS[name][0] == "1"),
                    timeout=30.0,
                )
        finally:
            wipe_namespace(opts.redis_url, namespace)
        kept[name].append(run)
        print(
            f"# {name}: {run.result.rps:,.0f}/s p99 {run.result.latency_ms.get('p99', 0):.1f} ms"
            f" other {run.other_cpu_pct:.0f}% {run.extra}",
            file=sys.stderr,
            flush=True,
        )

    def pgbench_run() -> None:
        figs, info = baseline_pgbench.measure(
            clients=[opts.connections],
            duration=int(opts.duration),
            repeat=1,
            max_other_pct=opts.max_other,
        )
        tps = next(f for f in figs if f.name.endswith("TPS")).value
        p99 = next(f for f in figs if f.name.endswith("p99")).value
        pg_runs.append({"tps": tps, "p99_ms": p99, "other_cpu_pct": info["other_cpu_pct"]})
        print(f"# pgbench: {tps:,.0f} tx/s", file=sys.stderr, flush=True)

    steps = [*([] if opts.skip_pgbench else ["pgbench"]), *opts.variants]
    try:
        for rnd in range(opts.repeat):
            for step in steps if rnd % 2 == 0 else steps[::-1]:
                if step == "pgbench":
                    pgbench_run()
                else:
                    floor_run(step)
    finally:
        with psycopg.connect(opts.dsn, autocommit=True) as conn:
            conn.execute(
                baseline_pgbench.TEARDOWN.encode() + b" DROP TABLE IF EXISTS floor_record;"
            )

    figures: list[Figure] = []
    pg_tps = [r["tps"] for r in pg_runs]
    if pg_tps:
        figures.append(median_figure("pgbench booking 16c TPS", pg_tps, "tx/s"))
    ratios = []
    for name, runs in kept.items():
        rps = [r.result.rps for r in runs]
        figures.append(median_figure(f"{name} holds/s", rps, "/s"))
        for key in ("p50", "p99"):
            figures.append(
                median_figure(
                    f"{name} POST {key}",
                    [r.result.latency_ms[key] for r in runs],
                    "ms",
                    higher_is_better=False,
                )
            )
        if pg_tps:
            med, lo, hi = paired_ratio(rps, pg_tps)
            figures.append(Figure(f"{name} holds/s / pgbench TPS", med, "x", spread=(lo, hi)))
            ratios.append({"figure": name, "ratio": med, "min": lo, "max": hi})
    cpu = {
        name: {
            group: round(
                statistics.median(r.extra["cpu_ms_per_request"].get(group, 0) for r in runs), 2
            )
            for group in ("api", "worker", "postgres", "redis")
        }
        for name, runs in kept.items()
        if runs
    }
    details = {
        "revision": revision(),
        "pgbench": pg_runs,
        "ratios": ratios,
        "cpu_ms_per_hold": cpu,
        "redone": {"disturbed": redos.disturbed, "unbalanced": redos.unbalanced},
        "runs": {name: [r.summary() for r in runs] for name, runs in kept.items()},
    }
    return figures, details


def main(argv: Sequence[str] | None = None) -> int:
    stop_cleanly_on_sigterm()
    ap = argparse.ArgumentParser(
        prog="python -m bench.floor_holds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--dsn", default=os.environ.get("FLOOR_DSN", DEFAULT_DSN))
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("-c", "--connections", type=int, default=16)
    ap.add_argument("--max-other", type=float, default=25.0)
    ap.add_argument("--skip-pgbench", action="store_true")
    ap.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, of: {'; '.join(VARIANTS)} (default: %(default)s)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", action="store_true", help="also write bench/results/*.json")
    args = ap.parse_args(argv)
    opts = Options(
        dsn=baseline_pgbench.normalize_dsn(args.dsn),
        redis_url=args.redis_url,
        repeat=args.repeat,
        duration=args.duration,
        connections=args.connections,
        max_other=args.max_other,
        skip_pgbench=args.skip_pgbench,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
    )
    unknown = set(opts.variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants: {sorted(unknown)}")
    figures, details = measure(opts)
    emit(
        figures,
        as_json=args.json,
        title="The design's floor: gunicorn -> Dramatiq -> pgbench's transaction vs pgbench",
        save_as="floor_holds" if args.save else None,
        details=details,
    )
    if not args.json:
        for name, groups in details["cpu_ms_per_hold"].items():
            print(f"# CPU ms per hold, {name}: " + ", ".join(f"{k} {v}" for k, v in groups.items()))
        print(f"# runs redone: {details['redone']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
