"""Baselines that are not HTTP: pgbench's booking transaction and a Dramatiq no-op drain.
pgbench runs a booking-like transaction (prepared protocol) on tables with the same kind of
GiST exclusion constraint as the real schema: the ceiling for "hold a slot" on this
PostgreSQL. The same tables serve the floor app (``bench.apps``), which adds its record.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from bench.harness import CpuUse, Groups, cpu_meter, dramatiq

SLOTS, STYLISTS = 200_000, 200
QUEUE = "bench"  # bench.apps' queue
SCHEMA = f"""
CREATE EXTENSION IF NOT EXISTS btree_gist;
DROP TABLE IF EXISTS bench_booking, bench_slot, floor_record;
DROP SEQUENCE IF EXISTS bench_booking_seq;
CREATE TABLE bench_slot (
    id bigint PRIMARY KEY, stylist_id integer NOT NULL, start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL, status text NOT NULL DEFAULT 'open', held_until timestamptz
);
INSERT INTO bench_slot (id, stylist_id, start_at, end_at)
SELECT g, 1 + (g - 1) % {STYLISTS},
       timestamptz '2030-01-01' + ((g - 1) / {STYLISTS}) * interval '30 minutes',
       timestamptz '2030-01-01' + ((g - 1) / {STYLISTS} + 1) * interval '30 minutes'
FROM generate_series(1, {SLOTS}) AS g;
CREATE SEQUENCE bench_booking_seq;
CREATE TABLE bench_booking (
    id bigserial PRIMARY KEY, slot_id bigint NOT NULL, stylist_id integer NOT NULL,
    client_id integer NOT NULL, start_at timestamptz NOT NULL, end_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), confirmed_at timestamptz,
    EXCLUDE USING gist (stylist_id WITH =, tstzrange(start_at, end_at) WITH &&)
);
CREATE TABLE floor_record (
    key text PRIMARY KEY, request jsonb NOT NULL, status text NOT NULL DEFAULT 'pending',
    outcome jsonb, created_at timestamptz NOT NULL DEFAULT now()
);
"""
# The slot is held unconditionally, so the work per transaction does not drift in a run.
TXN = r"""
\set slot random(1, :slots)
\set stylist 1 + (:slot - 1) % :stylists
\set client random(1, 1000000)
BEGIN;
UPDATE bench_slot SET status = 'held', held_until = now() + interval '10 minutes'
 WHERE id = :slot;
INSERT INTO bench_booking (slot_id, stylist_id, client_id, start_at, end_at)
VALUES (:slot, :stylist, :client,
        timestamptz '2031-01-01' + nextval('bench_booking_seq') * interval '30 minutes',
        timestamptz '2031-01-01' + currval('bench_booking_seq') * interval '30 minutes'
          + interval '30 minutes');
END;
"""


def create_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.encode())
        # Statistics and a checkpoint now, not inside a timed run.
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def empty_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE bench_booking, floor_record")
        conn.execute("VACUUM ANALYZE bench_booking, floor_record")


def pgbench(dsn: str, dbname: str, clients: int, seconds: float) -> tuple[float, float, CpuUse]:
    """TPS (without connection time), p99 from the per-transaction log, CPU of pgbench and
    our backends against the rest of the machine."""
    exe = shutil.which("pgbench")
    if exe is None:
        raise RuntimeError("pgbench not found (Debian: apt-get install -y postgresql-client)")
    empty_tables(dsn)
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
        script = Path(tmp) / "booking.sql"
        script.write_text(TXN)
        argv = [exe, "--no-vacuum", "--protocol=prepared", f"--client={clients}"]
        argv += [f"--jobs={min(2, clients)}", f"--time={math.ceil(seconds)}", f"--file={script}"]
        argv += [f"--define=slots={SLOTS}", f"--define=stylists={STYLISTS}"]
        argv += ["--log", f"--log-prefix={tmp}/tx", dsn]
        with cpu_meter(Groups({}, dbname=dbname), sample=True) as cpu:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed:\n{proc.stderr}{proc.stdout}")
        us = sorted(
            int(f[2])
            for log in Path(tmp).glob("tx*")
            for f in (line.split() for line in log.read_text().splitlines())
            if len(f) > 2 and f[2].isdigit()
        )
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", proc.stdout)
    if tps is None or not us:
        raise RuntimeError(f"could not read pgbench's output:\n{proc.stdout}")
    p99 = us[min(len(us) - 1, math.ceil(0.99 * len(us)) - 1)] / 1000
    return float(tps.group(1)), p99, cpu


def dramatiq_drain(env: Mapping[str, str], messages: int) -> dict[str, float]:
    """Enqueue ``messages`` no-ops, start the worker, time 10 % -> 90 % drained (start-up and
    the tail do not count); an id leaves the queue's hash when it is acked."""
    namespace = env["BENCH_NAMESPACE"]
    client = redis.Redis.from_url(env["BENCH_REDIS_URL"])
    broker = RedisBroker(url=env["BENCH_REDIS_URL"], namespace=namespace)  # type: ignore[no-untyped-call]
    pending = f"{namespace}:{QUEUE}.msgs"
    t0 = time.perf_counter()
    for _ in range(messages):
        broker.enqueue(Message(queue_name=QUEUE, actor_name="noop", args=(), kwargs={}, options={}))
    enqueue_rate = messages / (time.perf_counter() - t0)
    seen: list[tuple[float, int]] = []
    with dramatiq("bench.apps", env) as worker, cpu_meter(Groups({"worker": worker})) as cpu:
        deadline = time.monotonic() + 120
        while (left := int(client.hlen(pending))) and time.monotonic() < deadline:
            seen.append((time.monotonic(), left))
            time.sleep(0.005)
    client.close()
    broker.close()
    if left:
        print(f"# dramatiq: {left} messages left after 120 s", file=sys.stderr)
    # Workers take messages before they say they are ready: count what left in between.
    t10, n10 = next((t, n) for t, n in seen if n <= 0.9 * messages)
    t90, n90 = next(((t, n) for t, n in seen if n <= 0.1 * messages), seen[-1])
    return {
        "drain_rate": (n10 - n90) / (t90 - t10) if t90 > t10 else float("nan"),
        "enqueue_rate": enqueue_rate,
        "other_cpu_pct": cpu.other,
    }
