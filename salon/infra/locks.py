"""Transaction-scoped advisory locks that serialize the writes touching one stylist's time.

Every write that takes or frees a stylist's time (holds, confirms of moves, cancellations,
slot generation) takes the stylist's lock first, so concurrent writers queue briefly in
PostgreSQL instead of racing to the exclusion constraint. The constraint stays the last word.

Keys: `customer:{user id}` (a hold's limit), `roster:{brand id}` (changes to who works where
and when: rules, a stylist's locations, a location's zone; see `salon.rules.clashes`) and
`stylist:{stylist id}`. Writers needing several take them in sorted order, so "customer:"
before "roster:" before "stylist:"; a writer holding a later key never asks for an earlier one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")

STYLIST = "stylist:"
CUSTOMER = "customer:"
ROSTER = "roster:"

# The SQL expression of a key, for statements that take a lock on a row they read:
# `{LOCK_SQL}` with the key's SQL text in place of `{key}`.
LOCK_SQL = "pg_advisory_xact_lock(hashtextextended({key}, 0))"


def lock(session: Session, *keys: str) -> None:
    # Always in sorted order: two writers needing the same two locks cannot deadlock.
    for key in sorted(set(keys)):
        session.execute(_LOCK, {"k": key})


def lock_stylists(session: Session, stylist_ids: Iterable[uuid.UUID]) -> None:
    lock(session, *(f"{STYLIST}{s}" for s in stylist_ids))


def lock_roster(session: Session, biz: uuid.UUID) -> None:
    """The brand's roster: rules and who works where change one write at a time."""
    lock(session, f"{ROSTER}{biz}")
