"""Booking holds through gunicorn -> Dramatiq -> PostgreSQL vs pgbench, same run (issue 5).

Setup (own database, own Redis namespace): the availability bench's salon (4 locations x 10
stylists x 60 days of 15-minute slots, 09:00-19:00, a 60-minute service per location).
Processes: ``python -m salon api --workers 2 --threads 8`` (the deployed defaults; until
session 4 the bench ran 4 threads) and ``python -m salon worker`` (2 processes x 8
threads), RATE_LIMIT_PER_MINUTE=0, LOG_LEVEL=WARNING, default settings
otherwise (a customer may hold 3 times at once: every hold comes from its own customer, a
user token of its own, and every POST carries its own Idempotency-Key). Every request waits
for its result (no ``Prefer`` header: the default wait, 5 s).

Scenarios, each from a clean state (bookings, idempotency records and outbox emptied first),
16 closed-loop clients from separate processes:

(a) holds on distinct times: POST /v1/bookings on hour starts of random stylists and days,
    never the same time twice (Python engine of ``bench.loadgen``: each connection walks
    its own share of the list, so nothing is sent twice). Targets: holds/s >= 0.2x the
    pgbench booking transaction's TPS (``bench.baseline_pgbench``, 16 clients, same round),
    POST p99 <= 50 ms.
(b) hold + confirm pairs: each client holds, then confirms what it got (a client of this
    module: the confirm needs the booking id). Target: pairs/s >= 0.1x pgbench TPS.
(c) contention: random starts of the same day of 4 stylists (so, after the first ~40 holds,
    409s). Target: answers/s >= 0.8x (a)'s rate in the same round, and no two live bookings
    of a stylist overlapping afterwards (an SQL overlap query).

Rounds interleave pgbench, (a), (b), (c) (order reversed every other round); a run in which
processes other than ours (API, workers, client, our PostgreSQL backends, redis-server,
pgbench) used more than ``--max-other`` % of a core is redone.

    .venv/bin/python -m bench.bookings [--repeat 2] [--duration 10] [--json]
        [--profile DIR]   # py-spy API + worker processes and sample pg wait events under (a)
        [--only holds,pairs --skip-pgbench]   # a quick look at (a) and (b) alone
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bench import baseline_pgbench
from bench.cpuwatch import CpuWatch, process_cpu
from bench.generation import fresh_database
from bench.harness import Service, started, stop_cleanly_on_sigterm
from bench.loadgen import LoadResult, Request, run_load, summarize_ns
from bench.measure import paired_ratio
from bench.profiling import collapsed_summary, find_py_spy, print_profile, py_spy
from bench.report import Figure, emit, format_table, median_figure
from bench.salon_setup import (
    DEFAULT_ADMIN_URL,
    DEFAULT_REDIS_URL,
    Salon,
    drop_database,
    libpq,
    product_env,
    revision,
    salon_api,
    seed_salon,
    wipe_namespace,
)
from bench.server_runs import Ours, Redos, Run, checked_run, cpu_by_group
from salon.auth import issue_token
from salon.settings import Settings

CUSTOMER = {"name": "Bench Customer", "phone": "+44 20 7946 0000", "email": "b@example.com"}
OVERLAPS = """
SELECT count(*) FROM scheduler.bookings a
JOIN scheduler.bookings b
  ON a.stylist_id = b.stylist_id AND a.id < b.id
 AND a.start_at < b.end_at AND b.start_at < a.end_at
