"""The benchmarks' salon: servers started as deployed, and data written as generation would.

Shared by `bench.availability` and `bench.bookings`."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import psycopg
import redis
from sqlalchemy.engine import make_url

from bench.harness import (
    REPO_ROOT,
    GunicornSettings,
    Service,
    free_port,
    gunicorn,
    started,
    wait_for_url,
)
from models.ids import new_id_hexes
from models.rules import Rule, expand
from salon.settings import Settings

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ZONES = ("Europe/London", "Europe/Paris", "America/New_York", "Europe/Berlin")
OPEN, CLOSE = dt.time(9), dt.time(19)
# The largest mix handed to wrk (it formats every entry at start; 200k take ~2 s).
WRK_MAX_MIX = 200_000
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
