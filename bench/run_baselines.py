"""Run the three baselines one after the other and print one table.

They run sequentially on purpose: on 2 cores any two of them at once would measure each
other. ``--quick`` shortens every run (for checking the harness, not for figures).

    python -m bench.run_baselines [--quick] [--only falcon pgbench dramatiq] [--json] [--save]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import baseline_dramatiq, baseline_falcon, baseline_pgbench
from bench.report import RESULTS_DIR, Figure, figures_table, machine_info, to_jsonable

Measure = Callable[[], tuple[list[Figure], dict[str, Any]]]


def plan(
    quick: bool, dsn: str | None, redis_url: str | None, max_other: float
) -> dict[str, Measure]:
    d, r = (3.0, 1) if quick else (10.0, 3)
    return {
        "falcon": lambda: baseline_falcon.measure(
            duration=d, repeat=r, warmup=1.0 if quick else 2.0, max_other_pct=max_other
        ),
        "pgbench": lambda: baseline_pgbench.measure(
            dsn=dsn, duration=int(d), repeat=1 if quick else 2, max_other_pct=max_other
        ),
        "dramatiq": lambda: baseline_dramatiq.measure(
            redis_url=redis_url,
            messages=5_000 if quick else 20_000,
            repeat=r,
            max_other_pct=max_other,
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.run_baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--only", nargs="+", choices=["falcon", "pgbench", "dramatiq"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dsn", help="PostgreSQL for pgbench (default $BENCH_DATABASE_URL)")
    ap.add_argument("--redis-url", help="Redis for dramatiq (default $BENCH_REDIS_URL)")
    ap.add_argument(
        "--max-other",
        type=float,
        default=25.0,
        help="redo a run when other processes used more than this %% of a core (default 25)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", action="store_true", help="also write bench/results/*.json")
    args = ap.parse_args(argv)
    steps = plan(args.quick, args.dsn, args.redis_url, args.max_other)
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    started = time.monotonic()
    for name, run in steps.items():
        if args.only and name not in args.only:
            continue
        print(f"# running {name} ...", file=sys.stderr, flush=True)
        got, info = run()
        figures += got
        details[name] = info
    doc = to_jsonable(
        figures,
        title="baselines",
        quick=args.quick,
        details=details,
        elapsed_s=round(time.monotonic() - started, 1),
    )
    if args.save:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-baselines.json"
        path.write_text(json.dumps(doc, indent=2))
        print(f"# saved {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    m = machine_info()
    print(
        f"# baselines {m['date']}: {m['cpus']} cpus ({m['cpu_model']}), "
        f"load {m['loadavg_1m']}, python {m['python']}"
    )
    print(figures_table(figures))
    if "falcon" in details:
        f = details["falcon"]
        print(
            f"# falcon: engine={f['engine']}, {f['connections']} connections, cpu% of one "
            f"core client={f['client_cpu_pct']:.0f} server={f['server_cpu_pct']:.0f} "
            f"other={f['other_cpu_pct']:.0f}, errors={f['errors']}, "
            f"runs redone: disturbed={f['discarded_runs']} unbalanced={f['unbalanced_runs']}"
        )
    if "pgbench" in details:
        pg = details["pgbench"]
        s = pg["server"]
        print(
            f"# pgbench: PostgreSQL {s['server_version']}, synchronous_commit="
            f"{s['synchronous_commit']}, fsync={s['fsync']}; other cpu="
            f"{pg['other_cpu_pct']:.0f}%, runs redone={pg['redone_runs']}"
        )
    if "dramatiq" in details:
        d = details["dramatiq"]
        print(
            f"# dramatiq: cpu% of one core worker={d['worker_cpu_pct']:.0f} "
            f"other={d['other_cpu_pct']:.0f}, runs redone={d['redone_runs']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
