"""Transaction-scoped advisory locks that serialize the writes touching one stylist's time.

Every write that takes or frees a stylist's time (holds, confirms of moves, cancellations,
slot generation) takes the stylist's lock first, so concurrent writers queue briefly in
PostgreSQL instead of racing to the exclusion constraint. The constraint stays the last word.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")


def lock(session: Session, *keys: str) -> None:
    # Always in sorted order: two writers needing the same two locks cannot deadlock.
    for key in sorted(set(keys)):
        session.execute(_LOCK, {"k": key})


def lock_stylists(session: Session, stylist_ids: Iterable[uuid.UUID]) -> None:
    lock(session, *(f"stylist:{s}" for s in stylist_ids))
