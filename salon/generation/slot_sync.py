"""Making one stylist's slots at one location what the rules want, for a range of days.

Used by a generation chunk, inside its transaction and under the stylist's lock. A re-run
that finds nothing to change reads one digest per day, not every slot.

A slot no rule wants is deleted when free; a live booking on it keeps it, `blocked`
(`salon.rules.coverage`), and reports a conflict until staff resolve it. A wanted slot that is
blocked opens again. A wanted start the stylist already has at another location is a clash
(two locations' rules overlap): reported on the job, never silently skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, select, text, update
from sqlalchemy.orm import Session

from models.ids import new_id_hexes
from models.rules import Slot
from models.tables import Booking, SlotInstance


@dataclass(frozen=True)
class ChunkKey:
    stylist_id: uuid.UUID
    location_id: uuid.UUID
    week_start: dt.date


@dataclass
class ChunkResult:
    created: int = 0
    removed: int = 0
    skipped: int = 0
    conflicts: list[dict[str, Any]] | None = None
    # The local dates the chunk covered (first, last): what a change can have reached.
    days: tuple[dt.date, dt.date] | None = None


def _digest(slots: Iterable[tuple[int, int]]) -> str:
    """The same text PostgreSQL builds in `_DAY_DIGESTS`, hashed: one value per local day."""
    return hashlib.md5(",".join(f"{a}:{b}" for a, b in slots).encode()).hexdigest()


# Per local day, a fingerprint of the stylist's slots here: a re-run that finds every day
# unchanged reads a few hundred short rows instead of every slot. A blocked slot adds its
# status, so its day never matches what the rules want and is always looked at again.
_DAY_DIGESTS = text(
    """
    SELECT local_date, md5(string_agg(
        extract(epoch FROM start_at)::bigint || ':' || extract(epoch FROM end_at)::bigint
        || CASE WHEN status = 'open' THEN '' ELSE ':' || status END,
        ',' ORDER BY start_at)) AS digest
    FROM (
        -- OFFSET 0 keeps the outer filters out: the scan must use (stylist_id, start_at),
        -- not the location's index over every stylist's slots.
        SELECT local_date, start_at, end_at, location_id, status
        FROM scheduler.slot_instances
        WHERE stylist_id = :stylist AND start_at >= :lo AND start_at < :hi
        OFFSET 0
    ) AS mine
    WHERE location_id = :location AND local_date BETWEEN :first AND :last
    GROUP BY local_date
    """
)


def reconcile(
    session: Session,
    key: ChunkKey,
    first: dt.date,
    last: dt.date,
    wanted: list[Slot],
    *,
    dry_run: bool,
) -> ChunkResult:
    """Make the stylist's slots at this location for [first, last] what the rules want."""
    by_day: dict[dt.date, list[Slot]] = {}
    for slot in wanted:
        by_day.setdefault(slot.local_date, []).append(slot)
    # Local dates of any zone lie within a day of the UTC date: a margin bounds the index scan.
    lo = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), dt.UTC)
    hi = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), dt.UTC)
    stored = {
        row.local_date: row.digest
        for row in session.execute(
            _DAY_DIGESTS,
            {
                "stylist": key.stylist_id,
                "location": key.location_id,
                "lo": lo,
                "hi": hi,
                "first": first,
                "last": last,
            },
        )
    }
    result = ChunkResult(conflicts=[])
    changed: set[dt.date] = set()
    for day in set(by_day) | set(stored):
        slots = by_day.get(day, [])
        digest = _digest((int(x.start_at.timestamp()), int(x.end_at.timestamp())) for x in slots)
        if stored.get(day) == digest:
            result.skipped += len(slots)
        else:
            changed.add(day)
    if not changed:
        return result
    existing = session.execute(
        select(
            SlotInstance.id,
            SlotInstance.location_id,
            SlotInstance.local_date,
            SlotInstance.start_at,
            SlotInstance.end_at,
            SlotInstance.status,
        ).where(
            SlotInstance.stylist_id == key.stylist_id,
            SlotInstance.start_at >= lo,
            SlotInstance.start_at < hi,
        )
    ).all()
    # One stylist cannot have two slots starting at the same instant, at any location.
    elsewhere = {row.start_at: row for row in existing if row.location_id != key.location_id}
    here = {
        (row.start_at, row.end_at): row
        for row in existing
        if row.location_id == key.location_id and row.local_date in changed
    }
    wanted_keys = {(s.start_at, s.end_at) for day in changed for s in by_day.get(day, [])}
    stale = [row for k, row in here.items() if k not in wanted_keys]
    removable, conflicts = _split_booked(session, key.stylist_id, stale)
    removed = set(removable)
    # Starts still taken here once the free stale slots are gone (a booked one stays).
    kept_starts = {row.start_at for row in here.values() if row.id not in removed}
    to_create: list[Slot] = []
    to_open: list[uuid.UUID] = []
    for day in sorted(changed):
        for slot in by_day.get(day, []):
            row = here.get((slot.start_at, slot.end_at))
            other = elsewhere.get(slot.start_at)
            if row is not None:
                result.skipped += 1
                if row.status != "open":
                    to_open.append(row.id)
            elif other is not None:
                conflicts.append(_clash(key, slot, other))
            elif slot.start_at in kept_starts:
                result.skipped += 1
            else:
                to_create.append(slot)
    # A booked slot no rule wants stays for its booking, blocked: freed later, nobody gets it.
    to_block = [c["slot_id"] for c in conflicts if c.pop("status", None) == "open"]
    result.conflicts = conflicts
    result.removed = len(removable)
    result.created = len(to_create)
    if dry_run:
        return result
    if removable:
        session.execute(delete(SlotInstance).where(SlotInstance.id.in_(removable)))
    for ids, status in ((to_block, "blocked"), (to_open, "open")):
        if ids:
            session.execute(
                update(SlotInstance).where(SlotInstance.id.in_(ids)).values(status=status)
            )
    if to_create:
        _copy_slots(session, key, to_create)
    return result


