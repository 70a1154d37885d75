"""The benchmarks' salon: own migrated database, slots by COPY, tokens, the /v1/slots mix."""

from __future__ import annotations

import bisect
import datetime as dt
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import jwt
import psycopg
import redis
from sqlalchemy.engine import make_url

from bench.harness import ADMIN_URL, REPO_ROOT, Request
from models.ids import new_id_hexes
from models.rules import Rule, expand
from salon.settings import Settings

ZONES = ("Europe/London", "Europe/Paris", "America/New_York", "Europe/Berlin")
OPEN, CLOSE = dt.time(9), dt.time(19)
CUSTOMER = {"name": "Bench Customer", "phone": "+44 20 7946 0000", "email": "b@example.com"}


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fresh_database(name: str, migrate: bool = True) -> str:
    """Drop and create ``name`` next to the admin database; apply the migrations."""
    drop_database(name)
    run_sql(ADMIN_URL, f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    if migrate:
        argv, env = [sys.executable, "-m", "salon", "migrate"], {**os.environ, "DATABASE_URL": url}
        subprocess.run(argv, env=env, cwd=REPO_ROOT, check=True, capture_output=True)
    return url


def run_sql(url: str, statement: str) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(statement.encode())


def drop_database(name: str) -> None:
    run_sql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wipe_namespace(redis_url: str, namespace: str) -> None:
    """The product's keys (``NS:...``) and its broker's (``NS-dramatiq...``)."""
    client = redis.Redis.from_url(redis_url)
    keys = [*client.scan_iter(f"{namespace}:*", 1000), *client.scan_iter(f"{namespace}-*", 1000)]
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])
    client.close()


def user_token(settings: Settings) -> str:
    """A customer's JWT as the identity provider issues them (docs/architecture.md "Auth")."""
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "role": "user", "iat": now, "exp": now + 4 * 3600}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


@dataclass(frozen=True)
class Place:
    id: str
    zone: str
    service_id: str
    stylists: tuple[str, ...]


