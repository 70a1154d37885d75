"""What the baselines serve (``gunicorn bench.apps:bare|floor``, ``dramatiq bench.apps``):
``bare`` (a fixed JSON document, no middleware), ``noop`` (an actor doing nothing) and
``floor`` (what a hold must pass through in this design and nothing else: the record, stock
Dramatiq, pgbench's transaction, BLPOP), each described in docs/performance.md "Baselines".
Environment: ``FLOOR_DSN`` (libpq), ``BENCH_REDIS_URL``, ``BENCH_NAMESPACE``."""

from __future__ import annotations

import json
import os
import threading
import uuid

import dramatiq
import falcon
import psycopg
import redis
from dramatiq.brokers.redis import RedisBroker

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = os.environ.get("BENCH_NAMESPACE", "salon-bench")
DSN = os.environ.get("FLOOR_DSN", "postgresql://postgres@127.0.0.1:5432/salon_bench_floor")
QUEUE = "bench"

broker = RedisBroker(url=REDIS_URL, namespace=NAMESPACE)  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)
_redis = redis.Redis.from_url(REDIS_URL, decode_responses=True)  # connects on first use
_local = threading.local()

RECORD = "INSERT INTO floor_record (key, request) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
LOCK = "SELECT status, outcome FROM floor_record WHERE key = %s FOR UPDATE"
HOLD = (
    "UPDATE bench_slot SET status = 'held', held_until = now() + interval '10 minutes'"
    " WHERE id = %s RETURNING stylist_id"
)
# pgbench's INSERT: a unique range from a sequence probes the exclusion constraint, never fires.
INSERT = (
    "INSERT INTO bench_booking (slot_id, stylist_id, client_id, start_at, end_at) VALUES"
    " (%s, %s, %s, timestamptz '2031-01-01' + nextval('bench_booking_seq') * interval '30 min',"
    " timestamptz '2031-01-01' + currval('bench_booking_seq') * interval '30 min'"
    " + interval '30 min') RETURNING id"
)
CONFIRM = "UPDATE bench_booking SET confirmed_at = now() WHERE id = %s RETURNING id"
OUTCOME = "UPDATE floor_record SET status = 'done', outcome = %s WHERE key = %s"


def _pg(autocommit: bool) -> psycopg.Connection[tuple[object, ...]]:
    """One connection per thread, as a pool sized to the threads gives."""
    name = "api" if autocommit else "worker"
    conn: psycopg.Connection[tuple[object, ...]] | None = getattr(_local, name, None)
    if conn is None or conn.closed:
        conn = psycopg.connect(DSN, autocommit=autocommit)
        setattr(_local, name, conn)
    return conn


def _done(key: str) -> str:
    return f"{NAMESPACE}:done:{key}"


def _write(key: str, statement: str, args: tuple[object, ...]) -> None:
    conn = _pg(False)
    with conn.transaction():
        row = conn.execute(LOCK, (key,)).fetchone()
        if row is not None and row[0] == "done":  # a redelivery keeps the first outcome
            booking = str(row[1]["id"]) if isinstance(row[1], dict) else ""
        else:
            if statement == HOLD:
                got = conn.execute(HOLD, (args[0],)).fetchone()
                assert got is not None
                args = (args[0], got[0], args[1])
                statement = INSERT
            found = conn.execute(statement, args).fetchone()
            assert found is not None
            booking = str(found[0])
            conn.execute(OUTCOME, (json.dumps({"id": booking}), key))
    pipe = _redis.pipeline(transaction=False)
    pipe.rpush(_done(key), booking)
    pipe.expire(_done(key), 60)
    pipe.execute()


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def floor_hold(key: str, slot: int, client: int) -> None:
    _write(key, HOLD, (slot, client))


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def floor_confirm(key: str, booking: int) -> None:
    _write(key, CONFIRM, (booking,))


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop() -> None:
    """Nothing: the drain rate is the broker's and the worker's own cost per message."""


def _submit(
    req: falcon.Request,
    resp: falcon.Response,
    send: dramatiq.Actor[..., None],
    args: tuple[object, ...],
    status: str,
) -> None:
    key = req.get_header("Idempotency-Key") or uuid.uuid4().hex
    _pg(True).execute(RECORD, (key, json.dumps([req.path, *args])))
    send.send(key, *args)
    got = _redis.blpop([_done(key)], timeout=5)
    if got is None:
        resp.status, resp.media = falcon.HTTP_202, {"status": "pending"}
    else:
        resp.status, resp.media = status, {"booking_id": str(got[1]), "status": "ok"}


class Holds:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = req.get_media()
        try:
            args = (int(doc["slot"]), int(doc["client"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise falcon.HTTPUnprocessableEntity(description=str(exc)) from exc
        _submit(req, resp, floor_hold, args, falcon.HTTP_201)


class Confirm:
    def on_post(self, req: falcon.Request, resp: falcon.Response, booking: int) -> None:
        _submit(req, resp, floor_confirm, (booking,), falcon.HTTP_200)


class Doc:
    DOC = {
        "id": "0191f2d4-7a3e-7c1e-9b1a-2f6d3c4b5a69",
        "stylist_id": 42,
        "start_at": "2030-01-07T09:00:00+00:00",
        "end_at": "2030-01-07T09:30:00+00:00",
        "status": "open",
    }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.DOC


bare = falcon.App()
bare.add_route("/slot", Doc())
floor = falcon.App()
floor.add_route("/holds", Holds())
floor.add_route("/holds/{booking:int}/confirm", Confirm())
floor.add_route("/healthz", Doc())
