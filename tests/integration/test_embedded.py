"""salon.infra.embedded: the embedded PostgreSQL + Redis used by `salon dev` and the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from salon.infra.embedded.services import EmbeddedServices

pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    # Whatever a test left running on this data dir goes down with it.
    EmbeddedServices(path).stop()


def scalar(url: str, query: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar()
    finally:
        engine.dispose()


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def test_start_restart_each_server_and_keep_data(data_dir: Path) -> None:
    services = EmbeddedServices(data_dir)
    services.start()
    services.start()  # idempotent
    db_url, redis_url = services.database_url, services.redis_url
    assert db_url.startswith("postgresql+psycopg://postgres@/salon?")
    assert redis_url.startswith("redis://127.0.0.1:")

    # PostgreSQL through SQLAlchemy + psycopg, btree_gist usable for the booking constraint.
    assert scalar(db_url, "SELECT current_database()") == "salon"
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        conn.execute(
            sa.text(
                "CREATE TABLE booking (stylist_id int, during tstzrange,"
                " EXCLUDE USING gist (stylist_id WITH =, during WITH &&))"
            )
        )
        conn.execute(
            sa.text("INSERT INTO booking VALUES (1, '[2030-01-01 10:00Z, 2030-01-01 11:00Z)')")
        )
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO booking VALUES (1, '[2030-01-01 10:30Z, 2030-01-01 12:00Z)')")
        )
    engine.dispose()

    # Redis.
    client = redis_client(redis_url)
    assert client.ping()
    client.set("salon:test", "v")
    assert client.get("salon:test") == b"v"

    # Redis alone: same URL again; persistence is off, so the key is gone.
    services.stop_redis()
    with pytest.raises(redis.ConnectionError):
        redis_client(redis_url).ping()
    services.start_redis()
    assert services.redis_url == redis_url
    client = redis_client(redis_url)
    assert client.ping()
    assert client.get("salon:test") is None
    client.set("salon:test", "w")

    # PostgreSQL alone: same URL again, data kept.
    services.stop_postgres()
    with pytest.raises(sa.exc.OperationalError):
        scalar(db_url, "SELECT 1")
    services.start_postgres()
    assert services.database_url == db_url
    assert scalar(db_url, "SELECT count(*) FROM booking") == 1
    assert redis_client(redis_url).get("salon:test") == b"w"  # untouched by the PG restart

    # Everything down, then up again from the same data dir in a new object.
    services.stop()
    services.stop()  # idempotent
    with pytest.raises(redis.ConnectionError):
        redis_client(redis_url).ping()
    with EmbeddedServices(data_dir) as again:
        assert again.database_url == db_url
        assert again.redis_url == redis_url  # the port chosen first is remembered
        assert scalar(again.database_url, "SELECT count(*) FROM booking") == 1
        assert (
            scalar(
                again.database_url, "SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'"
            )
            == 1
        )
        assert redis_client(again.redis_url).ping()


def test_second_start_reuses_servers_still_running(data_dir: Path) -> None:
    # `first` stands for a crashed earlier run (or another process) whose servers live on.
    first = EmbeddedServices(data_dir)
    first.start()
    second = EmbeddedServices(data_dir)
    second.start()
    assert second.database_url == first.database_url
    assert second.redis_url == first.redis_url
    assert scalar(second.database_url, "SELECT 1") == 1
    assert redis_client(second.redis_url).ping()
    # stop() stops the data dir's servers, whoever started them.
    second.stop()
    with pytest.raises(redis.ConnectionError):
        redis_client(first.redis_url).ping()
    with pytest.raises(sa.exc.OperationalError):
        scalar(first.database_url, "SELECT 1")
    first.stop()


def test_start_after_stale_pid_files(data_dir: Path) -> None:
    services = EmbeddedServices(data_dir, redis_port=None)
    services.start()
    services.stop()
    # Pid files naming a live process that is not the server (a recycled pid after a crash):
    # PostgreSQL itself would refuse to start over such a postmaster.pid.
    alive_not_a_server = os.getpid()
    pid_file = data_dir / "postgres" / "postmaster.pid"
    pid_file.write_text(
        f"{alive_not_a_server}\n{data_dir / 'postgres'}\n1700000000\n5432\n"
        f"{data_dir / 'postgres'}\n\n  0 0\nready   \n"
    )
    (data_dir / "redis" / "valkey.pid").write_text(f"{alive_not_a_server}\n")
    services.start()
    assert scalar(services.database_url, "SELECT 1") == 1
    assert redis_client(services.redis_url).ping()
    services.stop()
