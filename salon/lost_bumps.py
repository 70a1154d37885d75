"""Finding version bumps that never reached Redis, and making up for them.

Every commit that takes or frees time (a write, a generated chunk) bumps versions in Redis
after it commits (`salon.versions`). A bump can be lost: the worker killed between its commit
and its Redis round trip, or Redis down at that moment. What readers keep (stored answers,
each process's day lists) would then stay wrong until it ages out, so day lists used to be
recomputed every few minutes just in case: most of the read path's background work.

Instead, the round trip that bumps also leaves a receipt (`queue_receipt`), and the
scheduler looks for recent commits without one (`LostBumpWatch`). For each it finds it bumps
the catalogue version, which makes every process recompute everything it kept: heavy, but a
lost bump is rare, and afterwards nothing is wrong any more. Kept lists then only need a long
age limit (for changes made behind the application's back).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from salon.offers import queue_catalogue_bump
from salon.versions import run_pipeline

if TYPE_CHECKING:
    from salon.bootstrap import Container

log = logging.getLogger(__name__)

# A receipt outlives any window the watch looks at (LOOK_BACK after a scheduler restart).
RECEIPT_SECONDS = 3600
# A commit younger than this may still be on its way to Redis: not judged yet.
SETTLE = dt.timedelta(seconds=20)
# Each run looks again this far behind what the last run covered: a row's timestamp is taken
# before its commit, so a slow transaction can appear behind the last run's end.
OVERLAP = dt.timedelta(seconds=60)
# How far back a scheduler that just started looks (receipts live longer than this).
LOOK_BACK = dt.timedelta(minutes=30)
BATCH = 1000


def receipt_key(namespace: str, change: str) -> str:
    return f"{namespace}:bumped:{change}"


def write_change(write_id: uuid.UUID | str) -> str:
    return f"write:{write_id}"


def chunk_change(job_id: Any, stylist_id: Any, location_id: Any, week_start: Any) -> str:
    return f"chunk:{job_id}:{stylist_id}:{location_id}:{week_start}"


def queue_receipt(pipe: Any, namespace: str, change: str) -> None:
    """Queue last on a post-commit pipeline: Redis runs a pipeline in order, so a receipt
    means the bumps before it ran (one that failed makes the caller drop the receipt)."""
    pipe.set(receipt_key(namespace, change), 1, ex=RECEIPT_SECONDS)


def drop_receipt(container: Container, change: str) -> None:
    """After a failed post-commit pipeline: its receipt must not stand for bumps that failed.
    Best effort (Redis down: the receipt was not written either)."""
    try:
        container.redis_lane.pipeline(
            [("DEL", receipt_key(container.settings.redis_namespace, change))]
        )
    except Exception:
        log.debug("could not drop the receipt of %s", change)


# Commits that changed what customers can book: succeeded writes (a refusal changes nothing),
# generated chunks that created or removed slots.
_RECENT_CHANGES = text(
    """
SELECT 'write:' || id::text FROM scheduler.idempotency_keys
WHERE status = 'succeeded' AND completed_at > :since AND completed_at <= :until
UNION ALL
SELECT 'chunk:' || job_id::text || ':' || stylist_id::text || ':' || location_id::text
       || ':' || week_start::text
FROM scheduler.generation_chunks
WHERE NOT dry_run AND (created > 0 OR removed > 0) AND done_at > :since AND done_at <= :until
"""
)


def window(
    now: dt.datetime, checked_until: dt.datetime | None, settle: dt.timedelta = SETTLE
) -> tuple[dt.datetime, dt.datetime]:
    """The finishing times (since, until] a run checks: from a little before where the last
    run stopped (OVERLAP), never further back than LOOK_BACK (a scheduler that was not the
    leader for a while would otherwise ask for receipts that have expired), up to what has
    had time to settle."""
    start = max(checked_until or now - LOOK_BACK, now - LOOK_BACK)
    return start - OVERLAP, now - settle


@dataclass
class LostBumpWatch:
    """The scheduler's job: what it has checked up to lives with it (a new leader looks back
    LOOK_BACK)."""

    checked_until: dt.datetime | None = None
    settle: dt.timedelta = SETTLE

    def run(self, container: Container) -> dict[str, Any]:
        since, until = window(dt.datetime.now(dt.UTC), self.checked_until, self.settle)
        with container.sessions() as session:
            changes = list(session.scalars(_RECENT_CHANGES, {"since": since, "until": until}))
        missing = self._without_receipt(container, changes)
        if missing:
            self._make_up_for(container, missing)
        self.checked_until = until
        return {"checked": len(changes), "lost": len(missing)}

    @staticmethod
    def _without_receipt(container: Container, changes: list[str]) -> list[str]:
        ns = container.settings.redis_namespace
        missing: list[str] = []
        for i in range(0, len(changes), BATCH):
            batch = changes[i : i + BATCH]
            found = container.redis.mget([receipt_key(ns, c) for c in batch])
            missing += [c for c, r in zip(batch, found, strict=True) if r is None]
        return missing

    @staticmethod
    def _make_up_for(container: Container, missing: list[str]) -> None:
        """One catalogue bump stands for every lost one: each process recomputes what it
        kept. The receipts are written with it so the same changes are not counted again."""
        ns = container.settings.redis_namespace
        log.warning(
            "%d change(s) committed without their version bump (e.g. %s): every kept answer"
            " and day list is recomputed",
            len(missing),
            missing[0],
        )

        def fill(pipe: Any) -> None:
            queue_catalogue_bump(pipe, ns)
            for change in missing:
                queue_receipt(pipe, ns, change)

        run_pipeline(container.redis_lane, fill)