WHERE a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed')
"""
RESET = "TRUNCATE scheduler.bookings, scheduler.idempotency_keys, scheduler.outbox_events"


@dataclass(frozen=True)
class Hold:
    """One intended hold: the slot, the service, and the customer asking."""

    slot_id: str
    service_id: str
    token: str

    def body(self) -> dict[str, Any]:
        return {
            "slot_id": self.slot_id,
            "service_id": self.service_id,
            "customer": CUSTOMER,
            "source": "bench",
        }

    def request(self) -> Request:
        return Request.from_mapping(
            {
                "method": "POST",
                "path": "/v1/bookings",
                "headers": {
                    "Authorization": f"Bearer {self.token}",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
                "json": self.body(),
            }
        )


class Customers:
    """Mints a user token per customer (HS256 with the API's secret)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def token(self) -> str:
        return issue_token(
            self.settings, role="user", biz=None, sub=uuid.uuid4(), ttl_seconds=4 * 3600
        )


def distinct_times(salon: Salon, exclude: set[tuple[uuid.UUID, Any]]) -> list[tuple[str, str]]:
    """(slot id, service id) of every hour start of every stylist-day: holds on these never
    overlap one another (the service lasts an hour)."""
    out = []
    for p in salon.places:
        for s in p.stylists:
            for day in salon.dates:
                if (s, day) in exclude:
                    continue
                starts = salon.starts_fitting(s, day, salon.service_minutes)
                for start in starts[:: salon.service_minutes // 15]:
                    out.append((salon.slot_ids[(s, start)], str(p.service_id)))
    return out


def contended_times(salon: Salon, stylists: int = 4, day_index: int = 3) -> list[tuple[str, str]]:
    """Every start of one day of ``stylists`` stylists of the first location (overlapping)."""
    p = salon.places[0]
    day = salon.dates[day_index]
    return [
        (salon.slot_ids[(s, start)], str(p.service_id))
        for s in p.stylists[:stylists]
        for start in salon.starts_fitting(s, day, salon.service_minutes)
    ]


# --- the hold + confirm client (a separate process, threads with keep-alive connections) --


def _pair_thread(
    host: str,
    port: int,
    jobs: Sequence[Mapping[str, Any]],
    picks: Iterator[int],
    deadline: float,
    out: dict[str, Any],
    lock: threading.Lock,
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    hold_ns: list[int] = []
    confirm_ns: list[int] = []
    pair_ns: list[int] = []
    statuses: Counter[str] = Counter()
    errors = 0
    while time.monotonic() < deadline:
        i = next(picks)
        if i >= len(jobs):
            break
        job = jobs[i]
        try:
            t0 = time.perf_counter_ns()
            conn.request(
                "POST",
                "/v1/bookings",
                body=job["body"],
                headers={
                    "Authorization": f"Bearer {job['token']}",
                    "Idempotency-Key": job["keys"][0],
                    "Content-Type": "application/json",
                },
            )
            resp = conn.getresponse()
            doc = json.loads(resp.read() or b"{}")
            t1 = time.perf_counter_ns()
            statuses[f"hold {resp.status}"] += 1
            if time.monotonic() >= deadline:
                break
            hold_ns.append(t1 - t0)
            booking = doc.get("booking_id") if resp.status == 201 else None
            if booking is None:
                continue
            conn.request(
                "POST",
                f"/v1/bookings/{booking}/confirm",
                body=b"",
                headers={
                    "Authorization": f"Bearer {job['token']}",
                    "Idempotency-Key": job["keys"][1],
                },
            )
            resp = conn.getresponse()
            resp.read()
            t2 = time.perf_counter_ns()
            statuses[f"confirm {resp.status}"] += 1
            if time.monotonic() >= deadline:
                break  # finished after the window: not counted
            confirm_ns.append(t2 - t1)
            if resp.status == 200:
                pair_ns.append(t2 - t0)
        except (OSError, http.client.HTTPException, ValueError):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.close()
    with lock:
        out["hold"].extend(hold_ns)
        out["confirm"].extend(confirm_ns)
        out["pair"].extend(pair_ns)
        out["statuses"].update(statuses)
        out["errors"] += errors


def pair_client_main() -> None:
    """Child process: read the config from stdin, wait for "go", run, print one JSON line."""
    conf = json.loads(sys.stdin.readline())
    jobs: list[dict[str, Any]] = conf["jobs"]
    out: dict[str, Any] = {
        "hold": [],
        "confirm": [],
        "pair": [],
        "statuses": Counter(),
        "errors": 0,
    }
    lock = threading.Lock()
    picks = itertools.count()  # next() of a count is atomic under the GIL
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    deadline = t0 + conf["duration"]
    threads = [
        threading.Thread(
            target=_pair_thread,
            args=(conf["host"], conf["port"], jobs, picks, deadline, out, lock),
        )
        for _ in range(conf["threads"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    print(
        json.dumps(
            {
                "hold": out["hold"],
                "confirm": out["confirm"],
                "pair": out["pair"],
                "statuses": dict(out["statuses"]),
                "errors": out["errors"],
                "wall": wall,
                "cpu": cpu,
                "used": min(next(picks), len(jobs)),
            }
        ),
        flush=True,
    )


@dataclass
class PairResult:
    pairs: int
    duration_s: float
    hold_ms: dict[str, float]
    confirm_ms: dict[str, float]
    pair_ms: dict[str, float]
    statuses: dict[str, int]
    errors: int
    client_cpu_pct: float
    jobs_used: int

    @property
    def rps(self) -> float:
        return self.pairs / self.duration_s if self.duration_s else 0.0


def run_pairs(
    url: str, jobs: Sequence[Mapping[str, Any]], *, clients: int, duration: float, procs: int = 2
) -> PairResult:
    """``clients`` threads over ``procs`` child processes, each walking its own jobs."""
    parts = urlsplit(url)
    children: list[subprocess.Popen[str]] = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")) if p
    )
    try:
        for k in range(procs):
            child = subprocess.Popen(
                [sys.executable, "-m", "bench.bookings", "--pair-client"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            assert child.stdin is not None and child.stdout is not None
            conf = {
                "host": parts.hostname,
                "port": parts.port,
                "jobs": list(jobs[k::procs]),
                "threads": clients // procs + (1 if k < clients % procs else 0),
                "duration": duration,
            }
            child.stdin.write(json.dumps(conf) + "\n")
            child.stdin.flush()
            children.append(child)
        for child in children:
            assert child.stdout is not None
            if not json.loads(child.stdout.readline() or "{}").get("ready"):
                raise RuntimeError("pair client did not start")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        docs = []
        for child in children:
            got, _ = child.communicate(timeout=duration + 60)
            docs.append(json.loads(got.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    statuses: Counter[str] = Counter()
    for d in docs:
        statuses.update(d["statuses"])

    def stats(key: str) -> dict[str, float]:
        return summarize_ns([v for d in docs for v in d[key]])[0]

    wall = max(d["wall"] for d in docs)
    return PairResult(
        pairs=sum(len(d["pair"]) for d in docs),
        duration_s=wall,
        hold_ms=stats("hold"),
        confirm_ms=stats("confirm"),
        pair_ms=stats("pair"),
        statuses=dict(statuses),
        errors=sum(d["errors"] for d in docs),
        client_cpu_pct=100 * sum(d["cpu"] for d in docs) / wall if wall else 0.0,
        jobs_used=sum(d["used"] for d in docs),
    )


# --- database state around runs -----------------------------------------------------------


def drain(url: str, timeout: float = 20.0) -> float:
    """Wait until no recorded write is pending (the load has stopped, but writes sent just
    before are still in the queue; their API threads are blocked until they complete).
    Returns the seconds waited."""
    t0 = time.monotonic()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        while time.monotonic() - t0 < timeout:
            row = conn.execute(
                "SELECT count(*) FROM scheduler.idempotency_keys WHERE status = 'pending'"
            ).fetchone()
            if not row or not row[0]:
                break
            time.sleep(0.05)
    time.sleep(0.2)  # the API threads that waited for them answer and return to the pool
    return time.monotonic() - t0


def reset(url: str) -> None:
    """Empty bookings, idempotency records and outbox, once nothing is in flight: a write
    truncated under its worker would never signal its API thread, which would then sit out
    its whole 5 s wait inside the next run."""
    drain(url)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(RESET)
        conn.execute("VACUUM ANALYZE scheduler.bookings")
        conn.execute("VACUUM ANALYZE scheduler.idempotency_keys")


def outcome_counts(url: str) -> dict[str, Any]:
    """What the database says happened, once the writes still in flight are done: writes by
    status/http status, live bookings, overlapping live bookings (must be 0), writes slower
    than the API's 5 s wait."""
    drained = drain(url)
    with psycopg.connect(libpq(url)) as conn:
        writes = {
            f"{op} {status} {http or '-'}": n
            for op, status, http, n in conn.execute(
                "SELECT operation, status, http_status, count(*) FROM scheduler.idempotency_keys"
                " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ).fetchall()
        }
        live = conn.execute(
            "SELECT count(*) FROM scheduler.bookings WHERE status IN ('held', 'confirmed')"
        ).fetchone()
        overlaps = conn.execute(OVERLAPS).fetchone()
        # Recorded by the API (its transaction's start) -> completed by the worker: time in
        # the queue plus the worker's transaction, as the database saw it.
        server = conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY"
            " extract(epoch FROM completed_at - created_at) * 1000)"
            " FROM scheduler.idempotency_keys WHERE completed_at IS NOT NULL"
        ).fetchone()
        slow = conn.execute(
            "SELECT count(*) FROM scheduler.idempotency_keys"
            " WHERE completed_at IS NULL OR completed_at - created_at > interval '5 seconds'"
        ).fetchone()
    return {
        "writes": writes,
        "live_bookings": int(live[0]) if live else 0,
        "overlapping_live_bookings": int(overlaps[0]) if overlaps else -1,
        "drain_s": round(drained, 2),
        "writes_over_5s_or_pending": int(slow[0]) if slow else 0,
        "recorded_to_completed_ms": [round(v, 1) for v in server[0]]
        if server and server[0]
        else [],
    }


def wait_until_writes_work(api: Service, hold: Hold, timeout: float = 60.0) -> None:
    """The worker has no readiness endpoint: hold once and wait for a final answer."""
    parts = urlsplit(api.url)
    deadline = time.monotonic() + timeout
    key = uuid.uuid4().hex
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
        try:
            conn.request(
                "POST",
                "/v1/bookings",
                body=json.dumps(hold.body()),
                headers={
                    "Authorization": f"Bearer {hold.token}",
                    "Idempotency-Key": key,
                    "Content-Type": "application/json",
                    "Prefer": "wait=5",
                },
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status in (200, 201):
                return
            if resp.status not in (202, 409):  # 409: the same key still running
                raise RuntimeError(f"probe hold answered {resp.status}")
        finally:
            conn.close()
        time.sleep(0.5)
    raise TimeoutError("the worker did not complete a hold in time")


# --- pg wait-event sampling (for profiles) -------------------------------------------------


@contextmanager
def pg_waits(url: str, dbname: str, interval: float = 0.02) -> Iterator[Counter[str]]:
    """Sample what our database's backends are doing (state / wait event) meanwhile."""
    seen: Counter[str] = Counter()
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            while not stop.wait(interval):
                for state, etype, event in conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()"
                    " AND application_name = 'salon'",
                    (dbname,),
                ).fetchall():
                    if state == "idle":
                        seen["idle (waiting for the app)"] += 1
                    elif state == "idle in transaction":
                        seen["idle in transaction (waiting for the app)"] += 1
                    else:
                        seen[f"{state}: {etype or 'CPU'}:{event or '-'}"] += 1

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


# --- the benchmark -------------------------------------------------------------------------


@dataclass
class Options:
    admin_url: str = DEFAULT_ADMIN_URL
    redis_url: str = DEFAULT_REDIS_URL
    pgbench_dsn: str | None = None
    database: str = "salon_bench_bookings"
    repeat: int = 2
    duration: float = 10.0
    warmup: float = 3.0
    connections: int = 16
    workers: int = 2
    threads: int = Settings().api_threads
    max_other: float = 25.0
    retries: int = 2
    seed: int = 20261125
    keep: bool = False
    profile_dir: Path | None = None
    py_spy: str | None = None
    skip_pgbench: bool = False
    # Scenarios to run (pgbench, holds, pairs, contended); empty: all of them.
    only: tuple[str, ...] = ()
    # Experiments only (the documented figures use none): extra env of the worker process.
    worker_env: dict[str, str] = field(default_factory=dict)


def measure(opts: Options) -> tuple[list[Figure], dict[str, Any]]:
    rng = random.Random(opts.seed)
    url = fresh_database(opts.admin_url, opts.database)
    salon = seed_salon(url)
    namespace = f"bench-book-{uuid.uuid4().hex[:6]}"
    env = product_env(url, opts.redis_url, namespace)
    settings = Settings.from_env(env)
    customers = Customers(settings)
    contended = contended_times(salon)
    contended_days = {
        (s, salon.dates[3]) for s in salon.places[0].stylists[:4]
    }  # (a)/(b) stay off them
    pool = distinct_times(salon, contended_days)
    probe_slot, probe_service = pool.pop()
    est = {"holds": 300.0, "pairs": 150.0}
    redos = Redos()
    pg_runs: list[dict[str, Any]] = []
    pair_runs: list[dict[str, Any]] = []
    outcomes: dict[str, list[dict[str, Any]]] = {"holds": [], "pairs": [], "contended": []}
    profile: dict[str, Any] = {}
    kept: dict[str, list[Run]] = {"holds": [], "pairs": [], "contended": []}

    def size(kind: str) -> int:
        return int(est[kind] * opts.duration * 1.5) + 500

    def hold_list(times: Sequence[tuple[str, str]], n: int, *, distinct: bool) -> list[Request]:
        picks = (
            rng.sample(range(len(times)), min(n, len(times)))
            if distinct
            else [rng.randrange(len(times)) for _ in range(n)]
        )
        return [Hold(times[i][0], times[i][1], customers.token()).request() for i in picks]

    try:
        with (
            salon_api(env, workers=opts.workers, threads=opts.threads) as api,
            started(
                "salon-worker",
                [sys.executable, "-m", "salon", "worker"],
                env={**env, **opts.worker_env},
            ) as worker,
        ):
            wait_until_writes_work(api, Hold(probe_slot, probe_service, customers.token()))
            # Only now: the worker's processes exist once it has completed a write.
            ours = Ours(
                {"api": api, "worker": worker},
                dbname=opts.database,
                redis_server=True,
                clients=("bench.loadgen_py", "bench.bookings --pair-client"),
            )

            def load_run(name: str, reqs: Callable[[], Sequence[Request]], kind: str) -> Run:
                run = checked_run(
                    name,
                    api,
                    ours,
                    requests=reqs,
                    connections=opts.connections,
                    duration=opts.duration,
                    engine="python",
                    client_workers=None,
                    max_other=opts.max_other,
                    retries=opts.retries,
                    redos=redos,
                    before=lambda: reset(url),
                    after=lambda _t, _r: outcome_counts(url),
                    timeout=30.0,
                )
                if kind in est:
                    est[kind] = max(est[kind], run.result.rps)
                outcomes[kind].append(run.extra)
                return run

            def holds() -> Run:
                return load_run(
                    "holds",
                    lambda: hold_list(pool, min(size("holds"), len(pool)), distinct=True),
                    "holds",
                )

            def contention() -> Run:
                return load_run(
                    "contended",
                    lambda: hold_list(contended, size("holds"), distinct=False),
                    "contended",
                )

            def pairs() -> Run:
                for attempt in range(1, opts.retries + 2):
                    reset(url)
                    n = min(size("pairs"), len(pool))
                    jobs = [
                        {
                            "token": customers.token(),
                            "body": json.dumps(Hold(*pool[i], "").body()),
                            "keys": [uuid.uuid4().hex, uuid.uuid4().hex],
                        }
                        for i in rng.sample(range(len(pool)), n)
                    ]
                    api.mark_cpu()
                    snap = process_cpu()
                    t0 = time.monotonic()
                    with CpuWatch(ours) as watch:
                        got = run_pairs(
                            api.url, jobs, clients=opts.connections, duration=opts.duration
                        )
                    wall = time.monotonic() - t0
                    by_pid = api.cpu_since_mark_by_pid()
                    per_group = cpu_by_group(ours, snap, process_cpu())
                    est["pairs"] = max(est["pairs"], got.rps)
                    fake = LoadResult(
                        "pair-client",
                        api.url,
                        opts.connections,
                        2,
                        got.duration_s,
                        got.pairs,
                        got.rps,
                        got.pair_ms,
                        [],
                        {"client": got.errors},
                        got.client_cpu_pct,
                    )
                    run = Run(
                        "pairs",
                        fake,
                        100 * sum(by_pid.values()) / wall,
                        watch.ours_pct,
                        watch.other_pct,
                        [100 * c / wall for pid, c in sorted(by_pid.items()) if pid != api.pid],
                        attempt,
                        {
                            "hold_ms": got.hold_ms,
                            "confirm_ms": got.confirm_ms,
                            "statuses": got.statuses,
                            "jobs": n,
                            "jobs_used": got.jobs_used,
                            **outcome_counts(url),
                            "cpu_ms_per_request": {
                                k: round(1000 * v / max(1, got.pairs), 3)
                                for k, v in sorted(per_group.items())
                                if k != "client"
                            },
                        },
                    )
                    if attempt == opts.retries + 1 or (
                        run.other_cpu_pct <= opts.max_other and run.balanced
                    ):
                        break
                    redos.note("pairs", run, opts.max_other)
                outcomes["pairs"].append(run.extra)
                pair_runs.append(run.summary())
                return run

            def pgbench() -> Run | None:
                figs, info = baseline_pgbench.measure(
                    dsn=opts.pgbench_dsn,
                    clients=[opts.connections],
                    duration=int(opts.duration),
                    repeat=1,
                    max_other_pct=opts.max_other,
                )
                tps = next(f for f in figs if f.name.endswith("TPS"))
                p99 = next(f for f in figs if f.name.endswith("p99"))
                pg_runs.append(
                    {
                        "tps": tps.value,
                        "p99_ms": p99.value,
                        "server": info["server"],
                        "other_cpu_pct": info["other_cpu_pct"],
                        "redone": info["redone_runs"],
                    }
                )
                return None

            # Warm-up (pools, caches), not kept.
            reset(url)
            run_load(
                api.url,
                hold_list(pool, size("holds"), distinct=True),
                connections=opts.connections,
                duration=opts.warmup,
                engine="python",
                timeout=30.0,
            )
            scenarios: dict[str, Callable[[], Run | None]] = {
                "pgbench": pgbench,
                "holds": holds,
                "pairs": pairs,
                "contended": contention,
            }
            if opts.skip_pgbench:
                del scenarios["pgbench"]
            if opts.only:
                scenarios = {k: v for k, v in scenarios.items() if k in opts.only}
            names = list(scenarios)
            for rnd in range(opts.repeat):
                for name in names if rnd % 2 == 0 else names[::-1]:
                    got = scenarios[name]()
                    if got is None:
                        print(
                            f"# round {rnd + 1} pgbench: {pg_runs[-1]['tps']:,.0f} tx/s",
                            file=sys.stderr,
                            flush=True,
                        )
                        continue
                    kept[name].append(got)
                    print(
                        f"# round {rnd + 1} {name}: {got.result.rps:,.1f}/s "
                        f"p99 {got.result.latency_ms.get('p99', 0):.1f} ms "
                        f"other {got.other_cpu_pct:.0f}%",
                        file=sys.stderr,
                        flush=True,
                    )
            spy = find_py_spy(opts.py_spy) if opts.profile_dir else None
            if opts.profile_dir and spy:
                procs = {
                    "api": [p for p in api.pids() if p != api.pid],
                    "worker": [p for p in worker.pids() if p != worker.pid],
                }
                reset(url)
                # Idle cost (no load): Dramatiq's consumers poll Redis even with nothing to do.
                idle0 = process_cpu()
                time.sleep(5.0)
                idle = cpu_by_group(ours, idle0, process_cpu())
                profile["idle_cpu_pct"] = {k: round(100 * v / 5.0, 1) for k, v in idle.items()}
                with (
                    py_spy(spy, procs["api"], opts.duration, opts.profile_dir, "holds-api") as a,
                    py_spy(
                        spy, procs["worker"], opts.duration, opts.profile_dir, "holds-worker"
                    ) as w,
                    pg_waits(url, opts.database) as waits,
                ):
                    run_load(
                        api.url,
                        hold_list(pool, size("holds"), distinct=True),
                        connections=opts.connections,
                        duration=opts.duration,
                        engine="python",
                        timeout=30.0,
                    )
                profile["holds: API workers"] = collapsed_summary(a)
                profile["holds: Dramatiq workers"] = collapsed_summary(w)
                total = sum(waits.values()) or 1
                profile["pg_waits"] = [
                    (k, round(100 * n / total, 1)) for k, n in waits.most_common(12)
                ]
    finally:
        wipe_namespace(opts.redis_url, namespace)
        if not opts.keep:
            drop_database(opts.admin_url, opts.database)

    figures: list[Figure] = []
    ratios: list[dict[str, Any]] = []
    pg_tps = [r["tps"] for r in pg_runs]
    if pg_tps:
        figures.append(median_figure("pgbench booking 16c TPS", pg_tps, "tx/s"))
        figures.append(
            median_figure(
                "pgbench booking 16c p99",
                [r["p99_ms"] for r in pg_runs],
                "ms",
                higher_is_better=False,
            )
        )
    labels = {"holds": "holds/s", "pairs": "pairs/s", "contended": "answers/s"}
    for name, rs in kept.items():
        if not rs:
            continue
        figures.append(median_figure(f"{name} {labels[name]}", [r.result.rps for r in rs], "/s"))
        for key in ("p50", "p99"):
            figures.append(
                median_figure(
                    f"{name} {key}" + (" (pair)" if name == "pairs" else ""),
                    [r.result.latency_ms[key] for r in rs],
                    "ms",
                    higher_is_better=False,
                )
            )
    pair_hold_p99 = [r.extra["hold_ms"]["p99"] for r in kept["pairs"]]
    if pair_hold_p99:
        figures.append(median_figure("pairs hold p99", pair_hold_p99, "ms", higher_is_better=False))

    def add(label: str, cand: list[float], base: list[float], target: str, ok: bool) -> None:
        med, lo, hi = paired_ratio(cand, base)
        figures.append(Figure(label, med, "x", spread=(lo, hi)))
        ratios.append(
            {"figure": label, "ratio": med, "min": lo, "max": hi, "target": target, "met": ok}
        )

    hold_rps = [r.result.rps for r in kept["holds"]]
    pair_rps = [r.result.rps for r in kept["pairs"]]
    if pg_tps and hold_rps:
        med = paired_ratio(hold_rps, pg_tps)[0]
        add("holds/s / pgbench TPS", hold_rps, pg_tps, ">= 0.2", med >= 0.2)
    if pg_tps and pair_rps:
        med = paired_ratio(pair_rps, pg_tps)[0]
        add("pairs/s / pgbench TPS", pair_rps, pg_tps, ">= 0.1", med >= 0.1)
    cont_rps = [r.result.rps for r in kept["contended"]]
    if cont_rps and hold_rps:
        med = paired_ratio(cont_rps, hold_rps)[0]
        add("contended / uncontended rate", cont_rps, hold_rps, ">= 0.8", med >= 0.8)
    hold_p99 = (
        statistics.median(r.result.latency_ms["p99"] for r in kept["holds"])
        if kept["holds"]
        else float("nan")
    )
    overlaps = sum(o["overlapping_live_bookings"] for rs in outcomes.values() for o in rs)
    absolute = [
        {
            "figure": "holds POST p99",
            "value": hold_p99,
            "target": "<= 50 ms",
            "met": hold_p99 <= 50.0,
        },
        {
            "figure": "overlapping live bookings (all runs)",
            "value": overlaps,
            "target": "0",
            "met": overlaps == 0,
        },
    ]
    details: dict[str, Any] = {
        "revision": revision(),
        "setup": {
            "slots": salon.slots,
            "distinct_hold_times": len(pool),
            "contended_times": len(contended),
            "api_argv": f"python -m salon api --workers {opts.workers} --threads {opts.threads}",
            "worker_argv": "python -m salon worker (2 processes x 8 threads)",
        },
        "worker_env": opts.worker_env,
        "pgbench": pg_runs,
        "ratios": ratios,
        "absolute": absolute,
        "outcomes": outcomes,
        "redone": {"disturbed": redos.disturbed, "unbalanced": redos.unbalanced},
        "runs": {name: [r.summary() for r in rs] for name, rs in kept.items() if rs},
        "profile": profile,
    }
    return figures, details


def print_summary(details: Mapping[str, Any]) -> None:
    rows = [
        [
            r["figure"],
            f"{r['ratio']:.3f}x",
            f"{r['min']:.3f}..{r['max']:.3f}",
            r["target"],
            "met" if r["met"] else "MISSED",
        ]
        for r in details["ratios"]
    ]
    rows += [
        [
            a["figure"],
            f"{a['value']:.1f}" if isinstance(a["value"], float) else str(a["value"]),
            "",
            a["target"],
            "met" if a["met"] else "MISSED",
        ]
        for a in details["absolute"]
    ]
    print(format_table(rows, ["figure", "median", "min..max", "target", ""]))
    print(
        "# cpu % of one core (median over kept runs): API; ours = API, workers, client, our"
        " PostgreSQL backends, Redis; other"
    )
    for name, rs in details["runs"].items():
        med = {
            k: statistics.median(r[k] for r in rs)
            for k in ("server_cpu_pct", "ours_cpu_pct", "other_cpu_pct", "client_cpu_pct")
        }
        print(
            f"#   {name:<10} api {med['server_cpu_pct']:5.0f}  client {med['client_cpu_pct']:4.0f}"
            f"  ours {med['ours_cpu_pct']:5.0f}  other {med['other_cpu_pct']:4.0f}"
        )
    print("# CPU ms per answer (pairs: per pair), median over kept runs, by process group:")
    for name, rs in details["runs"].items():
        groups = sorted({g for r in rs for g in r.get("cpu_ms_per_request", {})})
        per = {
            g: statistics.median(r.get("cpu_ms_per_request", {}).get(g, 0.0) for r in rs)
            for g in groups
        }
        print(f"#   {name:<10} " + "  ".join(f"{g} {v:.2f}" for g, v in per.items()))
    for name, rs in details["outcomes"].items():
        for o in rs:
            print(
                f"# {name}: writes {o['writes']}, live bookings {o['live_bookings']}, "
                f"overlaps {o['overlapping_live_bookings']}, >5 s {o['writes_over_5s_or_pending']},"
                f" recorded->completed p50/p99 {o['recorded_to_completed_ms']} ms"
            )
    for r in details["pgbench"]:
        print(
            f"# pgbench 16c: {r['tps']:,.0f} tx/s p99 {r['p99_ms']:.1f} ms, other cpu "
            f"{r['other_cpu_pct']:.0f}%, redone {r['redone']}"
        )
    print(
        f"# runs redone: disturbed={details['redone']['disturbed']} "
        f"unbalanced={details['redone']['unbalanced']}"
    )
    for name, summary in details["profile"].items():
        if name == "idle_cpu_pct":
            print(f"# idle CPU (% of one core, no load, 5 s): {summary}")
        elif name == "pg_waits":
            print("# pg_stat_activity samples of our backends during (a):")
            for k, pct in summary:
                print(f"#     {pct:5.1f}%  {k}")
        else:
            print_profile(name, summary)


def main(argv: Sequence[str] | None = None) -> int:
    stop_cleanly_on_sigterm()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--pair-client"]:
        pair_client_main()
        return 0
    ap = argparse.ArgumentParser(
        prog="python -m bench.bookings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--admin-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    ap.add_argument("--pgbench-dsn", help="pgbench's database (default: bench.baseline_pgbench's)")
    ap.add_argument("--database", default="salon_bench_bookings")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("-c", "--connections", type=int, default=16)
    ap.add_argument("--max-other", type=float, default=25.0)
    ap.add_argument("--skip-pgbench", action="store_true", help="no pgbench (no ratios to it)")
    ap.add_argument(
        "--only",
        default="",
        metavar="NAMES",
        help="comma-separated scenarios to run (pgbench,holds,pairs,contended; default all)",
    )
    ap.add_argument("--api-workers", type=int, default=2, help="gunicorn workers of the API")
    ap.add_argument(
        "--api-threads",
        type=int,
        default=Settings().api_threads,
        help="threads per API worker (default: the product's, API_THREADS)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--profile", type=Path, help="py-spy API and workers under (a); stacks here")
    ap.add_argument("--py-spy", help="path of py-spy (default: on PATH)")
    ap.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the worker (experiments, e.g. dramatiq_worker_timeout=5)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", action="store_true", help="also write bench/results/*.json")
    args = ap.parse_args(args_list)
    if args.profile and not find_py_spy(args.py_spy):
        ap.error("--profile needs py-spy (pip install py-spy; not a project dependency)")
    opts = Options(
        admin_url=args.admin_url,
        redis_url=args.redis_url,
        pgbench_dsn=args.pgbench_dsn,
        database=args.database,
        repeat=args.repeat,
        workers=args.api_workers,
        threads=args.api_threads,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        max_other=args.max_other,
        keep=args.keep,
        profile_dir=args.profile,
        py_spy=args.py_spy,
        skip_pgbench=args.skip_pgbench,
        only=tuple(n for n in args.only.split(",") if n),
        worker_env=dict(kv.split("=", 1) for kv in args.worker_env),
    )
    figures, details = measure(opts)
    emit(
        figures,
        as_json=args.json,
        title="Booking holds through gunicorn -> Dramatiq -> PostgreSQL vs pgbench (same run)",
        save_as="bookings" if args.save else None,
        details=details,
    )
    if not args.json:
        print_summary(details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
