"""Baseline: a bare Falcon JSON endpoint under gunicorn, loaded by bench.loadgen.

This is the ceiling any API endpoint of ours can reach with the same server settings on
this machine; API benchmarks report "endpoint req/s / bare req/s" from the same run.

    python -m bench.baseline_falcon [--connections 16] [--duration 10] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from typing import Any

from bench.harness import GunicornSettings, gunicorn
from bench.loadgen import Engine
from bench.measure import Target, load_interleaved
from bench.report import Figure, emit, median_figure

APP = "bench.bare_app:app"


def measure(
    *,
    settings: GunicornSettings | None = None,
    connections: int = 16,
    duration: float = 10.0,
    warmup: float = 2.0,
    repeat: int = 3,
    engine: Engine = "auto",
    path: str = "/",
    max_other_pct: float = 25.0,
) -> tuple[list[Figure], dict[str, Any]]:
    """Figures (median of ``repeat`` runs, min..max kept) and per-run details."""
    settings = settings or GunicornSettings()
    with gunicorn(APP, settings=settings, ready_path="/healthz") as srv:
        got = load_interleaved(
            {"bare": Target(srv, path)},
            repeat=repeat,
            warmup=warmup,
            connections=connections,
            duration=duration,
            engine=engine,
            max_other_pct=max_other_pct,
        )
    runs = got.runs["bare"]
    res = [r.result for r in runs]
    figures = [
        median_figure("falcon bare req/s", [r.rps for r in res], "req/s"),
        median_figure(
            "falcon bare p50", [r.latency_ms["p50"] for r in res], "ms", higher_is_better=False
        ),
        median_figure(
            "falcon bare p99", [r.latency_ms["p99"] for r in res], "ms", higher_is_better=False
        ),
    ]
    details = {
        "engine": res[0].engine,
        "connections": connections,
        "duration_s": duration,
        "gunicorn": settings.args(),
        "errors": sum(r.error_count for r in res),
        "client_cpu_pct": statistics.median(r.result.client_cpu_pct for r in runs),
        "server_cpu_pct": statistics.median(r.server_cpu_pct for r in runs),
        "other_cpu_pct": statistics.median(r.other_cpu_pct for r in runs),
        "discarded_runs": got.discarded,
        "unbalanced_runs": got.unbalanced,
        "runs": [
            {
                "rps": r.result.rps,
                "latency_ms": r.result.latency_ms,
                "client_cpu_pct": r.result.client_cpu_pct,
                "server_cpu_pct": r.server_cpu_pct,
                "other_cpu_pct": r.other_cpu_pct,
                "worker_cpu_pct": r.worker_cpu_pct,
                "histogram": r.result.histogram,
            }
            for r in runs
        ],
    }
    return figures, details


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.baseline_falcon", description=__doc__)
    ap.add_argument("-c", "--connections", type=int, default=16)
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engine", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--max-other",
        type=float,
        default=25.0,
        help="redo a run when other processes used more than this %% of a core (default 25)",
    )
    ap.add_argument("--save", action="store_true", help="also write bench/results/*.json")
    args = ap.parse_args(argv)
    figures, details = measure(
        settings=GunicornSettings(workers=args.workers, threads=args.threads),
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        repeat=args.repeat,
        engine=args.engine,
        max_other_pct=args.max_other,
    )
    emit(
        figures,
        as_json=args.json,
        title="Falcon bare JSON endpoint (gunicorn gthread)",
        save_as="falcon" if args.save else None,
        details=details,
    )
    if not args.json:
        print(
            f"# engine={details['engine']} cpu% (of one core): "
            f"client={details['client_cpu_pct']:.0f} server={details['server_cpu_pct']:.0f} "
            f"other={details['other_cpu_pct']:.0f} errors={details['errors']} "
            f"runs redone: disturbed={details['discarded_runs']} "
            f"unbalanced={details['unbalanced_runs']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