@dataclass
class Salon:
    biz: str
    places: list[Place]
    dates: list[dt.date]
    # (stylist, local date) -> [(slot id, UTC start)] in order, 15 minutes apart
    days: dict[tuple[str, dt.date], list[tuple[str, dt.datetime]]] = field(default_factory=dict)

    def starts(
        self, stylist: str, day: dt.date, minutes: int = 60
    ) -> list[tuple[str, dt.datetime]]:
        """Slots of the stylist-day where ``minutes`` fit before closing."""
        got = self.days.get((stylist, day), [])
        return got[: max(0, len(got) - minutes // 15 + 1)]


def slot_rows(salon: Salon) -> list[tuple[object, ...]]:
    """Every slot the WEEKLY rule makes, as generation writes them (expanded in Python)."""
    rule = Rule(uuid.uuid4(), "WEEKLY", OPEN, CLOSE, (1, 2, 3, 4, 5, 6, 7))
    rows: list[tuple[object, ...]] = []
    for p in salon.places:
        slots = expand([rule], salon.dates[0], salon.dates[-1], ZoneInfo(p.zone))
        for s in p.stylists:
            for sid, x in zip(new_id_hexes(len(slots)), slots, strict=True):
                rows.append((sid, p.id, s, x.local_date, x.start_at, x.end_at))
    return rows


def copy_slots(cur: psycopg.Cursor[tuple[object, ...]], rows: list[tuple[object, ...]]) -> None:
    with cur.copy(
        "COPY scheduler.slot_instances (id, location_id, stylist_id, local_date, start_at,"
        " end_at) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def seed_salon(
    url: str, locations: int = 4, stylists: int = 10, days: int = 60, slots: bool = True
) -> Salon:
    """A brand, locations in 4 zones, stylists with a WEEKLY rule 09:00-19:00 at 15 minutes,
    a 60-minute service per location and, with ``slots``, their slots written by COPY."""
    first = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    biz = uuid.uuid4()
    salon = Salon(str(biz), [], [first + dt.timedelta(days=i) for i in range(days)])
    with psycopg.connect(libpq(url)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO public.biz_entity (id, name) VALUES (%s, 'bench')", (biz,))
        for n in range(locations):
            loc, service, zone = uuid.uuid4(), uuid.uuid4(), ZONES[n % len(ZONES)]
            place = Place(str(loc), zone, str(service), tuple(new_id_hexes(stylists)))
            salon.places.append(place)
            cur.execute(
                "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                " VALUES (%s, %s, %s, %s)",
                (loc, biz, f"Bench {n}", zone),
            )
            cur.execute(
                "INSERT INTO scheduler.services (id, location_id, name, duration_minutes, price)"
                " VALUES (%s, %s, 'Cut & finish', 60, 45)",
                (service, loc),
            )
            for k, s in enumerate(place.stylists):
                cur.execute(
                    "INSERT INTO scheduler.stylists (id, biz_entity_id, name) VALUES (%s, %s, %s)",
                    (s, biz, f"Stylist {n}.{k}"),
                )
                cur.execute("INSERT INTO scheduler.stylist_locations VALUES (%s, %s)", (s, loc))
                cur.execute(
                    "INSERT INTO scheduler.availability_rules (id, location_id, stylist_id,"
                    " rule_kind, days_of_week, start_time, end_time, slot_granularity_minutes)"
                    " VALUES (%s, %s, %s, 'WEEKLY', '{1,2,3,4,5,6,7}', %s, %s, 15)",
                    (uuid.uuid4(), loc, s, OPEN, CLOSE),
                )
        if slots:
            rows = slot_rows(salon)
            copy_slots(cur, rows)
            for sid, _, stylist, day, start, _ in rows:
                assert isinstance(day, dt.date) and isinstance(start, dt.datetime)
                salon.days.setdefault((str(stylist), day), []).append((str(sid), start))
        conn.commit()
    run_sql(url, "VACUUM ANALYZE")
    return salon


def book_some(url: str, salon: Salon, rng: random.Random, share: float = 0.3) -> int:
    """Bookings on about ``share`` of the stylist-days (80 % confirmed, 20 % live holds for a
    day), so /v1/slots answers around them."""
    rows = []
    for p in salon.places:
        for s in p.stylists:
            for day in salon.dates:
                fits = salon.starts(s, day)
                if fits and rng.random() < share:
                    sid, start = rng.choice(fits)
                    hold = "1 day" if rng.random() < 0.2 else None
                    end = start + dt.timedelta(hours=1)
                    rows.append((s, p.service_id, sid, start, end, hold, hold, hold, p.id))
    with psycopg.connect(libpq(url)) as conn:
        conn.cursor().executemany(
            "INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id,"
            " service_id, slot_id, user_id, customer_name, customer_phone, start_at, end_at,"
            " service_minutes, status, hold_expires_at, confirmed_at)"
            " SELECT gen_random_uuid(), l.biz_entity_id, l.id, %s, %s, %s, gen_random_uuid(),"
            " 'Bench Customer', '+44 20 7946 0000', %s, %s, 60,"
            " CASE WHEN %s::text IS NULL THEN 'confirmed' ELSE 'held' END,"
            " now() + %s::interval, CASE WHEN %s::interval IS NULL THEN now() END"
            " FROM scheduler.locations l WHERE l.id = %s",
            rows,
        )
    run_sql(url, "VACUUM ANALYZE")
    return len(rows)


def slots_mix(salon: Salon, n: int, rng: random.Random, repeat_share: float = 0.8) -> list[Request]:
    """``n`` GET /v1/slots: ``repeat_share`` repeat an ask made 64..4000 positions earlier
    (same session, same parameters: the sticky exposure), the rest are new asks, half from a
    new session, half a known session asking another date or location. Each session is one
    anonymous visitor with an address of its own (X-Forwarded-For, as the ingress sets it),
    so the default rate limit (600/min per caller) applies per visitor, as for real ones."""
    asks: list[tuple[str, int, dt.date]] = []
    positions: list[int] = []
    sessions: list[str] = []
    seen: set[tuple[str, int, dt.date]] = set()
    out = []
    for pos in range(n):
        hi = bisect.bisect_right(positions, pos - 64)
        lo = bisect.bisect_left(positions, pos - 4000)
        if hi > lo and rng.random() < repeat_share:
            ask = asks[rng.randrange(lo, hi)]
        else:
            new = None
            if sessions and rng.random() < 0.5:  # another date or place: never one it asked
                session = sessions[rng.randrange(max(0, len(sessions) - 500), len(sessions))]
                tries = (
                    (session, rng.randrange(len(salon.places)), rng.choice(salon.dates))
                    for _ in range(5)
                )
                new = next((a for a in tries if a not in seen), None)
            if new is None:
                session = uuid.UUID(int=rng.getrandbits(128)).hex
                sessions.append(session)
                new = (session, rng.randrange(len(salon.places)), rng.choice(salon.dates))
            ask = new
            seen.add(ask)
            asks.append(ask)
            positions.append(pos)
        session, place, day = ask
        p = salon.places[place]
        address = ".".join(str(b) for b in (10, *bytes.fromhex(session)[:3]))
        out.append(
            Request(
                "GET",
                f"/v1/slots?date={day.isoformat()}&location_id={p.id}&service_id={p.service_id}",
                (("X-Session-Id", session), ("X-Forwarded-For", address)),
            )
        )
    return out
