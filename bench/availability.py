"""/v1/slots and /v1/dates under load vs the bare Falcon endpoint, same run (issue 4's targets).

Setup (own database, own Redis namespace): 4 locations (different time zones) x 10 stylists x
60 days of slots, 09:00-19:00 every 15 minutes (the shape the generation job writes for a
WEEKLY rule; written here with one COPY), a 60-minute service per location, and some
bookings sprinkled in (about one stylist-day in three has a confirmed booking or a live hold).

Servers: the product exactly as deployed, ``python -m salon api --workers 2 --threads 4``
(RATE_LIMIT_PER_MINUTE=0, LOG_LEVEL=WARNING), and the bare Falcon app (``bench.bare_app``)
under the gunicorn settings ``salon api`` passes (gthread 2 x 4, keep-alive 5, timeouts of
the CLI), both started for the same run.

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
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import redis
from sqlalchemy.engine import make_url

from bench.cpuwatch import CpuWatch, process_cpu
from bench.generation import fresh_database
from bench.harness import (
    REPO_ROOT,
    GunicornSettings,
    Service,
    free_port,
    gunicorn,
    started,
    wait_for_url,
)
from bench.loadgen import Engine, LoadResult, Request, run_load
from bench.measure import paired_ratio
from bench.report import Figure, emit, format_table, median_figure
from models.ids import new_id_hexes
from models.rules import Rule, expand
from salon.settings import Settings
from salon.versions import record_changes

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ZONES = ("Europe/London", "Europe/Paris", "America/New_York", "Europe/Berlin")
OPEN, CLOSE = dt.time(9), dt.time(19)
# wrk keeps a mix as one Lua table; LuaJIT allows 65,536 constants in a chunk (two per entry).
WRK_MAX_MIX = 30_000
AUX = ("walwriter", "checkpointer", "background writer")


# --- servers -----------------------------------------------------------------------------


def product_gunicorn(workers: int = 2, threads: int = 4) -> GunicornSettings:
    """The gunicorn settings ``salon api`` uses (salon/cli.py), for the bare app to share."""
    wait = int(Settings().api_max_wait_seconds)
    return GunicornSettings(
        workers=workers,
        threads=threads,
        keepalive=5,
        timeout=wait + 30,
        graceful_timeout=wait + 5,
        log_level="info",  # gunicorn's default, which `salon api` keeps (no access log either)
    )


@contextmanager
def salon_api(env: Mapping[str, str], *, workers: int = 2, threads: int = 4) -> Iterator[Service]:
    """``python -m salon api`` on a free port; yields once /healthz answers."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "salon",
        "api",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    with (
        tempfile.TemporaryDirectory(prefix="salon-bench-metrics-") as metrics,
        started(
            "salon-api", argv, env={**env, "PROMETHEUS_MULTIPROC_DIR": metrics}, grace=45.0
        ) as svc,
    ):
        svc.url = f"http://127.0.0.1:{port}"
        try:
            wait_for_url(svc.url + "/healthz", timeout=60.0, proc=svc.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"salon api did not start: {exc}\n{svc.log_tail()}") from exc
        yield svc


@contextmanager
def bare_app(settings: GunicornSettings) -> Iterator[Service]:
    with gunicorn("bench.bare_app:app", settings=settings, ready_path="/healthz") as svc:
        yield svc


