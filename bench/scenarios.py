"""The three scenarios, each against its baseline(s) in the same run, ratios paired per round.
Product processes run with the product's defaults (`salon api`, `salon worker`: only the
database, Redis and a namespace of our own set), rate limit and access log included."""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg

from bench import baselines
from bench import data as d
from bench import harness as h
from salon.settings import Settings


@dataclass
class Options:
    seconds: float = 10.0
    rounds: int = 2
    warmup: float = 3.0
    connections: int = 16
    max_other: float = 25.0
    env: dict[str, str] = field(default_factory=dict)  # extra product settings (experiments)
    redis_paths: bool = False  # slots: also over TLS and with hand-written Redis parts off


Ok = Callable[[float], bool] | None
Headers = Sequence[tuple[str, str]]


@dataclass
class Figure:
    name: str
    value: float
    spread: tuple[float, float] | None = None
    target: str = ""
    met: bool | None = None


@dataclass
class Report:
    scenario: str
    figures: list[Figure] = field(default_factory=list)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, values: Sequence[float], target: str = "", ok: Ok = None) -> None:
        """The median of per-round values (min..max kept) and whether it meets ``target``."""
        med = statistics.median(values)
        spread = (min(values), max(values)) if len(values) > 1 else None
        self.figures.append(Figure(name, med, spread, target, ok(med) if ok else None))


def paired(cand: Sequence[float], base: Sequence[float]) -> list[float]:
    return [c / b for c, b in zip(cand, base, strict=True) if b]


# The processes refuse the development JWT secret: a run signs its tokens with one of its own.
RUN_JWT_SECRET = secrets.token_hex(32)
# And so do they without PII keys: the run's own too (sealing costs the same under any key).
RUN_PII_KEYS = "bench:" + base64.b64encode(secrets.token_bytes(32)).decode()
RUN_PII_HASH_KEY = base64.b64encode(secrets.token_bytes(32)).decode()


def product_env(url: str, namespace: str, opts: Options) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "REDIS_URL": h.REDIS_URL,
        "REDIS_NAMESPACE": namespace,
        "JWT_SECRET": RUN_JWT_SECRET,
        "PII_KEYS": RUN_PII_KEYS,
        "PII_HASH_KEY": RUN_PII_HASH_KEY,
        # The load generator plays the ingress: it sets each visitor's X-Forwarded-For
        # (`bench.data.slots_mix`), which the API believes only from a trusted proxy.
        "TRUSTED_PROXIES": "127.0.0.1/32",
        **opts.env,
    }


def record(report: Report, rnd: int, name: str, got: h.Load) -> None:
    report.runs.setdefault(name, []).append(got.summary())
    line = f"# round {rnd + 1} {name}: {got.rps:,.1f}/s p99 {got.p99:.1f} ms"
    print(f"{line} other {got.cpu.other:.0f}%", file=sys.stderr, flush=True)


def metric(report: Report, name: str, key: str) -> list[float]:
    return [float(r[key]) for r in report.runs[name]]


def cpu_ms(report: Report, name: str, skip: tuple[str, ...] = ("client",)) -> list[float]:
    """CPU ms per answer of the run's own processes: steadier than rates when others are busy."""
    return [
        sum(v for g, v in r["cpu_ms_per_request"].items() if g not in skip)
        for r in report.runs[name]
    ]


# --- slots ---------------------------------------------------------------------------------
# /v1/slots through other Redis paths (`--redis-paths`): parts off on plain TCP, or TLS.
OFF = {"GUNICORN_CMD_ARGS": "--config python:bench.redis_py"}  # bench/redis_py.py
PATHS = {
    "slots TLS": {},  # REDIS_URL: a redis-server of ours speaking TLS only (redis-py only)
    "slots redis-py": {**OFF, "BENCH_REDIS_PY": "pipelines"},  # as over TLS
}


