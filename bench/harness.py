"""Start real processes for a benchmark, wait until they serve, stop them cleanly.

Context managers, so a failing benchmark never leaves a gunicorn or a dramatiq worker behind:

    with gunicorn("bench.bare_app:app") as srv:
        runs = load_runs(srv, connections=16, duration=10)   # bench.measure

Every process runs in its own session (process group) with the repository root on
PYTHONPATH, output to a log file (a pipe nobody reads would fill and stall the server).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class GunicornSettings:
    """One set of server settings, used unchanged for a baseline and the app it is compared to.

    gthread 2 workers x 4 threads: one process per core, threads to overlap I/O waits.
    """

    workers: int = 2
    threads: int = 4
    worker_class: str = "gthread"
    keepalive: int = 5  # > loadgen's think time (zero), so connections are really reused
    backlog: int = 2048
    timeout: int = 30
    graceful_timeout: int = 5
    log_level: str = "warning"  # and no access log: logging every request would dominate

    def args(self) -> list[str]:
        return [
            "--worker-class",
            self.worker_class,
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--keep-alive",
            str(self.keepalive),
            "--backlog",
            str(self.backlog),
            "--timeout",
            str(self.timeout),
            "--graceful-timeout",
            str(self.graceful_timeout),
            "--log-level",
            self.log_level,
            # gunicorn 27 claims ~/.gunicorn/gunicorn.ctl per instance; several would collide.
            "--no-control-socket",
        ]


@dataclass
class Service:
    """A started process (tree) plus where it listens and logs."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    _cpu_mark: dict[int, float] = field(default_factory=dict, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        return sorted(_descendants(self.proc.pid))

    def cpu_by_pid(self) -> dict[int, float]:
        """user+system CPU seconds of each live process of the tree (master and workers)."""
        out = {}
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            out[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        return out

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_pid().values())

    def mark_cpu(self) -> None:
        self._cpu_mark = self.cpu_by_pid()

    def cpu_since_mark(self) -> float:
        return sum(self.cpu_since_mark_by_pid().values())

    def cpu_since_mark_by_pid(self) -> dict[int, float]:
        """CPU used by each process of the tree since mark_cpu() (new processes: all of it)."""
        return {pid: cpu - self._cpu_mark.get(pid, 0.0) for pid, cpu in self.cpu_by_pid().items()}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _descendants(root: int) -> set[int]:
    # /proc/<pid>/task/*/children is not available on every kernel: scan ppids instead.
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree = {root}
    grew = True
    while grew:
        new = {pid for pid, ppid in parent.items() if ppid in tree and pid not in tree}
        tree |= new
        grew = bool(new)
    return tree


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (`timeout`, a CI's cancel) into SystemExit, so the context managers
    below stop their servers: the default action kills the benchmark alone and leaves them
    serving (and using the CPU the next run measures)."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def wait_for_url(
    url: str, *, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> int:
    """Poll until ``url`` answers with any status below 500; returns the status."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2)
        try:
            conn.request("GET", path)
            status = conn.getresponse().status
            if status < 500:
                return status
            last = RuntimeError(f"HTTP {status}")
        except OSError as exc:
            last = exc
        finally:
            conn.close()
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def wait_for_log(svc: Service, text: str, *, count: int = 1, timeout: float = 30.0) -> None:
    """Wait until ``text`` appears ``count`` times in the service's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if svc.proc.poll() is not None:
            raise RuntimeError(f"{svc.name} exited ({svc.proc.returncode}):\n{svc.log_tail()}")
        if svc.log_path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{svc.name}: {text!r} x{count} not seen in {timeout}s\n{svc.log_tail()}")


def stop(proc: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM (graceful shutdown); after ``grace``, SIGKILL to its process group.

    Only processes we started are signalled: the group is killed while its leader is still
    unreaped (so its id cannot have been reused), and children that outlive a master that
    exited are killed by pid only if they are still in that group.
    """
    family = _descendants(proc.pid) - {proc.pid} if proc.poll() is None else set()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pid in family:
        with suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == proc.pid:
                os.kill(pid, signal.SIGKILL)


@contextmanager
def started(
    name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, grace: float = 10.0
) -> Iterator[Service]:
    """Run ``argv`` in its own session, logging to a temp file; always stopped on exit."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        log_path = Path(tmp) / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=REPO_ROOT,
                env=child_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            yield Service(name, proc, log_path)
        finally:
            stop(proc, grace=grace)


@contextmanager
def gunicorn(
    app: str,
    *,
    settings: GunicornSettings | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/",
    ready_timeout: float = 30.0,
    extra_args: Sequence[str] = (),
) -> Iterator[Service]:
    """Serve WSGI ``app`` ("module:attr") under gunicorn; yields once ``ready_path`` answers."""
    settings = settings or GunicornSettings()
    port = port or free_port(host)
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        *settings.args(),
        *extra_args,
        app,
    ]
    with started("gunicorn", argv, env=env, grace=settings.graceful_timeout + 5) as svc:
        svc.url = f"http://{host}:{port}"
        try:
            wait_for_url(svc.url + ready_path, timeout=ready_timeout, proc=svc.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"gunicorn {app} did not start: {exc}\n{svc.log_tail()}") from exc
        yield svc


@contextmanager
def dramatiq_worker(
    module: str,
    *,
    processes: int = 2,
    threads: int = 8,
    queues: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 30.0,
    wait_ready: bool = True,
    extra_args: Sequence[str] = (),
) -> Iterator[Service]:
    """Run ``dramatiq MODULE -p P -t T``; yields once every worker process says it is ready.

    ``wait_ready=False`` yields at once, for callers that watch the queue from the start.
    """
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        module,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        # Default is 10 minutes: a benchmark must not hang on shutdown.
        "--worker-shutdown-timeout",
        "5000",
        *extra_args,
    ]
    if queues:
        argv += ["--queues", *queues]
    with started("dramatiq", argv, env=env, grace=10.0) as svc:
        if wait_ready:
            wait_for_log(svc, "is ready for action", count=processes, timeout=ready_timeout)
        yield svc