def product_env(url: str, redis_url: str, namespace: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": namespace,
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def wipe_namespace(redis_url: str, namespace: str) -> None:
    """Delete the product's keys (``NS:...``) and its Dramatiq broker's (``NS-dramatiq...``)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [
            *client.scan_iter(match=f"{namespace}:*", count=1000),
            *client.scan_iter(match=f"{namespace}-dramatiq*", count=1000),
        ]
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


def drop_database(admin_url: str, name: str) -> None:
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def revision() -> str:
    """The commit measured (and "+dirty" when the work tree differs from it)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def libpq(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://) as a libpq one."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    id: uuid.UUID
    zone: str
    service_id: uuid.UUID
    stylists: tuple[uuid.UUID, ...]


@dataclass
class Salon:
    biz: uuid.UUID
    places: list[Place]
    first_day: dt.date
    days: int
    service_minutes: int
    # (stylist, UTC start) -> slot id, and each stylist-day's slot starts in order.
    slot_ids: dict[tuple[uuid.UUID, dt.datetime], str] = field(default_factory=dict, repr=False)
    day_starts: dict[tuple[uuid.UUID, dt.date], list[dt.datetime]] = field(
        default_factory=dict, repr=False
    )
    slots: int = 0

    @property
    def dates(self) -> list[dt.date]:
        return [self.first_day + dt.timedelta(days=i) for i in range(self.days)]

    def place_of(self, stylist: uuid.UUID) -> Place:
        return next(p for p in self.places if stylist in p.stylists)

    def starts_fitting(self, stylist: uuid.UUID, day: dt.date, minutes: int) -> list[dt.datetime]:
        """Slot starts of that stylist-day where ``minutes`` fit before closing."""
        starts = self.day_starts.get((stylist, day), [])
        if not starts:
            return []
        last_end = starts[-1] + dt.timedelta(minutes=15)
        return [s for s in starts if s + dt.timedelta(minutes=minutes) <= last_end]


def seed_salon(
    url: str,
    *,
    locations: int = 4,
    stylists: int = 10,
    days: int = 60,
    service_minutes: int = 60,
    first_day: dt.date | None = None,
) -> Salon:
    """Brand, locations, stylists, one service per location, WEEKLY rules and their slots."""
    first = first_day or (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1))
    last = first + dt.timedelta(days=days - 1)
    biz = uuid.uuid4()
    places = [
        Place(
            uuid.uuid4(),
            ZONES[i % len(ZONES)],
            uuid.uuid4(),
            tuple(uuid.UUID(h) for h in new_id_hexes(stylists)),
        )
        for i in range(locations)
    ]
    salon = Salon(biz, places, first, days, service_minutes)
    rows: list[tuple[str, uuid.UUID, uuid.UUID, dt.date, dt.datetime, dt.datetime]] = []
    rule = Rule(uuid.uuid4(), "WEEKLY", OPEN, CLOSE, (1, 2, 3, 4, 5, 6, 7))
    for p in places:
        slots = expand([rule], first, last, ZoneInfo(p.zone))
        for s in p.stylists:
            ids = new_id_hexes(len(slots))
            for sid, x in zip(ids, slots, strict=True):
                rows.append((sid, p.id, s, x.local_date, x.start_at, x.end_at))
                salon.slot_ids[(s, x.start_at)] = sid
                salon.day_starts.setdefault((s, x.local_date), []).append(x.start_at)
    salon.slots = len(rows)
    with psycopg.connect(libpq(url)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO public.biz_entity (id, name) VALUES (%s, 'bench')", (biz,))
        for n, p in enumerate(places):
            cur.execute(
                "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                " VALUES (%s, %s, %s, %s)",
                (p.id, biz, f"Bench {n}", p.zone),
            )
            cur.execute(
                "INSERT INTO scheduler.services (id, location_id, name, duration_minutes, price)"
                " VALUES (%s, %s, 'Cut & finish', %s, 45)",
                (p.service_id, p.id, service_minutes),
            )
            for k, s in enumerate(p.stylists):
                cur.execute(
                    "INSERT INTO scheduler.stylists (id, biz_entity_id, name) VALUES (%s, %s, %s)",
                    (s, biz, f"Stylist {n}.{k}"),
                )
                cur.execute("INSERT INTO scheduler.stylist_locations VALUES (%s, %s)", (s, p.id))
                cur.execute(
                    "INSERT INTO scheduler.availability_rules (id, location_id, stylist_id,"
                    " rule_kind, days_of_week, start_time, end_time, slot_granularity_minutes)"
                    " VALUES (%s, %s, %s, 'WEEKLY', '{1,2,3,4,5,6,7}', %s, %s, 15)",
                    (uuid.uuid4(), p.id, s, OPEN, CLOSE),
                )
        with cur.copy(
            "COPY scheduler.slot_instances (id, location_id, stylist_id, local_date, start_at,"
            " end_at) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
    analyze(url)
    return salon


def sprinkle_bookings(url: str, salon: Salon, *, share: float, rng: random.Random) -> int:
    """Up to two bookings on about ``share`` of the stylist-days: 80 % confirmed, 20 % held
    (holds last a day, so they stay live through the run). Returns how many."""
    need = dt.timedelta(minutes=salon.service_minutes)
    rows = []
    for p in salon.places:
        for s in p.stylists:
            for day in salon.dates:
                taken: list[tuple[dt.datetime, dt.datetime]] = []
                fits = salon.starts_fitting(s, day, salon.service_minutes)
                for _ in range(2):
                    if not fits or rng.random() >= share / 1.5:
                        continue
                    start = rng.choice(fits)
                    end = start + need
                    if any(a < end and start < b for a, b in taken):
                        continue
                    taken.append((start, end))
                    held = rng.random() < 0.2
                    rows.append(
                        (
                            uuid.uuid4(),
                            salon.biz,
                            p.id,
                            s,
                            p.service_id,
                            salon.slot_ids[(s, start)],
                            uuid.uuid4(),
                            "held" if held else "confirmed",
                            start,
                            end,
                            salon.service_minutes,
                            dt.timedelta(days=1) if held else None,
                        )
                    )
    with psycopg.connect(libpq(url)) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id,"
            " service_id, slot_id, user_id, customer_name, customer_phone, status, start_at,"
            " end_at, service_minutes, hold_expires_at, confirmed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'Bench Customer', '+44 20 7946 0000', %s,"
            " %s, %s, %s, now() + %s, CASE WHEN %s::interval IS NULL THEN now() END)",
            [(*r, r[-1]) for r in rows],
        )
        conn.commit()
    analyze(url)
    return len(rows)


def analyze(url: str) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# --- runs with CPU accounting --------------------------------------------------------------


class Ours:
    """Which processes a run's CPU belongs to (``CpuWatch``'s predicate), by group.

    The named services' trees (pids taken once, at construction), the load generator
    (``wrk`` or ``bench.loadgen_py`` processes, or our own client module), and optionally the
    PostgreSQL backends of ``dbname`` (plus the WAL writer, checkpointer and background writer
    our commits keep busy) and redis-server. Without the last two, a database-bound endpoint
    would always look "disturbed".
    """

    def __init__(
        self,
        services: Mapping[str, Service],
        *,
        dbname: str | None = None,
        redis_server: bool = False,
        clients: Sequence[str] = ("bench.loadgen_py",),
    ) -> None:
        self.pids: dict[int, str] = {}
        for name, svc in services.items():
            self.pids.update(dict.fromkeys(svc.pids(), name))
        self.dbname = dbname
        self.redis_server = redis_server
        self.clients = tuple(clients)

    def group(self, pid: int, cmd: str) -> str | None:
        if pid in self.pids:
            return self.pids[pid]
        head = cmd.split(" ", 1)[0]
        if head.endswith("/wrk") or head == "wrk" or any(c in cmd for c in self.clients):
            return "client"
        if self.redis_server and head.endswith("redis-server"):
            return "redis"
        ours_pg = self.dbname and (f" {self.dbname} " in cmd or cmd.rstrip().endswith(AUX))
        if cmd.startswith("postgres:") and ours_pg:
            return "postgres"
        return None

    def __call__(self, pid: int, cmd: str) -> bool:
        return self.group(pid, cmd) is not None


def cpu_by_group(
    ours: Ours, before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds per group between two snapshots (processes alive at the second one)."""
    used: dict[str, float] = {}
    for pid, (cmd, cpu) in after.items():
        name = ours.group(pid, cmd)
        if name is not None:
            used[name] = used.get(name, 0.0) + cpu - before.get(pid, (cmd, 0.0))[1]
    return used


@dataclass
class Run:
    """One kept load run: the result and who used the CPU (% of one core)."""

    name: str
    result: LoadResult
    server_cpu_pct: float  # the gunicorn tree under test
    ours_cpu_pct: float  # server + client + its PostgreSQL backends and Redis
    other_cpu_pct: float
    worker_cpu_pct: list[float]
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """As ``bench.measure.LoadRun.balanced``, but only when the server is what limits the
        run: a database-bound endpoint whose workers use a few % each does not care."""
        w = self.worker_cpu_pct
        if len(w) < 2 or sum(w) < 50:
            return True
        return min(w) >= 0.33 * (sum(w) / len(w))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rps": round(self.result.rps, 1),
            "requests": self.result.requests,
            "latency_ms": {k: round(v, 2) for k, v in self.result.latency_ms.items()},
            "errors": self.result.errors,
            "error_count": self.result.error_count,
            "client_cpu_pct": round(self.result.client_cpu_pct, 1),
            "server_cpu_pct": round(self.server_cpu_pct, 1),
            "ours_cpu_pct": round(self.ours_cpu_pct, 1),
            "other_cpu_pct": round(self.other_cpu_pct, 1),
            "worker_cpu_pct": [round(w, 1) for w in self.worker_cpu_pct],
            "attempts": self.attempts,
            **self.extra,
        }


@dataclass
class Redos:
    disturbed: int = 0
    unbalanced: int = 0

    def note(self, name: str, run: Run, max_other: float) -> None:
        if run.other_cpu_pct > max_other:
            self.disturbed += 1
            why = f"other cpu {run.other_cpu_pct:.0f}%"
        else:
            self.unbalanced += 1
            why = "unbalanced workers, cpu% " + "/".join(f"{w:.0f}" for w in run.worker_cpu_pct)
        print(f"# {name}: run redone ({why})", file=sys.stderr, flush=True)


def checked_run(
    name: str,
    svc: Service,
    ours: Ours,
    *,
    requests: Callable[[], Sequence[Request] | None],
    connections: int,
    duration: float,
    engine: Engine,
    client_workers: int | None,
    max_other: float,
    retries: int,
    redos: Redos,
    before: Callable[[], Any] | None = None,
    after: Callable[[Any, LoadResult], dict[str, Any]] | None = None,
    timeout: float = 5.0,
) -> Run:
    """One load run, redone (with a fresh ``requests()``) while disturbed or unbalanced.

    ``before()`` runs just before the load, its value goes to ``after(value, result)``,
    whose dict lands in ``Run.extra`` (e.g. counters read from Redis around the run).
    """
    for attempt in range(1, retries + 2):
        reqs = requests()
        token = before() if before else None
        svc.mark_cpu()
        snap = process_cpu()
        t0 = time.monotonic()
        with CpuWatch(ours) as watch:
            result = run_load(
                svc.url,
                reqs,
                connections=connections,
                duration=duration,
                engine=engine,
                workers=client_workers,
                timeout=timeout,
            )
        wall = time.monotonic() - t0
        by_pid = svc.cpu_since_mark_by_pid()
        per_group = cpu_by_group(ours, snap, process_cpu())
        run = Run(
            name,
            result,
            100 * sum(by_pid.values()) / wall,
            watch.ours_pct,
            watch.other_pct,
            [100 * c / wall for pid, c in sorted(by_pid.items()) if pid != svc.pid],
            attempt,
            after(token, result) if after else {},
        )
        if per_group and result.requests:
            # Client processes have exited by now: their CPU is result.client_cpu_pct.
            run.extra["cpu_ms_per_request"] = {
                k: round(1000 * v / result.requests, 3)
                for k, v in sorted(per_group.items())
                if k != "client"
            }
        if attempt == retries + 1 or (run.other_cpu_pct <= max_other and run.balanced):
            return run
        redos.note(name, run, max_other)
    raise AssertionError("unreachable")


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


# --- profiling -----------------------------------------------------------------------------


def find_py_spy(given: str | None) -> str | None:
    return given or shutil.which("py-spy")


@contextmanager
def py_spy(
    py_spy_bin: str, pids: Sequence[int], seconds: float, out_dir: Path, label: str
) -> Iterator[list[Path]]:
    """Sample each pid for ``seconds`` meanwhile: collapsed stacks, non-blocking,
    200 Hz, GIL holder only (so the shares are of Python CPU time)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{label}-{pid}.txt" for pid in pids]
    procs = [
        subprocess.Popen(
            [
                py_spy_bin,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                # Only the thread holding the GIL: Python CPU, not threads waiting on sockets
                # (psycopg's and redis-py's waits look busy to py-spy otherwise).
                "--gil",
                "--output",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, path in zip(pids, paths, strict=True)
    ]
    try:
        yield paths
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)": keep function + file.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def collapsed_summary(paths: Sequence[Path], top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the busiest functions in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_frame_name(f) for f in stack.split(";")]
            total += n
            own[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}
    return {
        "samples": total,
        "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)],
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in incl.most_common(top)],
    }


def print_profile(title: str, summary: Mapping[str, Any]) -> None:
    print(f"# profile: {title} ({summary['samples']} samples holding the GIL, %)")
    for kind in ("self", "inclusive"):
        print(f"#   top {kind}:")
        for name, pct in summary[kind]:
            print(f"#     {pct:5.1f}%  {name}")


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
    est_rps = [1000.0]
    redos = Redos()
    runs: dict[str, list[Run]] = {}
    profile: dict[str, Any] = {}

    def mix_size() -> int:
        return min(cap, max(8000, int(est_rps[0] * opts.duration * 1.5) + 2000))

    def fresh_slots() -> list[Request]:
        reqs, _ = slots_mix(salon, mix_size(), rng)
        return reqs

    def ledger_len() -> int:
        return int(rds.xlen(ledger_key))

    def slots_after(before: Any, res: LoadResult) -> dict[str, Any]:
        computed = ledger_len() - int(before)
        est_rps[0] = max(est_rps[0], res.rps)
        size = mix_size()
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
                        est_rps[0] = warm.rps

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
                            f"other {run.other_cpu_pct:.0f}%",
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

    def add_ratio(label: str, cand: list[float], base: list[float], target: str, ok: bool) -> None:
        med, lo, hi = paired_ratio(cand, base)
        figures.append(Figure(label, med, "x", spread=(lo, hi)))
        ratios.append(
            {"figure": label, "ratio": med, "min": lo, "max": hi, "target": target, "met": ok}
        )

    med_rps, _, _ = paired_ratio(rps("slots 16c"), rps("bare 16c"))
    add_ratio(
        "slots/bare req/s (16c)",
        rps("slots 16c"),
        rps("bare 16c"),
        ">= 0.5",
        med_rps >= 0.5,
    )
    med_p99, _, _ = paired_ratio(lat("slots 16c", "p99"), lat("bare 16c", "p99"))
    add_ratio(
        "slots/bare p99 (16c)",
        lat("slots 16c", "p99"),
        lat("bare 16c", "p99"),
        "<= 2",
        med_p99 <= 2.0,
    )
    for kind in ("dates", "dates busy", "dates uncached"):
        for c in opts.dates_connections:
            base = "bare 16c" if c == opts.connections else f"bare {c}c"
            p99 = statistics.median(lat(f"{kind} {c}c", "p99"))
            first = c == opts.dates_connections[0]
            add_ratio(
                f"{kind}/bare p99 ({c}c)",
                lat(f"{kind} {c}c", "p99"),
                lat(base, "p99"),
                "p99 < 50 ms" if first else "(reported)",
                p99 < 50.0,
            )
            ratios[-1]["p99_ms"] = p99
            if not first:
                ratios[-1]["met"] = None
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
    s = details["setup"]
    print(
        f"# data: {s['locations']} locations x {s['stylists_per_location']} stylists x "
        f"{s['days']} days = {s['slots']:,} slots, {s['bookings_sprinkled']} bookings"
    )
    for name, summary in details["profile"].items():
        print_profile(name, summary)


def main(argv: Sequence[str] | None = None) -> int:
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
    ap.add_argument("--dates-connections", type=int, nargs="+", default=[4, 16])
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
        dates_connections=tuple(args.dates_connections),
        engine=args.engine,
        max_other=args.max_other,
        booking_rate=args.booking_rate,
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
