"""`python -m bench slots|holds|generation|all`: run scenarios, print every target's figure.

Needs PostgreSQL and Redis (``BENCH_DATABASE_URL``, an admin database the bench creates its
own databases next to; ``BENCH_REDIS_URL``), ``pgbench`` and the Debian ``wrk``
(``apt-get install -y wrk``). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import scenarios
from bench.harness import WRK_MISSING, stop_cleanly_on_sigterm

RESULTS = Path(__file__).resolve().parent / "results"


def show(report: scenarios.Report) -> None:
    print(f"\n## {report.scenario} ({scenarios.when()})")
    for f in report.figures:
        spread = f" ({f.spread[0]:,.3g}..{f.spread[1]:,.3g})" if f.spread else ""
        verdict = "" if f.met is None else ("  met" if f.met else "  MISSED")
        target = f"  target {f.target}" if f.target else ""
        print(f"{f.name:<40} {f.value:>10,.3g}{spread}{target}{verdict}")
    for note in report.notes:
        print(f"# {note}")
    others = [
        r["other_cpu_pct"]
        for runs in report.runs.values()
        for r in runs
        if isinstance(r, dict) and "other_cpu_pct" in r
    ]
    if others:
        print(
            f"# CPU used by other processes during runs: {min(others):.0f}..{max(others):.0f}"
            " % of one core"
        )


def main(argv: list[str] | None = None) -> int:
    stop_cleanly_on_sigterm()
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument(
        "scenario", nargs="?", default="all", choices=["slots", "holds", "generation", "all"]
    )
    ap.add_argument("-d", "--seconds", type=float, default=10.0, help="per run (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of slots/holds (default 2)")
    ap.add_argument(
        "--max-other",
        type=float,
        default=25.0,
        help="redo a run once when other processes used more %% of a core",
    )
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a product setting for an experiment (figures use none)",
    )
    ap.add_argument("--save", action="store_true", help="also write bench/results/*.json")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    opts = scenarios.Options(
        seconds=args.seconds,
        rounds=args.rounds,
        max_other=args.max_other,
        env=dict(kv.split("=", 1) for kv in args.env),
    )
    names = ["slots", "holds", "generation"] if args.scenario == "all" else [args.scenario]
    for name in names:
        report = getattr(scenarios, name)(opts)
        show(report)
        if args.save:
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.json"
            path.write_text(json.dumps(asdict(report), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
