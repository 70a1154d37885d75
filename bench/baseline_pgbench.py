"""Baseline: pgbench running a booking-like transaction, 8 and 16 clients, prepared protocol.

The transaction holds one slot and inserts one booking into a table carrying the same kind
of GiST exclusion constraint as the real schema, so it is the ceiling for "hold a slot"
writes on this PostgreSQL; booking benchmarks report their TPS as a ratio to this.

Tables are created in their own database (default ``salon_bench``, created if missing) and
dropped at the end; nothing else is touched.

    python -m bench.baseline_pgbench [--dsn postgresql://postgres@127.0.0.1:5432/salon_bench]
        [--clients 8 16] [--duration 10] [--repeat 2] [--with-plain] [--json]

``--dsn`` defaults to ``$BENCH_DATABASE_URL``. ``--with-plain`` also runs the same script
against a table without the exclusion constraint, to show what the constraint costs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.cpuwatch import CpuWatch
from bench.report import Figure, emit, median_figure

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/salon_bench"

# One stylist's day is a run of 30-minute slots; slot ids are dense so pgbench can pick one
# with random(). Bookings get a globally unique 30-minute range from a sequence, so the
# exclusion constraint is probed on every insert but never fires (pgbench would abort).
SCHEMA = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
DROP TABLE IF EXISTS bench_booking, bench_slot;
DROP SEQUENCE IF EXISTS bench_booking_seq;
CREATE TABLE bench_slot (
    id bigint PRIMARY KEY,
    stylist_id integer NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'open',
    held_until timestamptz
);
INSERT INTO bench_slot (id, stylist_id, start_at, end_at)
SELECT g, 1 + (g - 1) %% %(stylists)s,
       timestamptz '2030-01-01' + ((g - 1) / %(stylists)s) * interval '30 minutes',
       timestamptz '2030-01-01' + ((g - 1) / %(stylists)s + 1) * interval '30 minutes'
FROM generate_series(1, %(slots)s) AS g;
CREATE SEQUENCE bench_booking_seq;
CREATE TABLE bench_booking (
    id bigserial PRIMARY KEY,
    slot_id bigint NOT NULL,
    stylist_id integer NOT NULL,
    client_id integer NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
    %(exclusion)s
);
"""
EXCLUSION = ",\n    EXCLUDE USING gist (stylist_id WITH =, tstzrange(start_at, end_at) WITH &&)"
TEARDOWN = (
    "DROP TABLE IF EXISTS bench_booking, bench_slot; DROP SEQUENCE IF EXISTS bench_booking_seq;"
)

# The slot is set to held unconditionally (not "WHERE status = 'open'"): otherwise more
# and more picks would become no-op updates as a run goes on and the load would drift.
TXN = r"""
\set slot random(1, :slots)
\set stylist 1 + (:slot - 1) % :stylists
\set client random(1, 1000000)
BEGIN;
UPDATE bench_slot SET status = 'held', held_until = now() + interval '10 minutes'
 WHERE id = :slot;
INSERT INTO bench_booking (slot_id, stylist_id, client_id, start_at, end_at)
VALUES (:slot, :stylist, :client,
        timestamptz '2031-01-01' + nextval('bench_booking_seq') * interval '30 minutes',
        timestamptz '2031-01-01' + currval('bench_booking_seq') * interval '30 minutes'
          + interval '30 minutes');
END;
"""


def normalize_dsn(dsn: str) -> str:
    # Accept the SQLAlchemy spelling used elsewhere in the project.
    return re.sub(r"^postgresql\+\w+://", "postgresql://", dsn)


