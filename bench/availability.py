"""/v1/slots and /v1/dates under load vs the bare Falcon endpoint, same run (issue 4's targets).

Setup (own database, own Redis namespace): 4 locations (different time zones) x 10 stylists x
60 days of slots, 09:00-19:00 every 15 minutes (the shape the generation job writes for a
WEEKLY rule; written here with one COPY), a 60-minute service per location, and some
bookings sprinkled in (about one stylist-day in three has a confirmed booking or a live hold).

Servers: the product's API as the CLI starts it, ``python -m salon api --workers 2 --threads 4``
(RATE_LIMIT_PER_MINUTE=0, LOG_LEVEL=WARNING), and the bare Falcon app (``bench.bare_app``)
under the gunicorn settings ``salon api`` passes (gthread 2 x 4, keep-alive 5, timeouts of
the CLI), both started for the same run. 4 threads, not the deployed default of 8, for both
(``--threads``): with 8 both servers were slower (docs/performance.md, session 6).

Loads (closed loop, keep-alive connections, from a separate process):

* ``/v1/slots``, 16 clients, a mix of 80 % repeats (the same ``X-Session-Id`` and parameters
  as a request a little earlier: the sticky exposure, answered from Redis) and 20 % new asks
  (a new session, or a known session asking another date/location: computed from
  PostgreSQL). Every attempt gets a freshly generated mix, so nothing was cached by an
  earlier run; the share of exposures the API really computed is read back from the
  exposure ledger (one stream entry per computed exposure) and printed.
* the bare endpoint, 16 clients (the ceiling for any endpoint under these settings).
* ``/v1/dates?days=90``, 4 and 16 clients (the 4 locations in turn), three ways: as is
  (calendars are stored and answered from Redis while no stylist's time changes); "busy":
  meanwhile a thread records ``--booking-rate`` bookings a second (20) on random stylists and
  dates, through the same Redis records the booking writes make, so calendars are brought up
  to date day by day; and "uncached": every stylist's time changes on every date every 10 ms
  (as a generation job everywhere would), so every calendar is computed in full. The bare
  endpoint at 4 clients gives the latency floor.

The busy loads run after the others, and the uncached ones last (each spoils what the
earlier ones keep).

Targets: /v1/slots >= 0.5x the bare req/s and p99 <= 2x the bare p99 (paired per round);
/v1/dates p99 < 50 ms at 4 clients (16 reported).

CPU accounting: a run's "ours" is the server tree, the load generator, the PostgreSQL backends
of this database (plus WAL writer/checkpointer) and redis-server; a run where the rest of the
machine used more than ``--max-other`` % of a core is redone (fresh mix), as is a run where
one gunicorn worker sat idle (see ``bench.measure.LoadRun.balanced``).

    .venv/bin/python -m bench.availability [--repeat 3] [--duration 10] [--json]
        [--profile DIR]   # also py-spy (if on PATH or --py-spy) the API workers under the mix
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.generation import fresh_database
from bench.harness import (
    Service,
    stop_cleanly_on_sigterm,
)
from bench.loadgen import Engine, LoadResult, Request, run_load
from bench.measure import paired_ratio
from bench.profiling import collapsed_summary, find_py_spy, print_profile, py_spy
from bench.report import Figure, emit, format_table, median_figure
from bench.salon_setup import (
    DEFAULT_ADMIN_URL,
    DEFAULT_REDIS_URL,
    WRK_MAX_MIX,
    Salon,
    bare_app,
    drop_database,
    product_env,
    product_gunicorn,
    revision,
    salon_api,
    seed_salon,
    sprinkle_bookings,
    wipe_namespace,
)
from bench.server_runs import Ours, Redos, Run, checked_run
from salon.versions import record_changes

# --- request mixes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    session: str
    place: int
    day: dt.date


def slots_request(salon: Salon, ask: Ask) -> Request:
    p = salon.places[ask.place]
    return Request(
        "GET",
        f"/v1/slots?date={ask.day.isoformat()}&location_id={p.id}&service_id={p.service_id}",
        (("X-Session-Id", ask.session),),
    )


def slots_mix(
    salon: Salon,
    n: int,
    rng: random.Random,
    *,
    repeat_share: float = 0.8,
    min_gap: int = 64,
    window: int = 4000,
) -> tuple[list[Request], int]:
    """``n`` requests: ``repeat_share`` repeat an ask made 64..4000 positions earlier (same
    session id, same parameters: within the exposure TTL at any rate we can reach); the rest
    are new asks, half from a new session, half a known session asking another date or
    location. A repeat is never closer than ``min_gap`` positions to its first ask, so the
    first answer is back before it is sent (16 connections walk the list in order). Returns
    the mix and how many asks in it are new."""
    positions: list[int] = []
    asks: list[Ask] = []
    seen: set[Ask] = set()
    sessions: list[str] = []
    out: list[Request] = []
    for pos in range(n):
        hi = bisect.bisect_right(positions, pos - min_gap)
        lo = bisect.bisect_left(positions, pos - window)
        if hi > lo and rng.random() < repeat_share:
            out.append(slots_request(salon, asks[rng.randrange(lo, hi)]))
            continue
        ask = None
        if sessions and rng.random() < 0.5:
            session = sessions[rng.randrange(max(0, len(sessions) - 500), len(sessions))]
            for _ in range(5):
                a = Ask(session, rng.randrange(len(salon.places)), rng.choice(salon.dates))
                if a not in seen:
                    ask = a
                    break
        if ask is None:
            session = uuid.UUID(int=rng.getrandbits(128)).hex
            sessions.append(session)
            ask = Ask(session, rng.randrange(len(salon.places)), rng.choice(salon.dates))
        seen.add(ask)
        positions.append(pos)
        asks.append(ask)
        out.append(slots_request(salon, ask))
    return out, len(asks)


class VersionBumper:
    """Changes stylists' time from a thread, through the same Redis records the booking
    writes make (`salon.versions`), so cached answers are recomputed as under real writes.

    ``everything``: every stylist's time on every date, every ``interval`` s (a generation
    job everywhere at once: the worst case, every calendar computed in full). Otherwise
    bookings: ``rate`` a second, each on a random stylist and date of the salon.
    """

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        stylists: Sequence[uuid.UUID],
        dates: Sequence[dt.date],
        *,
        everything: bool,
        rate: float = 20.0,
    ) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.namespace = namespace
        self.stylists = [str(s) for s in stylists]
        self.dates = [d.isoformat() for d in dates]
        self.everything = everything
        self.rate = rate
        self.bumps = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float = 0.01) -> VersionBumper:
        self._stop.clear()
        self.bumps = 0
        rng = random.Random(7)

        def loop() -> None:
            owed = 0.0
            while not self._stop.wait(interval):
                if self.everything:
                    changes: dict[str, set[str]] = {s: set() for s in self.stylists}
                else:
                    owed += self.rate * interval
                    changes = {}
                    while owed >= 1:
                        owed -= 1
                        stylist = rng.choice(self.stylists)
                        changes.setdefault(stylist, set()).add(rng.choice(self.dates))
                record_changes(self.client, self.namespace, changes)
                self.bumps += 1

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.bumps

    def close(self) -> None:
        self.stop()
        self.client.close()


def dates_mix(salon: Salon, days: int) -> list[Request]:
    return [
        Request("GET", f"/v1/dates?location_id={p.id}&service_id={p.service_id}&days={days}")
        for p in salon.places
    ]


# --- the benchmark -------------------------------------------------------------------------


@dataclass
class Load:
    """One load target: the server, whose CPU counts, its requests (made afresh per run)."""

    svc: Service
    ours: Ours
    requests: Callable[[], Sequence[Request] | None]
    connections: int
    before: Callable[[], Any] | None = None
    after: Callable[[Any, LoadResult], dict[str, Any]] | None = None


@dataclass
class Options:
    admin_url: str = DEFAULT_ADMIN_URL
    redis_url: str = DEFAULT_REDIS_URL
    database: str = "salon_bench_availability"
    repeat: int = 3
    duration: float = 10.0
    warmup: float = 2.0
    connections: int = 16
    dates_connections: tuple[int, ...] = (4, 16)
    dates_days: int = 90
    engine: Engine = "wrk"
    workers: int = 2
    threads: int = 4
    max_other: float = 25.0
    retries: int = 4
    booking_share: float = 0.3
    # Bookings a second landing on random stylists and dates during the "busy" loads.
    booking_rate: float = 20.0
    repeat_share: float = 0.8
    seed: int = 20261125
    keep: bool = False
    profile_dir: Path | None = None
    py_spy: str | None = None


def measure(opts: Options) -> tuple[list[Figure], dict[str, Any]]:
    rng = random.Random(opts.seed)
    t_setup = time.monotonic()
    url = fresh_database(opts.admin_url, opts.database)
    salon = seed_salon(url)
    booked = sprinkle_bookings(url, salon, share=opts.booking_share, rng=rng)
    setup_s = time.monotonic() - t_setup
    namespace = f"bench-avail-{uuid.uuid4().hex[:6]}"
    env = product_env(url, opts.redis_url, namespace)
    ledger_key = f"{namespace}:exposures"
    rds = redis.Redis.from_url(opts.redis_url)
    settings = product_gunicorn(opts.workers, opts.threads)
    # wrk walks a mix with one thread here, so each entry is sent once, in order (two wrk
    # threads would walk it from two offsets and resend each other's entries).
    client_workers = 1 if opts.engine == "wrk" else None
    cap = WRK_MAX_MIX if opts.engine != "python" else 10**7
    est_rps = [5000.0]  # a first mix too small would wrap (every ask a repeat the second time)
    redos = Redos()
    runs: dict[str, list[Run]] = {}
    profile: dict[str, Any] = {}

    def mix_size() -> int:
        return min(cap, max(8000, int(est_rps[0] * opts.duration * 2) + 2000))

    generated = [0]  # the size of the last mix made, to tell whether a run went round it

    def fresh_slots() -> list[Request]:
        generated[0] = mix_size()
        reqs, _ = slots_mix(salon, generated[0], rng, repeat_share=opts.repeat_share)
        return reqs

    def ledger_len() -> int:
        return int(rds.xlen(ledger_key))

    def slots_after(before: Any, res: LoadResult) -> dict[str, Any]:
        computed = ledger_len() - int(before)
        est_rps[0] = max(est_rps[0], res.rps)
        size = generated[0]
        return {
            "exposures_computed": computed,
            "computed_share": round(computed / res.requests, 3) if res.requests else None,
            "mix_size": size,
            "mix_wrapped": res.requests > size,
        }

    try:
        with (
            bare_app(settings) as bare,
            salon_api(env, workers=opts.workers, threads=opts.threads) as api,
        ):
            ours_bare = Ours({"gunicorn": bare})
            ours_api = Ours({"api": api}, dbname=opts.database, redis_server=True)
            bare_req = [Request("GET", "/slot")]
            dates_req = dates_mix(salon, opts.dates_days)
            targets: dict[str, Load] = {
                "bare 16c": Load(bare, ours_bare, lambda: bare_req, opts.connections),
                "slots 16c": Load(
                    api, ours_api, fresh_slots, opts.connections, ledger_len, slots_after
                ),
            }
            stylists = [s for p in salon.places for s in p.stylists]
            bumper = VersionBumper(
                opts.redis_url, namespace, stylists, salon.dates, everything=True
            )
            booker = VersionBumper(
                opts.redis_url,
                namespace,
                stylists,
                salon.dates,
                everything=False,
                rate=opts.booking_rate,
            )

            def bumps_after(_token: Any, _res: LoadResult) -> dict[str, Any]:
                return {"version_bumps": bumper.stop(), "bump_interval_ms": 10}

            def bookings_after(_token: Any, _res: LoadResult) -> dict[str, Any]:
                return {"booking_ticks": booker.stop(), "booking_rate": opts.booking_rate}

            for c in opts.dates_connections:
                if c != opts.connections:
                    targets[f"bare {c}c"] = Load(bare, ours_bare, lambda: bare_req, c)
                targets[f"dates {c}c"] = Load(api, ours_api, lambda: dates_req, c)
                targets[f"dates busy {c}c"] = Load(
                    api, ours_api, lambda: dates_req, c, booker.start, bookings_after
                )
                targets[f"dates uncached {c}c"] = Load(
                    api, ours_api, lambda: dates_req, c, bumper.start, bumps_after
                )

            def warm_up(names: list[str]) -> None:
                # Every target once (connections, pools, PostgreSQL caches), not kept.
                for name in names:
                    t = targets[name]
                    warm = run_load(
                        t.svc.url,
                        t.requests(),
                        connections=t.connections,
                        duration=opts.warmup,
                        engine=opts.engine,
                        workers=client_workers,
                    )
                    if name.startswith("slots"):
                        # Never below the first guess: a cold warm-up is slow, and a mix sized
                        # from it would wrap in round 1 (every ask a repeat the second time).
                        est_rps[0] = max(est_rps[0], warm.rps)

            def measure_rounds(names: list[str]) -> None:
                for rnd in range(opts.repeat):
                    for name in names if rnd % 2 == 0 else names[::-1]:
                        t = targets[name]
                        run = checked_run(
                            name,
                            t.svc,
                            t.ours,
                            requests=t.requests,
                            connections=t.connections,
                            duration=opts.duration,
                            engine=opts.engine,
                            client_workers=client_workers,
                            max_other=opts.max_other,
                            retries=opts.retries,
                            redos=redos,
                            before=t.before,
                            after=t.after,
                        )
                        runs.setdefault(name, []).append(run)
                        print(
                            f"# round {rnd + 1} {name}: {run.result.rps:,.0f} req/s "
                            f"p99 {run.result.latency_ms.get('p99', 0):.1f} ms "
                            f"other {run.other_cpu_pct:.0f}% workers "
                            + "/".join(f"{w:.0f}" for w in run.worker_cpu_pct)
                            + "%",
                            file=sys.stderr,
                            flush=True,
                        )

            spy = find_py_spy(opts.py_spy) if opts.profile_dir else None

            def profile_load(name: str) -> None:
                if not (opts.profile_dir and spy):
                    return
                workers = [p for p in api.pids() if p != api.pid]
                t = targets[name]
                label = name.replace(" ", "-")
                token = t.before() if t.before else None
                with py_spy(spy, workers, opts.duration, opts.profile_dir, label) as paths:
                    res = run_load(
                        api.url,
                        t.requests(),
                        connections=t.connections,
                        duration=opts.duration,
                        engine=opts.engine,
                        workers=client_workers,
                    )
                if t.after:
                    t.after(token, res)
                profile[name] = collapsed_summary(paths)

            # Phases: the busy loads change some stylists' time, the uncached ones all of it,
            # so each runs after the loads whose cached answers it would spoil.
            busy = [n for n in targets if "busy" in n]
            uncached = [n for n in targets if "uncached" in n]
            cached = [n for n in targets if n not in busy and n not in uncached]
            warm_up(cached)
            measure_rounds(cached)
            profile_load("slots 16c")
            warm_up(busy)
            measure_rounds(busy)
            warm_up(uncached)
            measure_rounds(uncached)
            if opts.dates_connections:
                profile_load(f"dates uncached {opts.dates_connections[0]}c")
            bumper.close()
            booker.close()
    finally:
        rds.close()
        wipe_namespace(opts.redis_url, namespace)
        if not opts.keep:
            drop_database(opts.admin_url, opts.database)

    figures: list[Figure] = []
    ratios: list[dict[str, Any]] = []

    def rps(name: str) -> list[float]:
        return [r.result.rps for r in runs[name]]

    def lat(name: str, key: str) -> list[float]:
        return [r.result.latency_ms[key] for r in runs[name]]

    for name in runs:
        figures.append(median_figure(f"{name} req/s", rps(name), "req/s"))
        for key in ("p50", "p99"):
            figures.append(
                median_figure(f"{name} {key}", lat(name, key), "ms", higher_is_better=False)
            )

    # A round whose run stayed unbalanced through every retry measured one gunicorn worker
    # (the bare endpoint at 2.9k instead of 8k req/s once): its pairs are left out of ratios.
    left_out: dict[str, int] = {}

    def metric(name: str, key: str) -> list[float]:
        return rps(name) if key == "req/s" else lat(name, key)

    def ratio(label: str, cand: str, base: str, key: str) -> tuple[float, float, float]:
        ok = [a.balanced and b.balanced for a, b in zip(runs[cand], runs[base], strict=True)]
        if not any(ok):
            ok = [True] * len(ok)
        if not all(ok):
            left_out[label] = ok.count(False)
        kept = [
            (c, b) for c, b, k in zip(metric(cand, key), metric(base, key), ok, strict=True) if k
        ]
        return paired_ratio([c for c, _ in kept], [b for _, b in kept])

    def add_ratio(label: str, cand: str, base: str, key: str, target: str) -> float:
        """Record the paired ratio (its "met" set by the caller); its median."""
        med, lo, hi = ratio(label, cand, base, key)
        figures.append(Figure(label, med, "x", spread=(lo, hi)))
        ratios.append(
            {"figure": label, "ratio": med, "min": lo, "max": hi, "target": target, "met": None}
        )
        return med

    rps_ratio = add_ratio("slots/bare req/s (16c)", "slots 16c", "bare 16c", "req/s", ">= 0.5")
    ratios[-1]["met"] = rps_ratio >= 0.5
    p99_ratio = add_ratio("slots/bare p99 (16c)", "slots 16c", "bare 16c", "p99", "<= 2")
    ratios[-1]["met"] = p99_ratio <= 2.0
    for kind in ("dates", "dates busy", "dates uncached"):
        for c in opts.dates_connections:
            base = "bare 16c" if c == opts.connections else f"bare {c}c"
            p99 = statistics.median(lat(f"{kind} {c}c", "p99"))
            first = c == opts.dates_connections[0]
            target = "p99 < 50 ms" if first else "(reported)"
            add_ratio(f"{kind}/bare p99 ({c}c)", f"{kind} {c}c", base, "p99", target)
            ratios[-1]["p99_ms"] = p99
            ratios[-1]["met"] = p99 < 50.0 if first else None
    shares = [r.extra.get("computed_share") for r in runs["slots 16c"]]
    details: dict[str, Any] = {
        "revision": revision(),
        "setup": {
            "locations": len(salon.places),
            "stylists_per_location": len(salon.places[0].stylists),
            "days": salon.days,
            "first_day": salon.first_day.isoformat(),
            "slots": salon.slots,
            "bookings_sprinkled": booked,
            "service_minutes": salon.service_minutes,
            "zones": [p.zone for p in salon.places],
            "setup_seconds": round(setup_s, 1),
        },
        "gunicorn": settings.args(),
        "api_argv": f"python -m salon api --workers {opts.workers} --threads {opts.threads}",
        "engine": opts.engine,
        "client_workers": client_workers,
        "duration_s": opts.duration,
        "repeat": opts.repeat,
        "mix": "80% repeats (same X-Session-Id + params, 64..4000 positions later), 20% new",
        "computed_share": shares,
        "redone": {"disturbed": redos.disturbed, "unbalanced": redos.unbalanced},
        "left_out_of_ratios": left_out,
        "ratios": ratios,
        "runs": {name: [r.summary() for r in rs] for name, rs in runs.items()},
        "profile": profile,
    }
    return figures, details


def print_summary(details: Mapping[str, Any]) -> None:
    rows = []
    for r in details["ratios"]:
        met = r.get("met")
        extra = f" (p99 {r['p99_ms']:.1f} ms)" if "p99_ms" in r else ""
        rows.append(
            [
                r["figure"],
                f"{r['ratio']:.3f}x{extra}",
                f"{r['min']:.3f}..{r['max']:.3f}",
                r["target"],
                "" if met is None else ("met" if met else "MISSED"),
            ]
        )
    print(format_table(rows, ["paired ratio (per round)", "median", "min..max", "target", ""]))
    runs = details["runs"]
    print("# cpu % of one core (median over kept runs): server / ours / other; errors")
    for name, rs in runs.items():
        med = {
            k: statistics.median(r[k] for r in rs)
            for k in ("server_cpu_pct", "ours_cpu_pct", "other_cpu_pct", "client_cpu_pct")
        }
        errs = sum(r["error_count"] for r in rs)
        print(
            f"#   {name:<10} server {med['server_cpu_pct']:5.0f}"
            f"  client {med['client_cpu_pct']:4.0f}  ours {med['ours_cpu_pct']:5.0f}"
            f"  other {med['other_cpu_pct']:4.0f}  errors {errs}"
        )
    print("# CPU ms per request (median over kept runs), by process group:")
    for name, rs in runs.items():
        groups = sorted({g for r in rs for g in r.get("cpu_ms_per_request", {})})
        per = {
            g: statistics.median(r.get("cpu_ms_per_request", {}).get(g, 0.0) for r in rs)
            for g in groups
        }
        print(f"#   {name:<10} " + "  ".join(f"{g} {v:.3f}" for g, v in per.items()))
    print(
        f"# /v1/slots exposures computed / requests per run: {details['computed_share']} "
        "(the rest were sticky repeats answered from Redis)"
    )
    print(
        f"# runs redone: disturbed={details['redone']['disturbed']} "
        f"unbalanced={details['redone']['unbalanced']}; engine={details['engine']}"
    )
    if details["left_out_of_ratios"]:
        print(
            "# rounds left out of a ratio (a server worker idle through every retry): "
            + ", ".join(f"{k} {v}" for k, v in details["left_out_of_ratios"].items())
        )
    s = details["setup"]
    print(
        f"# data: {s['locations']} locations x {s['stylists_per_location']} stylists x "
        f"{s['days']} days = {s['slots']:,} slots, {s['bookings_sprinkled']} bookings"
    )
    for name, summary in details["profile"].items():
        print_profile(name, summary)


def main(argv: Sequence[str] | None = None) -> int:
    stop_cleanly_on_sigterm()
    ap = argparse.ArgumentParser(
        prog="python -m bench.availability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--admin-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    ap.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    ap.add_argument("--database", default="salon_bench_availability")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("-c", "--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (both servers)")
    ap.add_argument("--threads", type=int, default=4, help="threads per worker (both servers)")
    ap.add_argument("--dates-connections", type=int, nargs="+", default=[4, 16])
    ap.add_argument(
        "--slots-only",
        action="store_true",
        help="only /v1/slots and the bare endpoint (~1 min a round: to try a change quickly)",
    )
    ap.add_argument(
        "--engine", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python"
    )
    ap.add_argument("--max-other", type=float, default=25.0)
    ap.add_argument(
        "--booking-rate",
        type=float,
        default=20.0,
        help="bookings a second (random stylist and date) during the 'dates busy' loads",
    )
    ap.add_argument(
        "--repeat-share",
        type=float,
        default=0.8,
        help="share of /v1/slots asks that repeat an earlier one (the issue's mix: 0.8; 0 to "
        "price new asks alone)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--profile", type=Path, help="py-spy the API workers; collapsed stacks here")
    ap.add_argument("--py-spy", help="path of py-spy (default: on PATH)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", action="store_true", help="also write bench/results/*.json")
    args = ap.parse_args(argv)
    if args.profile and not find_py_spy(args.py_spy):
        ap.error("--profile needs py-spy (pip install py-spy; not a project dependency)")
    opts = Options(
        admin_url=args.admin_url,
        redis_url=args.redis_url,
        database=args.database,
        repeat=args.repeat,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        dates_connections=() if args.slots_only else tuple(args.dates_connections),
        workers=args.workers,
        threads=args.threads,
        engine=args.engine,
        max_other=args.max_other,
        booking_rate=args.booking_rate,
        repeat_share=args.repeat_share,
        keep=args.keep,
        profile_dir=args.profile,
        py_spy=args.py_spy,
    )
    figures, details = measure(opts)
    emit(
        figures,
        as_json=args.json,
        title="/v1/slots and /v1/dates vs bare Falcon (gunicorn gthread 2x4, same run)",
        save_as="availability" if args.save else None,
        details=details,
    )
    if not args.json:
        print_summary(details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
