"""Shared fixtures: real PostgreSQL and Redis, a fresh database and Redis namespace per run.

With TEST_DATABASE_URL / TEST_REDIS_URL set (CI sets them to the machine's servers) the suite
uses those servers; otherwise it starts the embedded ones, so `make test` works on a machine
with nothing but Python.
"""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from salon.settings import Settings

TEST_PII_KEYS = (
    "t1:" + base64.b64encode(b"1" * 32).decode() + ",t0:" + base64.b64encode(b"0" * 32).decode()
)
TEST_PII_HASH_KEY = base64.b64encode(b"h" * 32).decode()


class Servers:
    def __init__(self, database_url: str, redis_url: str, embedded: object | None) -> None:
        self.admin_database_url = database_url
        self.redis_url = redis_url
        self.embedded = embedded


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    db, rd = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    if db and rd:
        yield Servers(db, rd, None)
        return
    from salon.infra.embedded.services import EmbeddedServices

    embedded = EmbeddedServices(Path(tmp_path_factory.mktemp("servers")))
    embedded.start()
    try:
        yield Servers(db or embedded.database_url, rd or embedded.redis_url, embedded)
    finally:
        embedded.stop()


def create_database(admin_url: str, name: str) -> str:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


# One database migrated once per test process, copied by `CREATE DATABASE ... TEMPLATE` for
# every database a test needs: a copy takes ~0.3 s where Alembic's upgrade takes ~1.2 s.
# Nothing connects to it after its migration (PostgreSQL refuses to copy a database in use).
# Per process, not per machine: each xdist worker has its own, so none waits for another.
_templates: dict[str, str] = {}


def _template(admin_url: str) -> str:
    from salon.migrate import upgrade

    if admin_url not in _templates:
        name = f"salon_template_{uuid.uuid4().hex[:10]}"
        upgrade(create_database(admin_url, name))
        _templates[admin_url] = name
    return _templates[admin_url]


def pytest_sessionfinish(session: pytest.Session) -> None:
    for admin_url, name in _templates.items():
        drop_database(admin_url, name)
    _templates.clear()


@contextlib.contextmanager
def migrated_database(admin_url: str, name: str) -> Iterator[str]:
    """A new database at the migrations' head, dropped when the block ends: its URL.
    (tests/integration/test_schema.py runs the migrations themselves on an empty database.)"""
    template = _template(admin_url)
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine.dispose()
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin_url, name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs `-n 3 --dist loadgroup`) the end-to-end tests run in
    two groups, each on one worker, one test after another: those on the shared started
    processes (`system`, started once per worker that runs them) and those that start
    processes of their own. Unit and integration tests spread over every worker; each worker
    has its own databases and Redis namespace (`run_id`), so no test sees another's rows or
    keys."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        # schemathesis gives each operation's test (`name` ends "[GET /v1/slots]") its
        # function's node id; xdist schedules by node id, and would run only the first of them.
        # (pytest 9 keeps the id as a parsed `NodeId` in `_id`.)
        if item.name.endswith("]") and not item.nodeid.endswith("]"):
            item._id = type(item.id).parse(item.nodeid + item.name[item.name.index("[") :])
        if e2e in item.path.parents:
            shared = "system" in getattr(item, "fixturenames", ())
            item.add_marker(pytest.mark.xdist_group("e2e-system" if shared else "e2e-own"))
        elif item.path.name == "test_embedded.py":
            # Starts embedded PostgreSQL servers, as `salon dev` (tests/e2e/test_dev.py) does:
            # two initdb at once failed on this machine.
            item.add_marker(pytest.mark.xdist_group("e2e-own"))


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def database_url(servers: Servers, run_id: str) -> Iterator[str]:
    """A migrated database of this test run's own, dropped at the end."""
    with migrated_database(servers.admin_database_url, f"salon_test_{run_id}") as url:
        yield url


@pytest.fixture(scope="session")
def settings(servers: Servers, database_url: str, run_id: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=servers.redis_url,
        redis_namespace=f"test-{run_id}",
        api_wait_seconds=5.0,
        # Not gunicorn: the in-process app runs as many requests at once as a test starts
        # threads (50 at most), and each of them may wait for its write's outcome.
        api_threads=64,
        api_waiting_writes=63,
        redeliver_after_seconds=3,
        broker_heartbeat_ms=3000,
        rate_limit_per_minute=0,
        log_json=False,
        # Keys of the run's own (not the development ones): `t1` seals, `t0` still opens;
        # the rotation test turns every row to `t0` and back.
        pii_keys=TEST_PII_KEYS,
        pii_hash_key=TEST_PII_HASH_KEY,
    )


@pytest.fixture(scope="session")
def container(settings: Settings):  # type: ignore[no-untyped-def]
    from salon.bootstrap import bootstrap

    c = bootstrap(settings)
    yield c
    c.close()


@pytest.fixture(scope="session")
def worker(container):  # type: ignore[no-untyped-def]
    """A real Dramatiq worker consuming the run's queues in this process."""
    import dramatiq

    w = dramatiq.Worker(container.broker, worker_threads=4, worker_timeout=100)
    w.start()
    yield w
    w.stop()


@pytest.fixture
def tenant(container) -> uuid.UUID:  # type: ignore[no-untyped-def]
    """A brand of the test's own: tests share the database but never each other's data."""
    return new_tenant(container)


def new_tenant(container, biz: uuid.UUID | None = None) -> uuid.UUID:  # type: ignore[no-untyped-def]
    """A new brand in the run's database (for fixtures of a wider scope than `tenant`)."""
    biz = biz or uuid.uuid4()
    with container.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO public.biz_entity (id, name) VALUES (:id, 'test brand')"),
            {"id": biz},
        )
    return biz


def token_for(
    settings: Settings, role: str, biz: uuid.UUID | None, sub: uuid.UUID | None = None
) -> str:
    from salon.auth import issue_token

    return issue_token(settings, role=role, biz=biz, sub=sub or uuid.uuid4())