def slots(opts: Options) -> Report:
    """GET /v1/slots (80 % sticky repeats, 20 % new asks) vs the bare Falcon endpoint; with
    ``opts.redis_paths``, also over TLS and with hand-written Redis parts off."""
    report, rng, db = Report("slots"), random.Random(20261125), "salon_bench_slots"
    url = d.fresh_database(db)
    salon = d.seed_salon(url)
    booked = d.book_some(url, salon, rng)
    namespace = f"bench-slots-{uuid.uuid4().hex[:6]}"
    env = product_env(url, namespace, opts)
    est = [4000.0]  # req/s, to size each mix at twice what a run sends (none goes round)
    names = ["bare", "slots", *(PATHS if opts.redis_paths else ())]
    try:
        with ExitStack() as up:
            bare = up.enter_context(h.gunicorn("bench.apps:bare", env, "/slot"))
            servers = {"bare": (bare, h.Groups({"server": bare}))}
            for name in names[1:]:
                tls = {"REDIS_URL": up.enter_context(h.tls_redis())} if name.endswith("TLS") else {}
                api = up.enter_context(h.salon_api({**env, **PATHS.get(name, {}), **tls}))
                servers[name] = (api, h.Groups({"server": api}, db, redis=True))

            def run(name: str, seconds: float) -> h.Load:
                svc, groups = servers[name]
                n = int(est[0] * seconds * 2) + 2000
                reqs = d.slots_mix(salon, n, rng) if name != "bare" else [h.Request("GET", "/slot")]
                got = h.wrk(
                    svc.url, reqs, connections=opts.connections, seconds=seconds, groups=groups
                )
                est[0] = max(est[0], got.rps) if name != "bare" else est[0]
                return got

            for name in names:
                run(name, opts.warmup)
            for rnd in range(opts.rounds):  # A B C, C B A, ...: a drift hits all alike
                for name in names if rnd % 2 == 0 else names[::-1]:
                    svc = servers[name][0]
                    got = h.checked(partial(run, name, opts.seconds), svc, opts.max_other)
                    record(report, rnd, name, got)
    finally:
        d.wipe_namespace(h.REDIS_URL, namespace)
        d.drop_database(db)
    for name in names:
        report.add(f"{name} req/s", metric(report, name, "rps"))
        report.add(f"{name} p99 ms", metric(report, name, "p99"))
    slots_rps = metric(report, "slots", "rps")
    for name in names[1:]:
        rps = paired(metric(report, name, "rps"), metric(report, "bare", "rps"))
        if name == "slots":  # the targets: the product as deployed
            p99 = paired(metric(report, name, "p99"), metric(report, "bare", "p99"))
            report.add("/v1/slots ÷ bare, req/s", rps, ">= 0.4", lambda v: v >= 0.4)
            report.add("/v1/slots ÷ bare, p99", p99, "<= 2", lambda v: v <= 2.0)
            cpu = paired(cpu_ms(report, name), cpu_ms(report, "bare"))
            report.add("CPU per answer, /v1/slots ÷ bare", cpu)
            continue  # another path: what the product would be without a part
        report.add(f"{name} ÷ bare, req/s", rps)
        report.add(f"{name} ÷ slots, req/s", paired(metric(report, name, "rps"), slots_rps))
    bad = sum(r["bad"] for n in names[1:] for r in report.runs[n])
    report.notes.append(f"{booked} bookings in the salon; /v1/slots answers >= 400: {bad}")
    return report


# --- holds ---------------------------------------------------------------------------------
OVERLAPS = """SELECT count(*) FROM scheduler.bookings a JOIN scheduler.bookings b
  ON a.stylist_id = b.stylist_id AND a.id < b.id AND a.start_at < b.end_at
 AND b.start_at < a.end_at
WHERE a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed')"""


