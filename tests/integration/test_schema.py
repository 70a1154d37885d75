"""The schema: migrations idempotent and safe concurrently; PostgreSQL itself refuses double
booking."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from salon.migrate import upgrade
from tests.conftest import create_database, drop_database


def test_migrate_is_idempotent_and_safe_from_several_processes_at_once(servers):
    name = f"salon_migrate_{uuid.uuid4().hex[:8]}"
    url = create_database(servers.admin_database_url, name)
    env = {**os.environ, "DATABASE_URL": url}
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "salon", "migrate"], env=env, stderr=subprocess.PIPE
            )
            for _ in range(4)
        ]
        results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]  # type: ignore[union-attr]
        assert [code for code, _ in results] == [0, 0, 0, 0], results
        upgrade(url)  # and once more, after the fact
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(
                text("SELECT version_num FROM scheduler.alembic_version")
            ).all() == [("0010",)]
            comment = conn.execute(
                text("SELECT obj_description('scheduler.idempotency_keys'::regclass)")
            ).scalar_one()
            assert comment.startswith("Write requests:")
            tables = set(
                conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'scheduler'"))
            )
        engine.dispose()
        assert {
            "locations",
            "stylists",
            "stylist_locations",
            "services",
            "service_stylists",
            "availability_rules",
            "slot_instances",
            "bookings",
            "idempotency_keys",
            "outbox_events",
            "scheduler_job_runs",
        } <= tables
    finally:
        drop_database(servers.admin_database_url, name)


@pytest.fixture
def stylist(container, tenant):  # type: ignore[no-untyped-def]
    ids = {k: uuid.uuid4() for k in ("loc", "loc2", "stylist", "service")}
    with container.engine.begin() as conn:
        for loc in ("loc", "loc2"):
            conn.execute(
                text(
                    "INSERT INTO scheduler.locations (id, biz_entity_id, name, timezone)"
                    " VALUES (:id, :biz, 'L', 'Europe/London')"
                ),
                {"id": ids[loc], "biz": tenant},
            )
        conn.execute(
            text(
                "INSERT INTO scheduler.stylists (id, biz_entity_id, name) VALUES (:id, :biz, 'S')"
            ),
            {"id": ids["stylist"], "biz": tenant},
        )
        conn.execute(
            text(
                "INSERT INTO scheduler.services (id, location_id, name, duration_minutes)"
                " VALUES (:id, :loc, 'Cut', 60)"
            ),
            {"id": ids["service"], "loc": ids["loc"]},
        )
    ids["biz"] = tenant
    return ids


def _book(conn, ids, loc: str, start: dt.datetime, minutes: int, status: str = "held") -> None:
    conn.execute(
        text(
            "INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id,"
            " service_id, customer_name, customer_phone, status, start_at, end_at)"
            " VALUES (:id, :biz, :loc, :stylist, :service, 'C', '+100', :status, :s, :e)"
        ),
        {
            "id": uuid.uuid4(),
            "biz": ids["biz"],
            "loc": ids[loc],
            "stylist": ids["stylist"],
            "service": ids["service"],
            "status": status,
            "s": start,
            "e": start + dt.timedelta(minutes=minutes),
        },
    )


T10 = dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.UTC)


def test_overlapping_live_bookings_of_a_stylist_are_impossible_at_any_location(container, stylist):
    with container.engine.begin() as conn:
        _book(conn, stylist, "loc", T10, 60)
    # Same stylist, other location, overlapping by 15 minutes: the database says no.
    with pytest.raises(IntegrityError) as caught, container.engine.begin() as conn:
        _book(conn, stylist, "loc2", T10 + dt.timedelta(minutes=45), 60, "confirmed")
    assert "bookings_no_overlap" in str(caught.value)


def test_back_to_back_and_dead_bookings_do_not_block(container, stylist):
    with container.engine.begin() as conn:
        _book(conn, stylist, "loc", T10, 60)
        _book(conn, stylist, "loc", T10 + dt.timedelta(minutes=60), 30)  # [) ranges touch
        _book(conn, stylist, "loc", T10, 60, "cancelled")
        _book(conn, stylist, "loc", T10, 60, "expired")


def test_the_hold_limit_count_uses_the_customers_own_index_whatever_the_statistics(
    container, stylist
):
    """Statistics taken on an empty table (a new database, or a burst of holds before
    autovacuum analyzes) made the count of a customer's live holds combine the indexes of
    every live hold and filter them all (migration 0008 gave it an index of its own)."""
    from salon.bookings.fit import _CHECK

    count = (
        "EXPLAIN SELECT count(*) FROM scheduler.bookings WHERE user_id = :u"
        " AND status = 'held' AND hold_expires_at - now() > interval '0'"
    )
    assert "user_id = :user AND status = 'held'" in _CHECK.text  # the count it stands for
    with container.engine.connect() as conn, conn.begin():  # rolled back: nothing stays
        # As analyzed while empty (a new database; the bookings bench after each reset).
        conn.execute(
            text(
                "UPDATE pg_class SET reltuples = 0, relpages = 0"
                " WHERE oid = 'scheduler.bookings'::regclass"
            )
        )
        conn.execute(
            text(
                "INSERT INTO scheduler.bookings (id, biz_entity_id, location_id, stylist_id,"
                " service_id, user_id, customer_name, customer_phone, status, start_at, end_at,"
                " hold_expires_at)"
                " SELECT gen_random_uuid(), :biz, :loc, :stylist, :service, gen_random_uuid(),"
                " 'C', '+100', 'held', :t + g * interval '1 hour',"
                " :t + g * interval '1 hour' + interval '30 minutes', now() + interval '10 minutes'"
                " FROM generate_series(1, 3000) g"
            ),
            {
                "biz": stylist["biz"],
                "loc": stylist["loc"],
                "stylist": stylist["stylist"],
                "service": stylist["service"],
                "t": T10,
            },
        )
        plan = conn.execute(text(count), {"u": uuid.uuid4()}).scalars().all()
        conn.rollback()
    assert any("bookings_user_held_idx" in line for line in plan), plan
