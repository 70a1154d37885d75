"""HTTP load runs against started servers, with CPU accounting and disturbed-run retries.

On a shared 2-core machine another process (someone's test suite, a database vacuum)
can take half the CPU in the middle of a run. Every run therefore records who used the
CPU: the server's process tree, the load generator, and everything else ("other"). Runs
where "other" exceeded a threshold are discarded and redone, and comparisons interleave
baseline and candidate (A B B A ...) so slow drifts hit both alike:

    with gunicorn("bench.bare_app:app") as bare, gunicorn("api.app:app") as api:
        got = load_interleaved({"bare": Target(bare, "/"), "api": Target(api, "/v1/slots")})
        print(paired_ratio(got.rps("api"), got.rps("bare")))
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.cpuwatch import machine_cpu_seconds
from bench.harness import Service
from bench.loadgen import Engine, LoadResult, Request, run_load


@dataclass
class LoadRun:
    """A load result plus who used the CPU meanwhile, in % of one core (2 cores = 200%).

    ``other_cpu_pct`` is what neither the server tree nor the client used: when it is
    large, the run was disturbed by something else on the machine.
    """

    result: LoadResult
    server_cpu_pct: float
    machine_busy_pct: float
    other_cpu_pct: float
    # CPU % of each server worker process (the master excluded), see ``balanced``.
    worker_cpu_pct: list[float] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """False when one worker process sat (nearly) idle while the others worked.

        gunicorn workers each accept() their own connections, and a closed-loop client opens
        all of its keep-alive connections at once: now and then one worker grabs all 16 and
        the run measures a single process (we saw 3.7k instead of 10k req/s). Such a run
        says nothing about the code, so it is redone like a disturbed one.
        """
        w = self.worker_cpu_pct
        if len(w) < 2:
            return True
        return min(w) >= 0.33 * (sum(w) / len(w))


@dataclass(frozen=True)
class Target:
    svc: Service
    path: str = "/"
    requests: Sequence[Request] | None = None  # a mix; paths relative to the server


def load(
    svc: Service,
    requests: Sequence[Request] | None = None,
    *,
    path: str = "/",
    connections: int = 16,
    duration: float = 10.0,
    warmup: float = 0.0,
    engine: Engine = "auto",
    workers: int | None = None,
) -> LoadRun:
    """Run :func:`bench.loadgen.run_load` against a started server and account for CPU."""
    url = svc.url + path
    if warmup > 0:  # separately, so the CPU accounting covers the measured window only
        run_load(
            url, requests, connections=connections, duration=warmup, engine=engine, workers=workers
        )
    svc.mark_cpu()
    busy0 = machine_cpu_seconds()
    t0 = time.monotonic()
    result = run_load(
        url, requests, connections=connections, duration=duration, engine=engine, workers=workers
    )
    wall = time.monotonic() - t0
    by_pid = svc.cpu_since_mark_by_pid()
    server = 100 * sum(by_pid.values()) / wall
    machine = 100 * (machine_cpu_seconds() - busy0) / wall
    # wall also holds the client's start-up (short for wrk, ~0.2 s for python clients).
    other = max(0.0, machine - server - result.client_cpu_pct)
    per_worker = [100 * cpu / wall for pid, cpu in sorted(by_pid.items()) if pid != svc.pid]
    return LoadRun(result, server, machine, other, per_worker)


@dataclass
class Interleaved:
    runs: dict[str, list[LoadRun]] = field(default_factory=dict)
    discarded: int = 0  # runs redone: "other" CPU above the threshold
    unbalanced: int = 0  # runs redone: a server worker sat idle (see LoadRun.balanced)

    def rps(self, name: str) -> list[float]:
        return [r.result.rps for r in self.runs[name]]

    def latency(self, name: str, key: str) -> list[float]:
        return [r.result.latency_ms[key] for r in self.runs[name]]


def load_interleaved(
    targets: Mapping[str, Target],
    *,
    repeat: int = 3,
    warmup: float = 2.0,
    connections: int = 16,
    duration: float = 10.0,
    engine: Engine = "auto",
    max_other_pct: float = 25.0,
    retries: int = 3,
) -> Interleaved:
    """``repeat`` rounds over all targets, order reversed every other round (A B, B A, ...).

    A run whose "other" CPU exceeds ``max_other_pct``, or that was not ``balanced``, is
    redone, at most ``retries`` times per run; the last attempt is kept anyway (and the
    counts tell the reader).
    """
    out = Interleaved({name: [] for name in targets})
    for t in targets.values():
        if warmup > 0:
            load(
                t.svc,
                t.requests,
                path=t.path,
                connections=connections,
                duration=warmup,
                engine=engine,
            )
    names = list(targets)
    for rnd in range(repeat):
        for name in names if rnd % 2 == 0 else names[::-1]:
            t = targets[name]
            for attempt in range(retries + 1):
                run = load(
                    t.svc,
                    t.requests,
                    path=t.path,
                    connections=connections,
                    duration=duration,
                    engine=engine,
                )
                disturbed = run.other_cpu_pct > max_other_pct
                if attempt == retries or (not disturbed and run.balanced):
                    break
                if disturbed:
                    out.discarded += 1
                    why = f"other cpu {run.other_cpu_pct:.0f}%"
                else:
                    out.unbalanced += 1
                    shares = "/".join(f"{w:.0f}" for w in run.worker_cpu_pct)
                    why = f"unbalanced workers, cpu% {shares}"
                print(f"# {name}: run redone ({why})", file=sys.stderr)
            out.runs[name].append(run)
    return out


def paired_ratio(
    candidate: Sequence[float], baseline: Sequence[float]
) -> tuple[float, float, float]:
    """Median, min and max of per-round ratios candidate/baseline (rounds are paired)."""
    ratios = [c / b for c, b in zip(candidate, baseline, strict=True) if b]
    return statistics.median(ratios), min(ratios), max(ratios)