def ensure_database(dsn: str) -> None:
    """Create the target database if missing, via the server's ``postgres`` database."""
    params = conninfo_to_dict(dsn)
    dbname = str(params.get("dbname") or "salon_bench")
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    admin = make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def setup(dsn: str, *, slots: int, stylists: int, exclusion: bool) -> None:
    ddl = SCHEMA % {
        "slots": slots,
        "stylists": stylists,
        "exclusion": EXCLUSION if exclusion else "",
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl.encode())
        # Fresh statistics and a checkpoint now, so neither lands inside the timed run.
        conn.execute("VACUUM ANALYZE bench_slot")
        conn.execute("VACUUM ANALYZE bench_booking")
        conn.execute("CHECKPOINT")


def teardown(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TEARDOWN.encode())


def _percentile(sorted_us: list[int], p: float) -> float:
    if not sorted_us:
        return float("nan")
    rank = min(len(sorted_us) - 1, max(0, math.ceil(p / 100 * len(sorted_us)) - 1))
    return sorted_us[rank] / 1000


def run_pgbench(
    dsn: str, *, clients: int, duration: int, slots: int, stylists: int, jobs: int
) -> dict[str, Any]:
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise RuntimeError("pgbench not found (Debian: apt-get install postgresql-client)")
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
        script = Path(tmp) / "booking.sql"
        script.write_text(TXN)
        cmd = [
            pgbench,
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={min(jobs, clients)}",
            f"--time={duration}",
            f"--file={script}",
            f"--define=slots={slots}",
            f"--define=stylists={stylists}",
            # Per-transaction log: pgbench itself only prints the mean latency.
            "--log",
            f"--log-prefix={tmp}/tx",
            dsn,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        latencies: list[int] = []
        for log in Path(tmp).glob("tx*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():  # "failed"/"skipped" otherwise
                    latencies.append(int(fields[2]))
    out = proc.stdout
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    avg = re.search(r"latency average = ([\d.]+) ms", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if tps is None or avg is None:
        raise RuntimeError(f"could not parse pgbench output:\n{out}")
    latencies.sort()
    return {
        "clients": clients,
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(avg.group(1)),
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "transactions": len(latencies),
        "failed": int(failed.group(1)) if failed else 0,
    }


AUX = ("walwriter", "checkpointer", "background writer")


def _run_checked(
    dsn: str,
    clients: int,
    exclusion: bool,
    duration: int,
    slots: int,
    stylists: int,
    jobs: int,
    max_other_pct: float,
    retries: int,
) -> dict[str, Any]:
    """One pgbench run on fresh tables, redone while something else used > max_other_pct.

    "Ours" is pgbench plus the PostgreSQL backends connected to our database (recognised by
    their process title); on a remote server only pgbench is seen, which is still right.
    """
    dbname = str(conninfo_to_dict(dsn).get("dbname") or "")

    def ours(pid: int, cmd: str) -> bool:
        if cmd.startswith(("pgbench", "/usr/bin/pgbench")):
            return True
        # Our backends, and the WAL writer/checkpointer/bgwriter whose work our commits cause.
        return cmd.startswith("postgres:") and (f" {dbname} " in cmd or cmd.rstrip().endswith(AUX))

    for attempt in range(1, retries + 2):
        # Same starting state for every run: fresh tables, empty bookings.
        setup(dsn, slots=slots, stylists=stylists, exclusion=exclusion)
        with CpuWatch(ours) as watch:
            r = run_pgbench(
                dsn, clients=clients, duration=duration, slots=slots, stylists=stylists, jobs=jobs
            )
        r.update(attempts=attempt, ours_cpu_pct=watch.ours_pct, other_cpu_pct=watch.other_pct)
        if watch.other_pct <= max_other_pct or attempt == retries + 1:
            return r
        print(
            f"# pgbench {clients}c: run redone (other cpu {watch.other_pct:.0f}%)", file=sys.stderr
        )
    raise AssertionError("unreachable")


def _figures(name: str, got: list[dict[str, Any]]) -> list[Figure]:
    return [
        median_figure(f"{name} TPS", [r["tps"] for r in got], "tx/s"),
        median_figure(
            f"{name} latency avg", [r["latency_avg_ms"] for r in got], "ms", higher_is_better=False
        ),
        median_figure(f"{name} p99", [r["p99_ms"] for r in got], "ms", higher_is_better=False),
    ]


def measure(
    *,
    dsn: str | None = None,
    clients: Sequence[int] = (8, 16),
    duration: int = 10,
    repeat: int = 2,
    slots: int = 200_000,
    stylists: int = 200,
    jobs: int | None = None,
    with_plain: bool = False,
    max_other_pct: float = 25.0,
    retries: int = 2,
) -> tuple[list[Figure], dict[str, Any]]:
    dsn = normalize_dsn(dsn or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DSN)
    ensure_database(dsn)
    jobs = jobs or os.cpu_count() or 2
    variants = [True, False] if with_plain else [True]
    redone = 0
    figures: list[Figure] = []
    runs: list[dict[str, Any]] = []
    try:
        for c in clients:
            got: dict[bool, list[dict[str, Any]]] = {v: [] for v in variants}
            for rep in range(repeat):
                # Variants alternate (A B, B A, ...) so a slow drift hits both alike.
                for exclusion in variants if rep % 2 == 0 else variants[::-1]:
                    r = _run_checked(
                        dsn, c, exclusion, duration, slots, stylists, jobs, max_other_pct, retries
                    )
                    redone += r["attempts"] - 1
                    got[exclusion].append(r)
                    runs.append({"exclusion": exclusion, **r})
            for exclusion in variants:
                name = f"pgbench booking{'' if exclusion else ' (no exclusion)'} {c}c"
                figures += _figures(name, got[exclusion])
            if with_plain:
                ratios = [g["tps"] / p["tps"] for g, p in zip(got[True], got[False], strict=True)]
                figures.append(
                    median_figure(f"pgbench {c}c TPS with / without exclusion", ratios, "ratio")
                )
    finally:
        teardown(dsn)
    # Durability settings change TPS several-fold: keep them next to the figures.
    server: dict[str, str] = {}
    with psycopg.connect(dsn) as conn:
        for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers"):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            server[name] = str(row[0]) if row else "?"
    details = {
        "dsn": re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn),  # never print a password
        "server": server,
        "slots": slots,
        "stylists": stylists,
        "duration_s": duration,
        "jobs": jobs,
        "runs": runs,
        "redone_runs": redone,
        "other_cpu_pct": statistics.median(r["other_cpu_pct"] for r in runs),
        "transaction": TXN.strip(),
    }
    return figures, details


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.baseline_pgbench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--dsn", help=f"default: $BENCH_DATABASE_URL or {DEFAULT_DSN}")
    ap.add_argument("--clients", type=int, nargs="+", default=[8, 16])
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds per run")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--slots", type=int, default=200_000)
    ap.add_argument("--stylists", type=int, default=200)
    ap.add_argument("--jobs", type=int, help="pgbench threads (default: cpu count)")
    ap.add_argument(
        "--with-plain", action="store_true", help="also run without the exclusion constraint"
    )
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
        dsn=args.dsn,
        clients=args.clients,
        duration=args.duration,
        repeat=args.repeat,
        slots=args.slots,
        stylists=args.stylists,
        jobs=args.jobs,
        with_plain=args.with_plain,
        max_other_pct=args.max_other,
    )
    emit(
        figures,
        as_json=args.json,
        title="pgbench booking-like transaction (prepared)",
        save_as="pgbench" if args.save else None,
        details=details,
    )
    if not args.json:
        srv = details["server"]
        print(
            f"# other cpu {details['other_cpu_pct']:.0f}% (median), runs redone "
            f"{details['redone_runs']}; PostgreSQL {srv['server_version']} (synchronous_commit="
            f"{srv['synchronous_commit']}, fsync={srv['fsync']}), {args.slots} slots, "
            f"pgbench --jobs={details['jobs']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