def _clash(key: ChunkKey, slot: Slot, other: Any) -> dict[str, Any]:
    """A start the rules want here that the stylist already has at another location."""
    return {
        "reason": "clash",
        "slot_id": other.id,
        "stylist_id": key.stylist_id,
        "start_at": slot.start_at,
        "location_id": other.location_id,
    }


def _split_booked(
    session: Session, stylist_id: uuid.UUID, stale: list[Any]
) -> tuple[list[uuid.UUID], list[dict[str, Any]]]:
    """Stale slots overlapped by a live booking are conflicts for staff; the rest may go.
    Each conflict carries the slot's `status` for the caller (which pops it)."""
    if not stale:
        return [], []
    lo = min(row.start_at for row in stale)
    hi = max(row.end_at for row in stale)
    bookings = session.execute(
        select(Booking.id, Booking.start_at, Booking.end_at).where(
            Booking.stylist_id == stylist_id,
            Booking.start_at < hi,
            Booking.end_at > lo,
            Booking.status.in_(("held", "confirmed")),
            # An expired hold blocks nothing, even before the sweep marks it.
            ~and_(Booking.status == "held", Booking.hold_expires_at < func.now()),
        )
    ).all()
    removable: list[uuid.UUID] = []
    conflicts: list[dict[str, Any]] = []
    for row in stale:
        booked = next(
            (b for b in bookings if b.start_at < row.end_at and b.end_at > row.start_at), None
        )
        if booked is None:
            removable.append(row.id)
        else:
            conflicts.append(
                {
                    "reason": "booked",
                    "status": row.status,
                    "slot_id": row.id,
                    "stylist_id": stylist_id,
                    "start_at": row.start_at,
                    "booking_id": booked.id,
                }
            )
    return removable, conflicts


def _copy_slots(session: Session, key: ChunkKey, slots: list[Slot]) -> None:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    columns = "id, location_id, stylist_id, local_date, start_at, end_at, status"
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY scheduler.slot_instances ({columns}) FROM STDIN") as copy,
    ):
        location, stylist = str(key.location_id), str(key.stylist_id)
        for slot_id, slot in zip(new_id_hexes(len(slots)), slots, strict=True):
            copy.write_row(
                (slot_id, location, stylist, slot.local_date, slot.start_at, slot.end_at, "open")
            )