def settle(url: str) -> int:
    """Wait (bounded) until no recorded write is pending: the load has stopped, but writes
    sent just before are still queued. Returns overlapping live bookings (must be 0)."""
    with psycopg.connect(d.libpq(url), autocommit=True) as conn:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM scheduler.idempotency_keys WHERE status = 'pending'"
            ).fetchone()
            if not row or not row[0]:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # the API threads that waited for them answer
        row = conn.execute(OVERLAPS).fetchone()
    return int(row[0]) if row else -1


def reset(url: str) -> None:
    settle(url)
    with psycopg.connect(d.libpq(url), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE scheduler.bookings, scheduler.idempotency_keys, scheduler.outbox_events"
        )
        conn.execute("SELECT scheduler.recount_all_free_runs()")
        conn.execute("VACUUM ANALYZE scheduler.bookings, scheduler.idempotency_keys")


def hold(path: str, body: dict[str, Any], headers: Headers, pair: Headers | None) -> h.Request:
    key = ("Idempotency-Key", uuid.uuid4().hex)
    then = (*pair, ("Idempotency-Key", uuid.uuid4().hex)) if pair is not None else ()
    heads = (*headers, key, ("Content-Type", "application/json"))
    return h.Request("POST", path, heads, json.dumps(body), then)


def probe(api: h.Service, req: h.Request) -> None:
    """The worker has no readiness endpoint: hold (the same key again) until a 201."""
    post = urllib.request.Request(api.url + req.path, req.body.encode(), dict(req.headers))

    def held() -> bool:
        with suppress(OSError), urllib.request.urlopen(post, timeout=15) as resp:
            return bool(resp.status == 201)
        return False

    h.wait_until(api, held, "hold completed")


