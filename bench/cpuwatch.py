"""Who used the CPU during a measurement: "our" processes versus everything else.

The machine's 2 cores are shared with other people's test suites and the shared PostgreSQL
and Redis servers. A figure taken while something else burnt half a core is not comparable
with one taken in a quiet moment, so runs record ``other_pct`` and redo when it is high.

Processes that are not children of ours (pgbench's PostgreSQL backends, redis-server) are
recognised by their command line, sampled every ``interval`` seconds from a thread; a
backend that lives shorter than one interval is missed (and counted as "other").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot: user + nice + system + steal.

    irq/softirq time is left out on purpose: it is mostly the kernel moving our own loopback
    traffic (a third of a core under pgbench) and cannot be attributed to any process, so
    counting it would make every busy run look "disturbed". Steal (another VM on the host)
    is a disturbance and stays in.
    """
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (vals[0] + vals[1] + vals[2] + vals[7]) / TICKS


def process_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (command line, CPU seconds so far) for every live process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        out[int(entry.name)] = (cmd, (int(stat[11]) + int(stat[12])) / TICKS)
    return out


class CpuWatch:
    """Context manager: CPU % (of one core) of matching processes, of the machine, and other.

    ``ours(pid, cmdline)`` says which processes belong to the measurement; this process
    (the benchmark driver) always does.
    """

    def __init__(self, ours: Callable[[int, str], bool], interval: float = 0.2) -> None:
        self._ours = ours
        self._interval = interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = self._busy0 = 0.0
        self.ours_pct = self.machine_pct = self.other_pct = 0.0

    def _sample(self) -> None:
        me = os.getpid()
        for pid, (cmd, cpu) in process_cpu().items():
            if pid == me or self._ours(pid, cmd):
                self._first.setdefault(pid, cpu)
                self._last[pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> CpuWatch:
        self._sample()
        self._t0, self._busy0 = time.monotonic(), machine_cpu_seconds()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        wall = time.monotonic() - self._t0
        ours = sum(self._last[p] - self._first[p] for p in self._last)
        self.ours_pct = 100 * ours / wall
        self.machine_pct = 100 * (machine_cpu_seconds() - self._busy0) / wall
        self.other_pct = max(0.0, self.machine_pct - self.ours_pct)
