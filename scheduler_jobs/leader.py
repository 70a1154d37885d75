"""Leadership by PostgreSQL advisory lock: of several scheduler processes, one fires.

The lock is held by one dedicated connection for as long as it lives; its backend (pid and
start time) is the *holder*. Three things make "one fires" hold at the moment of firing:

* A lease the server enforces: the lock session has `idle_session_timeout`, so PostgreSQL ends
  it (and the lock goes) once the leader has been silent that long: a frozen process (SIGSTOP,
  a stalled VM) keeps its TCP connection open for ever, but not its lock. The leader's
  heartbeat speaks well within the lease.
* A fence at every firing (`Holder.fence`): the job runs inside a transaction that first takes
  the fence lock shared and then finds the holder still holding the lock, else does nothing.
* A barrier at every takeover: a new leader takes the fence lock exclusively, for a moment,
  before it fires, so it waits for the firings a deposed leader began while it still led.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

SCHEDULER_LOCK = 7_242_002  # arbitrary, fixed: the key of the scheduler's advisory lock

# The fence is the two-key advisory lock (key, 1): a namespace apart from every one-key
# (bigint) lock, such as the leadership lock itself and salon.infra.locks' hashed keys.
_FENCE_SUBKEY = 1

_ACQUIRE = text(
    "SELECT pg_try_advisory_lock(:k) AS got, pg_backend_pid() AS pid,"
    " (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS started"
)
_LEASE = text("SELECT set_config('idle_session_timeout', :ms, false)")
_BARRIER = text(
    "SELECT set_config('lock_timeout', :ms, true), set_config('statement_timeout', :limit, true),"
    " pg_advisory_xact_lock(CAST(:k AS integer), :sub)"
)
# CASE: the fence lock is taken before the holder is looked at (a new leader's barrier then
# waits for this transaction), and a refused fence lock (a barrier waiting) is a no at once.
# The pid alone could be a reused one; its backend's start time tells.
_FENCE = text(
    """
SELECT set_config('idle_in_transaction_session_timeout', :ms, true),
    CASE WHEN pg_try_advisory_xact_lock_shared(CAST(:k AS integer), :sub) THEN EXISTS (
        SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid) AND l.objsubid = 1
          AND l.pid = :pid AND a.backend_start = :started)
    ELSE false END AS held
"""
)


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


@dataclass(frozen=True)
class Holder:
    """The backend that took the lock for one term of leadership."""

    key: int
    pid: int
    started: dt.datetime
    lease_seconds: float

    def fence(self, session: Session) -> bool:
        """In the firing's own transaction: does this term's backend still hold the lock? The
        shared fence lock it takes lasts until that transaction ends. A transaction left idle
        longer than the lease (a process frozen mid-job) is ended by the server, so it cannot
        hold a new leader's barrier for ever."""
        return bool(
            session.execute(
                _FENCE,
                {
                    "ms": _ms(self.lease_seconds),
                    "k": self.key,
                    "sub": _FENCE_SUBKEY,
                    "hi": self.key >> 32,
                    "lo": self.key & 0xFFFF_FFFF,
                    "pid": self.pid,
                    "started": self.started,
                },
            )
            .one()
            .held
        )


class Leadership:
    def __init__(self, engine: Engine, key: int, lease_seconds: float) -> None:
        if not 0 <= key < 2**31:
            raise ValueError("the lock key must fit the fence lock's int4 key")
        self.engine = engine
        self.key = key
        self.lease_seconds = lease_seconds
        self.connection: Connection | None = None

    def try_acquire(self) -> Holder | None:
        """The lock, the lease and the barrier: the holder of a new term, or None."""
        self.release()
        connection = self.engine.connect()
        try:
            row = connection.execute(_ACQUIRE, {"k": self.key}).one()
            connection.commit()
            if not row.got:
                connection.close()
                return None
            self.connection = connection
            connection.execute(_LEASE, {"ms": _ms(self.lease_seconds)})
            connection.commit()
            # A deposed leader's firing (begun while it held the lock, its transaction idle
            # at most a lease) ends before this one fires anything.
            wait = 2 * self.lease_seconds
            connection.execute(
                _BARRIER,
                {
                    "ms": _ms(wait),
                    "limit": _ms(wait + 1),
                    "k": self.key,
                    "sub": _FENCE_SUBKEY,
                },
            )
            connection.commit()
        except Exception:
            self.connection = None
            connection.invalidate()
            connection.close()
            raise
        return Holder(self.key, row.pid, row.started, self.lease_seconds)

    def still_held(self) -> bool:
        """The heartbeat: a statement on the lock session keeps its lease; a session the server
        ended (lease run out, backend terminated, restart) fails it."""
        if self.connection is None:
            return False
        try:
            self.connection.execute(text("SELECT 1"))
            self.connection.commit()
            return True
        except Exception:
            self.release()
            return False

    def release(self) -> None:
        if self.connection is None:
            return
        connection, self.connection = self.connection, None
        # Closed, not returned to the pool: the lock and the session's lease go with it.
        connection.invalidate()
        connection.close()