def holds(opts: Options) -> Report:
    """Holds, hold+confirm pairs and contended holds vs the floor (same load shape), with
    pgbench and a Dramatiq no-op drain as context."""
    report, rng = Report("holds"), random.Random(20261205)
    floor_db, db = "salon_bench_floor", "salon_bench_holds"
    dsn = d.libpq(d.fresh_database(floor_db, migrate=False))
    baselines.create_tables(dsn)
    url = d.fresh_database(db)
    salon = d.seed_salon(url)
    ns, floor_ns, drain_ns = (f"bench-{k}-{uuid.uuid4().hex[:6]}" for k in ("holds", "fl", "dr"))
    env = product_env(url, ns, opts)
    settings = Settings.from_env(env)
    floor_env = {"FLOOR_DSN": dsn, "BENCH_REDIS_URL": h.REDIS_URL, "BENCH_NAMESPACE": floor_ns}
    # Contended: every start of one day of 4 stylists (full after ~40 holds, then 409s).
    # Holds and pairs: hour starts of every other stylist-day, never the same time twice.
    day, first = salon.dates[3], salon.places[0]
    contended = [
        (sid, first.service_id) for s in first.stylists[:4] for sid, _ in salon.starts(s, day)
    ]
    pool = [
        (sid, p.service_id)
        for p in salon.places
        for s in p.stylists
        for when in salon.dates
        if not (when == day and s in first.stylists[:4])
        for sid, _ in salon.starts(s, when)[::4]
    ]
    est = {"floor": 800.0, "product": 500.0}  # /s, to size the lists (none goes round)
    overlaps: list[int] = []

    def requests(stack: str, kind: str) -> list[h.Request]:
        n = int(est[stack] * opts.seconds * 1.5) + 500
        pair = kind == "pairs"
        if stack == "floor":
            slots_ = rng.sample(range(1, baselines.SLOTS + 1), n)
            bodies = [{"slot": s, "client": rng.randrange(10**6)} for s in slots_]
            return [hold("/holds", b, [], [] if pair else None) for b in bodies]
        picks = rng.choices(contended, k=n) if kind == "contended" else rng.sample(pool, n)
        out = []
        for slot, service in picks:
            auth = ("Authorization", f"Bearer {d.user_token(settings)}")
            body = {"slot_id": slot, "service_id": service, "customer": d.CUSTOMER}
            out.append(hold("/v1/bookings", body, [auth], [auth] if pair else None))
        return out

    kinds = {"floor": ("holds", "pairs"), "product": ("holds", "pairs", "contended")}

    @contextmanager
    def stack(name: str) -> Iterator[tuple[h.Service, str, h.Groups]]:
        if name == "floor":
            with (
                h.dramatiq("bench.apps", floor_env) as worker,
                h.gunicorn("bench.apps:floor", floor_env, "/healthz") as api,
            ):
                groups = h.Groups({"api": api, "worker": worker}, floor_db, redis=True)
                yield api, "/holds/{id}/confirm", groups
            return
        worker_argv = [sys.executable, "-m", "salon", "worker"]
        with h.salon_api(env) as api, h.started("salon-worker", worker_argv, env) as worker:
            probe(api, requests("product", "holds")[0])
            groups = h.Groups({"api": api, "worker": worker}, db, redis=True)
            yield api, "/v1/bookings/{id}/confirm", groups

    def run(
        name: str, kind: str, seconds: float, svc: h.Service, confirm: str, groups: h.Groups
    ) -> h.Load:
        reqs = requests(name, kind)
        if name == "product":
            reset(url)
        else:
            time.sleep(0.5)  # answers still in flight finish first
            baselines.empty_tables(dsn)
        got = h.wrk(
            svc.url,
            reqs,
            connections=opts.connections,
            seconds=seconds,
            groups=groups,
            count=True,
            confirm=confirm,
        )
        if name == "product":
            overlaps.append(settle(url))
        if kind != "contended":
            est[name] = max(est[name], got.rps)
        return got

    try:
        # pgbench before the servers: with them up, 16 more clients would pass PostgreSQL's
        # max_connections (100) on this shared server.
        for _ in range(opts.rounds):
            rate, lat, cpu = baselines.pgbench(dsn, floor_db, opts.connections, opts.seconds)
            got = h.Load(round(rate * opts.seconds), opts.seconds, 0, lat, {}, 0, 0, 0, False, cpu)
            report.runs.setdefault("pgbench", []).append(got.summary())
        drain = baselines.dramatiq_drain({**floor_env, "BENCH_NAMESPACE": drain_ns}, 10_000)
        for rnd in range(opts.rounds):
            for name in ("floor", "product") if rnd % 2 == 0 else ("product", "floor"):
                # One stack at a time: both up hold ~75 connections of the shared server's 100.
                with stack(name) as (svc, confirm, groups):
                    run(name, "holds", opts.warmup, svc, confirm, groups)  # pools, caches
                    for kind in kinds[name]:
                        again = partial(run, name, kind, opts.seconds, svc, confirm, groups)
                        got = h.checked(again, None, opts.max_other)
                        record(report, rnd, f"floor {kind}" if name == "floor" else kind, got)
    finally:
        for n in (ns, floor_ns, drain_ns):
            d.wipe_namespace(h.REDIS_URL, n)
        d.drop_database(db)
        d.drop_database(floor_db)
    for name in ("floor holds", "holds", "contended", "floor pairs", "pairs"):
        pairs = [n / opts.seconds for n in metric(report, name, "pairs")]
        report.add(f"{name} /s", pairs if "pairs" in name else metric(report, name, "rps"))
        report.add(f"{name} p99 ms", metric(report, name, "p99"))
    tps = metric(report, "pgbench", "rps")
    report.add("pgbench booking TPS (16 clients)", tps)
    holds_, floor_ = metric(report, "holds", "rps"), metric(report, "floor holds", "rps")
    pairs_ = paired(metric(report, "pairs", "pairs"), metric(report, "floor pairs", "pairs"))
    p99 = paired(metric(report, "holds", "p99"), metric(report, "floor holds", "p99"))
    contention = paired(metric(report, "contended", "rps"), holds_)
    report.add("holds/s ÷ floor holds/s", paired(holds_, floor_), ">= 0.75", lambda v: v >= 0.75)
    report.add("pairs/s ÷ floor pairs/s", pairs_, ">= 0.7", lambda v: v >= 0.7)
    report.add("holds POST p99 ÷ floor p99", p99, "<= 1.5", lambda v: v <= 1.5)
    report.add("contended ÷ uncontended answers/s", contention, ">= 0.8", lambda v: v >= 0.8)
    report.add("overlapping live bookings (max)", [max(overlaps)], "0", lambda v: v == 0)
    report.add("floor holds/s ÷ pgbench TPS", paired(floor_, tps))
    report.add("holds/s ÷ pgbench TPS", paired(holds_, tps))
    per_hold = paired(cpu_ms(report, "holds"), cpu_ms(report, "floor holds"))
    report.add("CPU per hold, product ÷ floor", per_hold)
    report.notes.append(
        f"Dramatiq no-op drain (2 x {settings.worker_threads} threads) {drain['drain_rate']:,.0f}"
        f" msg/s, enqueue (one thread) {drain['enqueue_rate']:,.0f} msg/s,"
        f" other CPU {drain['other_cpu_pct']:.0f}%"
    )
    for name in ("holds", "pairs", "contended", "floor holds", "floor pairs"):
        codes = sum((Counter(r["statuses"]) for r in report.runs[name]), Counter[str]())
        report.notes.append(f"{name} answers: {dict(sorted(codes.items()))}")
    return report


