"""The `salon` command: one entry point for every process and tool of the system."""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import click

from salon.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _production_settings() -> Settings:
    """The settings of a long-running process (api, worker, scheduler): it refuses to start with
    a JWT secret anyone may know, or without PII keys, unless SALON_DEV=true."""
    from salon.auth import startup_refusal
    from salon.infra.pii import PiiConfigError, pii_codec

    settings = _settings()
    refusal = startup_refusal(settings)
    if refusal is None:
        try:
            pii_codec(settings)
        except PiiConfigError as exc:
            refusal = str(exc)
    if refusal is not None:
        click.echo(f"salon: refusing to start: {refusal}", err=True)
        sys.exit(2)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Hair Stylist Scheduler."""


@main.command()
@click.option("--port", type=int, default=8000, show_default=True, help="API port.")
@click.option("--data-dir", default=None, help="Embedded servers' data (default: .salon).")
def dev(port: int, data_dir: str | None) -> None:
    """Everything in one terminal: embedded PostgreSQL/Redis (unless DATABASE_URL/REDIS_URL are
    set), migrations, demo data, API + worker + scheduler. Ctrl-C stops it all."""
    from salon.dev import run_dev

    sys.exit(run_dev(port=port, data_dir=data_dir))


@main.command()
@click.option("--bind", default=None, help="host:port (default 127.0.0.1:8000).")
@click.option("--port", type=int, default=None, help="Shortcut for --bind 127.0.0.1:PORT.")
@click.option("--workers", type=int, default=None, help="gunicorn worker processes.")
@click.option("--threads", type=int, default=None, help="Threads per worker.")
def api(bind: str | None, port: int | None, workers: int | None, threads: int | None) -> None:
    """Serve the API with gunicorn (gthread)."""
    settings = _production_settings()
    address = bind or f"127.0.0.1:{port or 8000}"
    threads = threads or settings.api_threads
    # The app reads it too: it lets fewer writes wait at once than it has threads.
    os.environ["API_THREADS"] = str(threads)
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "api.app:get_app()",
        "--bind",
        address,
        # gthread, with the errors gunicorn answers itself as problem+json.
        "--worker-class",
        "api.gunicorn_worker.ProblemThreadWorker",
        "--workers",
        str(workers or settings.api_workers),
        "--threads",
        str(threads),
        # A write may wait up to API_MAX_WAIT_SECONDS for its worker: never kill it before.
        "--timeout",
        str(int(settings.api_max_wait_seconds) + 30),
        "--graceful-timeout",
        str(int(settings.api_max_wait_seconds) + 5),
        "--keep-alive",
        "5",
        "--no-control-socket",
    ]
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each gunicorn worker writes its metrics here; /metrics on any of them sums them all.
        # One directory per address, emptied at start (the client library's advice): the
        # previous run's files would add up with this one's, and a directory per start was
        # never removed (gunicorn replaces this process, so nothing runs after it).
        import re
        import shutil
        import tempfile

        name = f"salon-metrics-{os.getuid()}-{re.sub(r'[^A-Za-z0-9.]+', '_', address)}"
        metrics_dir = os.path.join(tempfile.gettempdir(), name)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.makedirs(metrics_dir)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.execvp(args[0], args)


@main.command()
@click.option("--processes", type=int, default=None)
@click.option("--threads", type=int, default=None)
@click.option(
    "--alive-file",
    default=None,
    help="Touched every second while every worker process runs (for a liveness probe).",
)
def worker(processes: int | None, threads: int | None, alive_file: str | None) -> None:
    """Run Dramatiq workers for every queue; a worker process that dies is restarted."""
    from salon.infra.logs import configure
    from workers.supervisor import Supervisor, dramatiq_command

    settings = _production_settings()
    configure(settings.log_level, json_logs=settings.log_json)
    # Idle consumers poll Redis; 100 ms (not Dramatiq's 1 s) keeps a quiet system responsive.
    os.environ.setdefault("dramatiq_worker_timeout", "100")
    supervisor = Supervisor(
        dramatiq_command(threads or settings.worker_threads),
        processes or settings.worker_processes,
        alive_file=alive_file,
    )
    supervisor.install_signal_handlers()
    sys.exit(supervisor.run())


@main.command()
def scheduler() -> None:
    """Run the periodic-job process (only one of several fires: advisory lock)."""
    from salon.bootstrap import bootstrap
    from salon.infra.logs import configure
    from scheduler_jobs.runner import main as run_scheduler

    settings = _production_settings()
    configure(settings.log_level, json_logs=settings.log_json)
    container = bootstrap(settings)
    try:
        run_scheduler(container)
    finally:
        container.close()


@main.command()
def migrate() -> None:
    """Apply database migrations (idempotent; safe from several processes at once)."""
    from salon.migrate import upgrade

    settings = _settings()
    if not settings.database_url:
        raise click.UsageError("DATABASE_URL is not set")
    upgrade(settings.database_url)
    click.echo("migrated", err=True)


@main.command()
def seed() -> None:
    """Insert the demo brand, locations, stylists and services (idempotent)."""
    from sqlalchemy.orm import Session

    from salon.bootstrap import build_engine
    from salon.seed import seed_demo

    settings = _settings()
    engine = build_engine(settings)
    with Session(engine) as session, session.begin():
        seed_demo(session)
    engine.dispose()
    click.echo("seeded", err=True)


@main.command()
@click.option(
    "--role",
    required=True,
    type=click.Choice(["user", "stylist", "frontdesk", "manager", "admin", "operator"]),
)
@click.option("--biz", "biz", default=None, help="biz_entity id the token is scoped to.")
@click.option("--sub", default=None, help="auth_user id (default: a new random id).")
@click.option("--ttl", type=int, default=3600, show_default=True, help="Seconds.")
def token(role: str, biz: str | None, sub: str | None, ttl: int) -> None:
    """Print a signed JWT (and nothing else) for local use."""
    from salon.auth import issue_token

    click.echo(
        issue_token(
            _settings(),
            role=role,
            biz=uuid.UUID(biz) if biz else None,
            sub=uuid.UUID(sub) if sub else uuid.uuid4(),
            ttl_seconds=ttl,
        )
    )


@main.command()
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--location", default=None, help="Only this location id.")
@click.option(
    "--biz",
    default="00000000-0000-0000-0000-000000000001",
    show_default=True,
    help="The brand (biz_entity id) whose stylists to generate.",
)
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
def generate(date_from: Any, date_to: Any, location: str | None, biz: str, dry_run: bool) -> None:
    """Enqueue a slot generation job and show its progress until it finishes."""
    import time

    from models.ids import new_id
    from salon.bootstrap import bootstrap
    from salon.generation import jobs as generation

    container = bootstrap(_settings())
    try:
        with container.sessions.begin() as session:
            job = generation.create_job(
                session,
                job_id=new_id(),
                biz=uuid.UUID(biz),
                requested_by="cli",
                date_from=date_from.date(),
                date_to=date_to.date(),
                location_id=uuid.UUID(location) if location else None,
                stylist_ids=None,
                dry_run=dry_run,
            )
        container.dispatch.plan_generation(job.id)
        click.echo(f"job {job.id}", err=True)
        with click.progressbar(length=1000, label="generating", file=sys.stderr) as bar:
            shown, view = 0, generation.job_view(job)
            while view["status"] not in ("succeeded", "failed"):
                time.sleep(0.5)
                with container.sessions() as session:
                    view = generation.job_view(generation.get_job_by_id(session, job.id))
                now = int(view["progress"] * 1000)
                bar.update(now - shown)
                shown = now
        click.echo(
            f"{view['status']}: created {view['created']}, removed {view['removed']}, "
            f"skipped {view['skipped']}, conflicts {view['conflicts']}"
        )
        if view["status"] != "succeeded":
            sys.exit(1)
    finally:
        container.close()


@main.group()
def pii() -> None:
    """Customers' PII at rest: keys and their rotation (docs/security.md)."""


