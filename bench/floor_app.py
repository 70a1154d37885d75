"""The floor of the design's write path: HTTP -> Dramatiq -> one PostgreSQL transaction -> result.

What a hold must pass through whatever the code does, and nothing else: gunicorn and Falcon
parse a JSON POST, stock Dramatiq (``RedisBroker``, its default middleware) carries it to a
worker thread, the worker runs ``bench.baseline_pgbench``'s booking transaction on a
connection of its own (prepared statements, as pgbench), pushes the new booking's id to a
Redis list, and the API thread, blocked on that list (BLPOP), answers 201. No auth, no
validation beyond ``int()``, no catalogue, no fit check, no events, no version bumps.

``FLOOR_RECORD=1`` adds the least the design's guarantees cost: the API records the request
(``INSERT ... ON CONFLICT DO NOTHING`` on an autocommit connection, its own commit) before
it enqueues, so a Redis outage loses nothing; the worker locks that record in its
transaction and stores the outcome there, so a redelivered message changes nothing.
``FLOOR_BROKER=lane`` uses the product's broker (``salon.bootstrap.build_broker``) instead
of the stock one.

Served by ``gunicorn bench.floor_app:app``; the worker is ``dramatiq bench.floor_app``.
Environment: ``FLOOR_DSN`` (libpq), ``BENCH_REDIS_URL``, ``BENCH_DRAMATIQ_NAMESPACE``,
``FLOOR_RECORD``, ``FLOOR_BROKER``. ``bench.floor_holds`` runs it against pgbench.
"""

from __future__ import annotations

import json
import os
import threading
import uuid

import dramatiq
import falcon
import psycopg
import redis

from bench.bare_app import Health
from bench.noop_actors import make_broker

QUEUE = "bench_floor"
WAIT_SECONDS = 5
RECORD = os.environ.get("FLOOR_RECORD", "0") == "1"
DSN = os.environ.get("FLOOR_DSN", "postgresql://postgres@127.0.0.1:5432/salon_bench_floor")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = os.environ.get("BENCH_DRAMATIQ_NAMESPACE", "salon-bench-floor")

# Extra tables next to baseline_pgbench's bench_slot and bench_booking (created by the driver).
SCHEMA = """
DROP TABLE IF EXISTS floor_record;
CREATE TABLE floor_record (
    key text PRIMARY KEY,
    request jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    outcome jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
"""

RECORD_SQL = (
    "INSERT INTO floor_record (key, request) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
    " RETURNING status"
)
LOCK_RECORD = "SELECT status, outcome FROM floor_record WHERE key = %s FOR UPDATE"
HOLD_SLOT = (
    "UPDATE bench_slot SET status = 'held', held_until = now() + interval '10 minutes'"
    " WHERE id = %s RETURNING stylist_id"
)
# As pgbench's: a unique range from a sequence, so the exclusion constraint is probed on
# every insert and never fires.
INSERT_BOOKING = (
    "INSERT INTO bench_booking (slot_id, stylist_id, client_id, start_at, end_at)"
    " VALUES (%s, %s, %s,"
    " timestamptz '2031-01-01' + nextval('bench_booking_seq') * interval '30 minutes',"
    " timestamptz '2031-01-01' + currval('bench_booking_seq') * interval '30 minutes'"
    " + interval '30 minutes') RETURNING id"
)
STORE_OUTCOME = (
    "UPDATE floor_record SET status = 'done', outcome = %s, completed_at = now() WHERE key = %s"
)


def _broker() -> dramatiq.Broker:
    if os.environ.get("FLOOR_BROKER") != "lane":
        return make_broker(REDIS_URL, NAMESPACE)
    # The product's broker: Dramatiq's dispatch script on plain per-thread connections
    # (salon.script_lane), the heartbeat and the middleware `salon worker` has.
    from salon.bootstrap import build_broker
    from salon.settings import Settings

    return build_broker(Settings.from_env({"REDIS_URL": REDIS_URL, "REDIS_NAMESPACE": NAMESPACE}))


broker = _broker()
dramatiq.set_broker(broker)
_local = threading.local()
# Thread-safe, and it connects on first use, not here.
_redis = redis.Redis.from_url(REDIS_URL)


def _pg(*, autocommit: bool) -> psycopg.Connection[tuple[object, ...]]:
    """One connection per thread (as a pool sized to the threads would give)."""
    conn: psycopg.Connection[tuple[object, ...]] | None = getattr(_local, "pg", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(DSN, autocommit=autocommit, application_name="salon")
        _local.pg = conn
    return conn


def done_key(key: str) -> str:
    return f"{NAMESPACE}:done:{key}"


@dramatiq.actor(actor_name="floor_hold", queue_name=QUEUE, max_retries=0)
def floor_hold(key: str, slot: int, client: int) -> None:
    conn = _pg(autocommit=False)
    with conn.transaction():
        if RECORD:
            row = conn.execute(LOCK_RECORD, (key,)).fetchone()
            if row is not None and row[0] == "done":  # a redelivery: keep the first result
                outcome = row[1] if isinstance(row[1], dict) else {}  # jsonb arrives as a dict
                booking = int(outcome.get("booking_id", 0))
                _signal(key, booking)
                return
        stylist = conn.execute(HOLD_SLOT, (slot,)).fetchone()
        if stylist is None:
            raise ValueError(f"no slot {slot}")
        got = conn.execute(INSERT_BOOKING, (slot, stylist[0], client)).fetchone()
        assert got is not None
        booking = int(str(got[0]))
        if RECORD:
            conn.execute(STORE_OUTCOME, (json.dumps({"booking_id": booking}), key))
    _signal(key, booking)


def _signal(key: str, booking: int) -> None:
    pipe = _redis.pipeline(transaction=False)
    pipe.rpush(done_key(key), booking)
    pipe.expire(done_key(key), 60)
    pipe.execute()


class Holds:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = req.get_media()
        key = req.get_header("Idempotency-Key") or uuid.uuid4().hex
        try:
            slot, client = int(doc["slot"]), int(doc["client"])
        except (KeyError, TypeError, ValueError) as exc:
            raise falcon.HTTPUnprocessableEntity(description=str(exc)) from exc
        if RECORD:
            _pg(autocommit=True).execute(RECORD_SQL, (key, json.dumps(doc)))
        floor_hold.send(key, slot, client)
        got = _redis.blpop([done_key(key)], timeout=WAIT_SECONDS)
        if got is None:
            resp.status = falcon.HTTP_202
            resp.media = {"status": "pending"}
            return
        resp.status = falcon.HTTP_201
        resp.media = {"booking_id": int(got[1]), "slot": slot, "status": "held"}


app = falcon.App()
app.add_route("/holds", Holds())
app.add_route("/healthz", Health())
