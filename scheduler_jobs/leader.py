"""Leadership by PostgreSQL advisory lock: of several scheduler processes, one fires.

The lock is held by one dedicated connection for as long as it lives; if that connection
dies (database restart, network cut), the lock is gone and the process steps down.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

SCHEDULER_LOCK = 7_242_002  # arbitrary, fixed: the key of the scheduler's advisory lock


class Leadership:
    def __init__(self, engine: Engine, key: int = SCHEDULER_LOCK) -> None:
        self.engine = engine
        self.key = key
        self.connection: Connection | None = None

    def try_acquire(self) -> bool:
        self.release()
        connection = self.engine.connect()
        try:
            lock = text("SELECT pg_try_advisory_lock(:k)")
            got = bool(connection.execute(lock, {"k": self.key}).scalar())
            connection.commit()
        except Exception:
            connection.close()
            raise
        if got:
            self.connection = connection
        else:
            connection.close()
        return got

    def still_held(self) -> bool:
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
        try:
            # Closing returns the connection to the pool: unlock first so the lock cannot
            # outlive this leadership on a pooled session.
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            connection.commit()
        except Exception:
            connection.invalidate()
        finally:
            connection.close()