@pii.command("new-key")
def pii_new_key() -> None:
    """Print a fresh random key (base64 of 32 bytes) for PII_KEYS or PII_HASH_KEY."""
    from salon.infra.pii import new_key

    click.echo(new_key())


@pii.command("rotate")
@click.option("--batch", type=int, default=500, show_default=True, help="Rows per transaction.")
@click.option(
    "--rehash", is_flag=True, help="Recompute every search hash too (after a PII_HASH_KEY change)."
)
def pii_rotate(batch: int, rehash: bool) -> None:
    """Re-encrypt every stored PII value under the first key of PII_KEYS (and seal rows from
    before encryption). Idempotent: a second run changes nothing."""
    from sqlalchemy.orm import sessionmaker

    from salon.bookings.rotation import rotate
    from salon.bootstrap import build_engine
    from salon.infra.pii import pii_codec

    settings = _settings()
    if not settings.database_url:
        raise click.UsageError("DATABASE_URL is not set")
    codec = pii_codec(settings)
    # Workers' statement timeout, not the API's: a batch may take longer than 1.5 s.
    engine = build_engine(settings, statement_timeout_ms=60_000)
    try:
        done = rotate(sessionmaker(engine), codec, batch=batch, rehash=rehash)
    finally:
        engine.dispose()
    click.echo(
        f"under key {codec.kid}: {done.bookings} bookings, {done.write_requests} write requests"
        f" re-encrypted; {done.events} events masked"
    )
