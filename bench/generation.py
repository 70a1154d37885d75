"""Slot generation through the real job vs a raw COPY of the same rows (issue 3's target).

Setup: one location (Europe/London), N stylists (default 100), each with a WEEKLY rule
Mon-Sun 09:00-19:15 at 15 minutes: 41 slots a day, about 1.5 million slots a year for 100.

1. Baseline: the same rows, expanded up front, written with one psycopg COPY into the same
   table (same indexes) in one transaction: rows/s.
2. The job: `salon worker` processes (2 x 8 threads) run it exactly as in production, from
   the planning message to the last chunk; time from the job's creation to its finish (as
   recorded in PostgreSQL): slots/s, and the ratio to (1). Target ≥ 0.5.
3. The re-run: the same job again (nothing to create); its time as a share of (2). Target
   < 10 %.

    .venv/bin/python -m bench.generation [--stylists 100] [--days 365] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.harness import started
from bench.report import Figure, emit, ratio
from models.ids import new_id
from models.rules import Rule, expand
from salon.bootstrap import bootstrap
from salon.generation import create_job, job_view
from salon.migrate import upgrade
from salon.settings import Settings

ZONE = "Europe/London"
START = dt.date(2027, 1, 4)


def fresh_database(admin_url: str, name: str) -> str:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def seed(url: str, stylists: int) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    biz, loc = uuid.uuid4(), uuid.uuid4()
    ids = [new_id() for _ in range(stylists)]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO public.biz_entity (id, name) VALUES (:b, 'bench')"), {"b": biz}
        )
        conn.execute(
            text(
                "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                " VALUES (:l, :b, 'Bench', :tz)"
            ),
            {"l": loc, "b": biz, "tz": ZONE},
        )
        for sid in ids:
            conn.execute(
                text(
                    "INSERT INTO scheduler.stylists (id, biz_entity_id, name) VALUES (:s, :b, 'S')"
                ),
                {"s": sid, "b": biz},
            )
            conn.execute(
                text("INSERT INTO scheduler.stylist_locations VALUES (:s, :l)"),
                {"s": sid, "l": loc},
            )
            conn.execute(
                text(
                    "INSERT INTO scheduler.availability_rules (id, location_id, stylist_id,"
                    " rule_kind, days_of_week, start_time, end_time, slot_granularity_minutes)"
                    " VALUES (:id, :l, :s, 'WEEKLY', '{1,2,3,4,5,6,7}', '09:00', '19:15', 15)"
                ),
                {"id": new_id(), "l": loc, "s": sid},
            )
    engine.dispose()
    return biz, loc, ids


def raw_copy(url: str, loc: uuid.UUID, stylists: list[uuid.UUID], days: int) -> Figure:
    rule = Rule(uuid.uuid4(), "WEEKLY", dt.time(9), dt.time(19, 15), (1, 2, 3, 4, 5, 6, 7))
    slots = expand([rule], START, START + dt.timedelta(days=days - 1), ZoneInfo(ZONE))
    rows = [
        (new_id(), loc, s, x.local_date, x.start_at, x.end_at, "open")
        for s in stylists
        for x in slots
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        started_at = time.perf_counter()
        with (
            raw.cursor() as cur,
            cur.copy(
                "COPY scheduler.slot_instances (id, location_id, stylist_id, local_date, start_at,"
                " end_at, status) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        elapsed = time.perf_counter() - started_at
        conn.execute(text("ROLLBACK"))  # leave the table empty for the job
    engine.dispose()
    return Figure(
        "raw COPY", len(rows) / elapsed, "rows/s", extra={"rows": len(rows), "seconds": elapsed}
    )


def run_job(
    settings: Settings, biz: uuid.UUID, days: int, label: str
) -> tuple[Figure, dict[str, Any]]:
    container = bootstrap(settings)
    try:
        with container.sessions.begin() as s:
            job = create_job(
                s,
                job_id=new_id(),
                biz=biz,
                requested_by="bench",
                date_from=START,
                date_to=START + dt.timedelta(days=days - 1),
                location_id=None,
                stylist_ids=None,
                dry_run=False,
            )
        container.dispatch.plan_generation(job.id)
        while True:
            time.sleep(0.2)
            with container.sessions() as s:
                from models.tables import GenerationJob

                row = s.get(GenerationJob, job.id)
                assert row is not None
                if row.status in ("succeeded", "failed") and row.finished_at is not None:
                    view = job_view(row)
                    seconds = (row.finished_at - row.created_at).total_seconds()
                    break
    finally:
        container.close()
    done = max(view["created"], view["skipped"])
    return Figure(
        label,
        done / seconds,
        "rows/s",
        extra={
            "seconds": seconds,
            **{k: view[k] for k in ("created", "skipped", "removed", "conflicts", "status")},
        },
    ), view


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stylists", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    url = fresh_database(args.admin_url, "salon_bench_generation")
    biz, loc, stylists = seed(url, args.stylists)
    baseline = raw_copy(url, loc, stylists, args.days)
    namespace = f"bench-gen-{uuid.uuid4().hex[:6]}"
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": args.redis_url,
        "REDIS_NAMESPACE": namespace,
        "LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env(env)
    with started("worker", [sys.executable, "-m", "salon", "worker"], env=env):
        first, _ = run_job(settings, biz, args.days, "generation job (first run)")
        again, _ = run_job(settings, biz, args.days, "generation job (re-run)")
    figures = [baseline, first, again]
    share = again.extra["seconds"] / first.extra["seconds"]
    emit(
        figures,
        as_json=args.json,
        title=f"Slot generation: {args.stylists} stylists x {args.days} days",
        save_as="generation",
        job_vs_copy=round(ratio(first, baseline), 3),
        rerun_share=round(share, 4),
    )
    if not args.json:
        print(f"job / raw COPY = {ratio(first, baseline):.2f}x (target >= 0.5)")
        print(f"re-run time / first run time = {share:.1%} (target < 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
