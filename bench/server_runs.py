"""Load runs with CPU accounting per process group, redone when the machine was disturbed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.cpuwatch import CpuWatch, process_cpu
from bench.harness import (
    Service,
)
from bench.loadgen import Engine, LoadResult, Request, run_load
from bench.salon_setup import AUX

# --- runs with CPU accounting --------------------------------------------------------------


class Ours:
    """Which processes a run's CPU belongs to (``CpuWatch``'s predicate), by group.

    The named services' trees (pids taken once, at construction), the load generator
    (``wrk`` or ``bench.loadgen_py`` processes, or our own client module), and optionally the
    PostgreSQL backends of ``dbname`` (plus the WAL writer, checkpointer and background writer
    our commits keep busy) and redis-server. Without the last two, a database-bound endpoint
    would always look "disturbed".
    """

    def __init__(
        self,
        services: Mapping[str, Service],
        *,
        dbname: str | None = None,
        redis_server: bool = False,
        clients: Sequence[str] = ("bench.loadgen_py",),
    ) -> None:
        self.pids: dict[int, str] = {}
        for name, svc in services.items():
            self.pids.update(dict.fromkeys(svc.pids(), name))
        self.dbname = dbname
        self.redis_server = redis_server
        self.clients = tuple(clients)

    def group(self, pid: int, cmd: str) -> str | None:
        if pid in self.pids:
            return self.pids[pid]
        head = cmd.split(" ", 1)[0]
        if head.endswith("/wrk") or head == "wrk" or any(c in cmd for c in self.clients):
            return "client"
        if self.redis_server and head.endswith("redis-server"):
            return "redis"
        ours_pg = self.dbname and (f" {self.dbname} " in cmd or cmd.rstrip().endswith(AUX))
        if cmd.startswith("postgres:") and ours_pg:
            return "postgres"
        return None

    def __call__(self, pid: int, cmd: str) -> bool:
        return self.group(pid, cmd) is not None


def cpu_by_group(
    ours: Ours, before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds per group between two snapshots (processes alive at the second one)."""
    used: dict[str, float] = {}
    for pid, (cmd, cpu) in after.items():
        name = ours.group(pid, cmd)
        if name is not None:
            used[name] = used.get(name, 0.0) + cpu - before.get(pid, (cmd, 0.0))[1]
    return used


@dataclass
class Run:
    """One kept load run: the result and who used the CPU (% of one core)."""

    name: str
    result: LoadResult
    server_cpu_pct: float  # the gunicorn tree under test
    ours_cpu_pct: float  # server + client + its PostgreSQL backends and Redis
    other_cpu_pct: float
    worker_cpu_pct: list[float]
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """As ``bench.measure.LoadRun.balanced``, but only when the server is what limits the
        run: a database-bound endpoint whose workers use a few % each does not care."""
        w = self.worker_cpu_pct
        if len(w) < 2 or sum(w) < 50:
            return True
        return min(w) >= 0.33 * (sum(w) / len(w))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rps": round(self.result.rps, 1),
            "requests": self.result.requests,
            "latency_ms": {k: round(v, 2) for k, v in self.result.latency_ms.items()},
            "errors": self.result.errors,
            "error_count": self.result.error_count,
            "client_cpu_pct": round(self.result.client_cpu_pct, 1),
            "server_cpu_pct": round(self.server_cpu_pct, 1),
            "ours_cpu_pct": round(self.ours_cpu_pct, 1),
            "other_cpu_pct": round(self.other_cpu_pct, 1),
            "worker_cpu_pct": [round(w, 1) for w in self.worker_cpu_pct],
            "attempts": self.attempts,
            **self.extra,
        }


@dataclass
class Redos:
    disturbed: int = 0
    unbalanced: int = 0

    def note(self, name: str, run: Run, max_other: float) -> None:
        if run.other_cpu_pct > max_other:
            self.disturbed += 1
            why = f"other cpu {run.other_cpu_pct:.0f}%"
        else:
            self.unbalanced += 1
            why = "unbalanced workers, cpu% " + "/".join(f"{w:.0f}" for w in run.worker_cpu_pct)
        print(f"# {name}: run redone ({why})", file=sys.stderr, flush=True)


def checked_run(
    name: str,
    svc: Service,
    ours: Ours,
    *,
    requests: Callable[[], Sequence[Request] | None],
    connections: int,
    duration: float,
    engine: Engine,
    client_workers: int | None,
    max_other: float,
    retries: int,
    redos: Redos,
    before: Callable[[], Any] | None = None,
    after: Callable[[Any, LoadResult], dict[str, Any]] | None = None,
    timeout: float = 5.0,
) -> Run:
    """One load run, redone (with a fresh ``requests()``) while disturbed or unbalanced.

    ``before()`` runs just before the load, its value goes to ``after(value, result)``,
    whose dict lands in ``Run.extra`` (e.g. counters read from Redis around the run).
    """
    for attempt in range(1, retries + 2):
        reqs = requests()
        token = before() if before else None
        svc.mark_cpu()
        snap = process_cpu()
        t0 = time.monotonic()
        with CpuWatch(ours) as watch:
            result = run_load(
                svc.url,
                reqs,
                connections=connections,
                duration=duration,
                engine=engine,
                workers=client_workers,
                timeout=timeout,
            )
        wall = time.monotonic() - t0
        by_pid = svc.cpu_since_mark_by_pid()
        per_group = cpu_by_group(ours, snap, process_cpu())
        run = Run(
            name,
            result,
            100 * sum(by_pid.values()) / wall,
            watch.ours_pct,
            watch.other_pct,
            [100 * c / wall for pid, c in sorted(by_pid.items()) if pid != svc.pid],
            attempt,
            after(token, result) if after else {},
        )
        if per_group and result.requests:
            # Client processes have exited by now: their CPU is result.client_cpu_pct.
            run.extra["cpu_ms_per_request"] = {
                k: round(1000 * v / result.requests, 3)
                for k, v in sorted(per_group.items())
                if k != "client"
            }
        if attempt == retries + 1 or (run.other_cpu_pct <= max_other and run.balanced):
            return run
        redos.note(name, run, max_other)
    raise AssertionError("unreachable")
