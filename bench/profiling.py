"""py-spy of server processes during a load, summarized as self and inclusive shares."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# --- profiling -----------------------------------------------------------------------------


def find_py_spy(given: str | None) -> str | None:
    return given or shutil.which("py-spy")


@contextmanager
def py_spy(
    py_spy_bin: str, pids: Sequence[int], seconds: float, out_dir: Path, label: str
) -> Iterator[list[Path]]:
    """Sample each pid for ``seconds`` meanwhile: collapsed stacks, non-blocking,
    200 Hz, GIL holder only (so the shares are of Python CPU time)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{label}-{pid}.txt" for pid in pids]
    procs = [
        subprocess.Popen(
            [
                py_spy_bin,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                # Only the thread holding the GIL: Python CPU, not threads waiting on sockets
                # (psycopg's and redis-py's waits look busy to py-spy otherwise).
                "--gil",
                "--output",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, path in zip(pids, paths, strict=True)
    ]
    try:
        yield paths
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)": keep function + file.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def collapsed_summary(paths: Sequence[Path], top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the busiest functions in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_frame_name(f) for f in stack.split(";")]
            total += n
            own[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}
    return {
        "samples": total,
        "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)],
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in incl.most_common(top)],
    }


def print_profile(title: str, summary: Mapping[str, Any]) -> None:
    print(f"# profile: {title} ({summary['samples']} samples holding the GIL, %)")
    for kind in ("self", "inclusive"):
        print(f"#   top {kind}:")
        for name, pct in summary[kind]:
            print(f"#     {pct:5.1f}%  {name}")
