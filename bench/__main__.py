"""`python -m bench slots|holds|generation|all`: run scenarios, print every target's figure.
Needs PostgreSQL, Redis, ``pgbench`` and the Debian ``wrk``: see docs/performance.md."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import scenarios
from bench.harness import WRK_MISSING

RESULTS = Path(__file__).resolve().parent / "results"


def num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def show(report: scenarios.Report) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n## {report.scenario} ({time.strftime('%Y-%m-%d %H:%M %Z')}, load {load})")
    for f in report.figures:
        spread = f"{num(f.spread[0])}..{num(f.spread[1])}" if f.spread else ""
        verdict = "" if f.met is None else ("met" if f.met else "MISSED")
        print(f"{f.name:<36} {num(f.value):>9} {spread:>15}  {f.target:<7} {verdict}")
    for note in report.notes:
        print(f"# {note}")
    for name, runs in report.runs.items():
        per = [r["cpu_ms_per_request"] for r in runs]
        groups = sorted({g for p in per for g in p})
        cpu = {g: statistics.median(p.get(g, 0) for p in per) for g in groups}
        other = statistics.median(r["other_cpu_pct"] for r in runs)
        print(
            f"# {name}: CPU ms per answer "
            + ", ".join(f"{g} {v:.3f}" for g, v in cpu.items())
            + f"; other processes {other:.0f} % of a core"
            + (" (a list went round: repeats)" if any(r["wrapped"] for r in runs) else "")
        )


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a `timeout`, a CI's cancel) unwinds the context managers: servers stop too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument(
        "scenario", nargs="?", default="all", choices=["slots", "holds", "generation", "all"]
    )
    ap.add_argument("-d", "--seconds", type=float, default=10.0, help="per run (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of slots/holds (default 2)")
    ap.add_argument("--max-other", type=float, default=25.0, help="%% of a core (a run redone)")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE: an experiment")
    ap.add_argument("--redis-paths", action="store_true", help="slots: also TLS, parts off")
    ap.add_argument("--save", action="store_true", help="also write bench/results/*.json")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    kept = {k: getattr(args, k) for k in ("seconds", "rounds", "max_other", "redis_paths")}
    opts = scenarios.Options(**kept, env=dict(kv.split("=", 1) for kv in args.env))
    names = ["slots", "holds", "generation"] if args.scenario == "all" else [args.scenario]
    for name in names:
        try:
            report = getattr(scenarios, name)(opts)
        except Exception as exc:  # the next scenario may still run (e.g. a busy database)
            print(f"\n## {name} FAILED: {exc!r}", file=sys.stderr)
            continue
        show(report)
        if args.save:
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.json"
            path.write_text(json.dumps(asdict(report), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