# --- generation ----------------------------------------------------------------------------
def run_job(env: Mapping[str, str], url: str, salon: d.Salon) -> tuple[float, int]:
    """`salon generate` (fails unless the job succeeded): seconds from the job's creation to
    its end as PostgreSQL recorded them, and the slots it created or found in place."""
    argv = [sys.executable, "-m", "salon", "generate", "--biz", salon.biz]
    argv += ["--from", salon.dates[0].isoformat(), "--to", salon.dates[-1].isoformat()]
    subprocess.run(argv, env={**os.environ, **env}, check=True, capture_output=True)
    with psycopg.connect(d.libpq(url)) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM finished_at - created_at), greatest(created, skipped)"
            " FROM scheduler.generation_jobs ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return float(row[0]), int(row[1])


def generation(opts: Options, stylists: int = 100, days: int = 365) -> Report:
    """A year of slots for 100 stylists through the job vs one raw COPY of the same rows;
    then the same job again (nothing to create) as a share of the first run's time."""
    report, db = Report("generation"), "salon_bench_generation"
    url = d.fresh_database(db)
    salon = d.seed_salon(url, locations=1, stylists=stylists, days=days, slots=False)
    namespace = f"bench-gen-{uuid.uuid4().hex[:6]}"
    env = product_env(url, namespace, opts)
    rows = d.slot_rows(salon)
    try:
        with psycopg.connect(d.libpq(url)) as conn, conn.cursor() as cur:
            t0 = time.perf_counter()
            d.copy_slots(cur, rows)
            copy_s = time.perf_counter() - t0
            conn.rollback()  # the job writes them
        n = len(rows)
        del rows
        with h.started("salon-worker", [sys.executable, "-m", "salon", "worker"], env) as worker:
            h.wait_until(worker, h.logged(worker, "ready for action", 2), "ready workers")
            (first, made), (again, _) = run_job(env, url, salon), run_job(env, url, salon)
    finally:
        d.wipe_namespace(h.REDIS_URL, namespace)
        d.drop_database(db)
    report.add("raw COPY rows/s", [n / copy_s])
    report.add("job rows/s (first run)", [made / first])
    report.add("job ÷ raw COPY", [made / first * copy_s / n], ">= 0.5", lambda v: v >= 0.5)
    report.add("re-run time ÷ first run", [again / first], "< 0.1", lambda v: v < 0.1)
    report.notes.append(
        f"{n:,} slots: COPY {copy_s:.1f} s, job {first:.1f} s, re-run {again:.1f} s"
    )
    return report
