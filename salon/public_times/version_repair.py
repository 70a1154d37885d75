"""Finding version bumps that never reached Redis, and making up for them.

Every commit that takes or frees time (a write, a generated chunk) bumps versions in Redis after it
commits (`salon.public_times.versions`). A bump can be lost: the worker killed between its commit
and its Redis round trip, or Redis down at that moment. What readers keep (stored answers, each
process's day lists) would then stay wrong until it ages out, so day lists used to be recomputed
every few minutes just in case: most of the read path's background work.

Instead, the round trip that bumps also leaves a receipt (`run_with_receipt`), and the
scheduler looks for recent commits without one (`LostBumpWatch`). However many it finds, it
bumps the catalogue version once: every stored answer is then a miss, and every process
recomputes the day lists it kept, in its refresh thread one at a time while requests use the
old ones for a few seconds (`salon.public_times.day_times.SUSPECT_GRACE`), so even the hundreds of
changes a Redis that lost its data leaves without receipts are one bounded event. Afterwards
nothing is wrong any more. Kept lists then only need a long age limit (for changes made
behind the application's back).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import text

from salon.ports import Announcer
from salon.public_times.offers import queue_catalogue_bump
from salon.public_times.versions import run_pipeline

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


def run_with_receipt(container: Announcer, change: str | None, fill: Callable[[Any], None]) -> None:
    """Run the post-commit pipeline `fill` queues (see `salon.public_times.versions.run_pipeline`)
    with `change`'s receipt last (None: no receipt). Redis runs a pipeline in order, so a receipt
    means the bumps before it ran; when the pipeline fails, its receipt is dropped (best effort:
    with Redis down it was not written either) and the error raised."""
    ns = container.settings.redis_namespace

    def with_receipt(pipe: Any) -> None:
        fill(pipe)
        if change is not None:
            queue_receipt(pipe, ns, change)

    try:
        run_pipeline(container.redis_pipelines, with_receipt)
    except redis.RedisError:
        if change is not None:
            _drop_receipt(container, change)
        raise


def queue_receipt(pipe: Any, namespace: str, change: str) -> None:
    pipe.set(receipt_key(namespace, change), 1, ex=RECEIPT_SECONDS)


def _drop_receipt(container: Announcer, change: str) -> None:
    try:
        container.redis_pipelines.pipeline(
            [("DEL", receipt_key(container.settings.redis_namespace, change))]
        )
    except Exception:
        log.warning("could not drop the receipt of %s; a failed bump may go unnoticed", change)


# Commits that changed what customers can book: succeeded writes (a refusal changes nothing),
# generated chunks that created or removed slots.
_RECENT_CHANGES = text(
    """
SELECT 'write:' || id::text FROM scheduler.idempotency_keys
WHERE status = 'succeeded' AND completed_at > :since AND completed_at <= :until
UNION ALL
SELECT 'chunk:' || job_id::text || ':' || stylist_id::text || ':' || location_id::text
       || ':' || to_char(week_start, 'YYYY-MM-DD')
FROM scheduler.generation_chunks
WHERE NOT dry_run AND (created > 0 OR removed > 0) AND done_at > :since AND done_at <= :until
"""
)


# Where the last run that finished stopped (its recorded detail), for a new leader.
_LAST_CHECKED = text(
    """
SELECT detail ->> 'until' FROM scheduler.scheduler_job_runs
WHERE job = :job AND detail ? 'until'
ORDER BY fired_at DESC LIMIT 1
"""
)


def window(
    now: dt.datetime, checked_until: dt.datetime | None, settle: dt.timedelta = SETTLE
) -> tuple[dt.datetime, dt.datetime, bool]:
    """The finishing times (since, until] a run checks, and whether some went unchecked: from
    a little before where the last run stopped (OVERLAP), never further back than LOOK_BACK
    (older receipts may have expired: a longer gap, e.g. no scheduler for an hour, is
    reported instead), up to what has had time to settle. All times are the database's."""
    gap = checked_until is not None and checked_until < now - LOOK_BACK
    start = max(checked_until or now - LOOK_BACK, now - LOOK_BACK)
    return start - OVERLAP, now - settle, gap


@dataclass
class LostBumpWatch:
    """The scheduler's job `job`: where it has checked up to lives with it, and a new leader
    takes it from the last recorded run."""

    job: str = "find_lost_bumps"
    checked_until: dt.datetime | None = None
    settle: dt.timedelta = SETTLE

    def run(self, container: Announcer) -> dict[str, Any]:
        with container.sessions() as session:
            # The database's clock: the finishing times are written by it.
            now = session.scalar(text("SELECT clock_timestamp()"))
            if self.checked_until is None:
                last = session.scalar(_LAST_CHECKED, {"job": self.job})
                self.checked_until = dt.datetime.fromisoformat(last) if last else None
            since, until, gap = window(now, self.checked_until, self.settle)
            changes = list(session.scalars(_RECENT_CHANGES, {"since": since, "until": until}))
        missing = self._without_receipt(container, changes)
        if missing or gap:
            if gap:
                log.warning("changes between %s and %s were not checked", self.checked_until, since)
            self._make_up_for(container, missing)
        self.checked_until = until
        return {
            "checked": len(changes),
            "lost": len(missing),
            "gap": gap,
            "until": until.isoformat(),
        }

    @staticmethod
    def _without_receipt(container: Announcer, changes: list[str]) -> list[str]:
        ns = container.settings.redis_namespace
        missing: list[str] = []
        for i in range(0, len(changes), BATCH):
            batch = changes[i : i + BATCH]
            found = container.redis.mget([receipt_key(ns, c) for c in batch])
            missing += [c for c, r in zip(batch, found, strict=True) if r is None]
        return missing

    @staticmethod
    def _make_up_for(container: Announcer, missing: list[str]) -> None:
        """One catalogue bump stands for every lost one (and for whatever an unchecked gap held):
        each process recomputes what it kept (`salon.public_times.day_times`: in the background, one
        list at a time). The receipts are written with it so the same changes are not counted
        again."""
        ns = container.settings.redis_namespace
        if missing:
            log.warning(
                "%d change(s) committed without their version bump (e.g. %s): every kept"
                " answer and day list is recomputed (kept day lists in the background)",
                len(missing),
                missing[0],
            )

        def fill(pipe: Any) -> None:
            queue_catalogue_bump(pipe, ns)
            for change in missing:
                queue_receipt(pipe, ns, change)

        run_pipeline(container.redis_pipelines, fill)
