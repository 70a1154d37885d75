"""`salon worker`: Dramatiq's CLI once per worker process, each restarted when it dies.

Dramatiq's parent process stops all its worker processes when one of them dies and then exits
(Dramatiq 2.2 has no option to restart a worker process), so a single killed process (the OOM
killer, a segfault in a C extension) stopped every write until something outside restarted
the whole command. Here each worker process runs under a Dramatiq parent of its own
(`--processes 1`): one dying takes down only its own parent, which this supervisor starts
again while the other processes go on serving.

A requested stop (SIGTERM, SIGINT) is forwarded once to every Dramatiq parent, which stops its
worker gracefully (finishes the messages in hand); nothing is restarted after it. A second
stop signal is forwarded too, which makes Dramatiq stop at once (messages in hand are
redelivered). SIGHUP is forwarded as is (Dramatiq's reload).

Each Dramatiq parent runs in a process group of its own, so a terminal's Ctrl-C reaches only
this supervisor and each worker is asked to stop once, not twice (a second SIGTERM makes a
Dramatiq worker exit at once). In exchange, a signal to this process's group no longer reaches
them: the kernel does (`die_with_parent`), so a SIGKILLed supervisor takes its Dramatiq
parents with it, and each of them its worker process (`workers/main.py`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("salon.worker")

# A process that ran at least this long died of something that happened to it, not of how it
# starts: it is restarted at once. Quicker deaths in a row wait 0.5, 1, 2 ... up to 10 s, so a
# broken start (bad setting, import error) does not spin, and is retried soon after a fix.
STABLE_SECONDS = 10.0
FIRST_DELAY = 0.5
MAX_DELAY = 10.0
POLL_SECONDS = 0.1
ALIVE_EVERY_SECONDS = 1.0

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only).

    `parent`, when given, is the pid the caller expects as its parent: if that one died
    before the request was made, the process goes at once."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def backoff(quick_deaths: int) -> float:
    """Seconds to wait before a restart, after this many quick deaths in a row."""
    if quick_deaths <= 0:
        return 0.0
    return min(FIRST_DELAY * 2.0 ** (quick_deaths - 1), MAX_DELAY)


@dataclass
class Slot:
    """One worker process's place: the Dramatiq parent running it, or when to start one."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    start_at: float = 0.0
    restarts: int = 0


class Supervisor:
    def __init__(
        self,
        command: list[str],
        processes: int,
        *,
        alive_file: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = command
        self.slots = [Slot(i) for i in range(processes)]
        self.alive_file = Path(alive_file) if alive_file else None
        self.clock = clock
        self.stop_signals = 0
        self.forwarded_stops = 0
        self.reloads = 0
        self.exit_code = 0
        self.touched = float("-inf")

    # --- signals (the handlers only count; the loop acts) ------------------------------------

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop_signals += 1

    def _on_reload(self, signum: int, frame: object) -> None:
        self.reloads += 1

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    # --- processes ---------------------------------------------------------------------------

    def _spawn(self, slot: Slot, now: float) -> None:
        me = os.getpid()

        def in_child() -> None:  # between fork and exec: no locks, no logging
            os.setpgid(0, 0)
            die_with_parent(signal.SIGKILL, parent=me)

        try:
            slot.proc = subprocess.Popen(self.command, preexec_fn=in_child)
        except OSError:
            log.exception("could not start worker process %d", slot.index)
            slot.quick_deaths += 1
            slot.start_at = now + backoff(slot.quick_deaths)
            return
        slot.started = now
        log.info("worker process %d started (pid %d)", slot.index, slot.proc.pid)

    def _signal_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.proc.pid, sig)

    @property
    def stopping(self) -> bool:
        return self.stop_signals > 0

    def step(self) -> bool:
        """One pass: forward signals, reap and restart. False once stopped for good."""
        now = self.clock()
        if self.forwarded_stops < self.stop_signals:
            if self.forwarded_stops == 0:
                log.info("stopping: the worker processes finish what they hold")
            self.forwarded_stops = self.stop_signals
            self._signal_all(signal.SIGTERM)
        if self.reloads:
            self.reloads = 0
            self._signal_all(signal.SIGHUP)
        for slot in self.slots:
            if slot.proc is not None and (code := slot.proc.poll()) is not None:
                slot.proc = None
                if self.stopping:
                    self.exit_code = self.exit_code or (1 if code < 0 else code)
                    continue
                ran = now - slot.started
                slot.quick_deaths = 0 if ran >= STABLE_SECONDS else slot.quick_deaths + 1
                delay = backoff(slot.quick_deaths)
                slot.start_at = now + delay
                slot.restarts += 1
                log.warning(
                    "worker process %d exited (code %d) after %.1f s; restarting in %.1f s",
                    slot.index,
                    code,
                    ran,
                    delay,
                )
            if slot.proc is None and not self.stopping and now >= slot.start_at:
                self._spawn(slot, now)
        if self.stopping:
            return any(slot.proc is not None for slot in self.slots)
        if (
            self.alive_file is not None
            and now - self.touched >= ALIVE_EVERY_SECONDS
            and all(slot.proc is not None for slot in self.slots)
        ):
            # A liveness probe reads its age: it stays fresh while every worker process runs.
            self.alive_file.touch()
            self.touched = now
        return True

    def run(self) -> int:
        while self.step():
            time.sleep(POLL_SECONDS)
        log.info("stopped")
        return self.exit_code


def dramatiq_command(threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.main",
        "--processes",
        "1",
        "--threads",
        str(threads),
        "--skip-logging",
    ]
