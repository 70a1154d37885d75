"""Which stylists' time changed, and on which days: what cached answers are checked against.

After every commit that takes or frees a stylist's time, `bump_versions` increments the
stylist's version counter and records in a sorted set, per stylist, each UTC date the write
touched, scored with that version ("*" when the write does not say which dates: all of them).
A cached answer carries the versions it was computed under; when one moved, `changed_dates`
says which dates did, so a 90-day calendar recomputes the few days a booking touched
instead of all 90, and a day's free times stay shared while bookings land on other days.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from salon.infra.redis_pipelines import RedisPipelines
from salon.ports import Announcer

log = logging.getLogger(__name__)

# A stylist, and the instants [start, end) of their time a write took or freed.
TimeChange = tuple[uuid.UUID, dt.datetime, dt.datetime]

EVERY_DATE = "*"
# Dates older than this are dropped from a stylist's change set (nobody books the past).
KEEP_PAST_DAYS = 3
# A local date's free starts depend on instants up to a day (a service's length) beyond it,
# in any zone: a change on a UTC date can alter local dates this far on either side.
REACH_DAYS = 2

# KEYS: the version counter, the change set. ARGV[1]: dates before it are dropped; ARGV[2..]:
# the UTC dates touched (none: every date).
_BUMP = """
local v = redis.call('INCR', KEYS[1])
if #ARGV == 1 then
  redis.call('ZADD', KEYS[2], v, '*')
else
  for i = 2, #ARGV do redis.call('ZADD', KEYS[2], v, ARGV[i]) end
end
redis.call('ZREMRANGEBYLEX', KEYS[2], '[0', '(' .. ARGV[1])
return v
"""


@dataclass(frozen=True)
class Versions:
    """The catalogue's version and each stylist's (sorted by id) as read at one moment."""

    catalogue: int
    stylists: tuple[tuple[str, int], ...]

    def values(self) -> tuple[int, ...]:
        return (self.catalogue, *(v for _, v in self.stylists))

    def as_doc(self) -> dict[str, Any]:
        return {"catalogue": self.catalogue, "stylists": dict(self.stylists)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Versions:
        return cls(
            int(doc["catalogue"]), tuple(sorted((k, int(v)) for k, v in doc["stylists"].items()))
        )

    def moved_since(self, older: Versions) -> dict[str, int] | None:
        """The stylists whose version moved since `older`, with their older version; None
        when the catalogue or the set of stylists differ (nothing can be reused)."""
        if self.catalogue != older.catalogue or [s for s, _ in self.stylists] != [
            s for s, _ in older.stylists
        ]:
            return None
        before = dict(older.stylists)
        return {s: before[s] for s, v in self.stylists if v != before[s]}


_BUMP_SHA = hashlib.sha1(_BUMP.encode()).hexdigest()


def version_key(namespace: str, stylist_id: uuid.UUID | str) -> str:
    return f"{namespace}:stylist-version:{stylist_id}"


def changes_key(namespace: str, stylist_id: uuid.UUID | str) -> str:
    return f"{namespace}:stylist-changes:{stylist_id}"


def utc_dates(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    first = start.astimezone(dt.UTC).date()
    last = (
        (max(end, start + dt.timedelta(microseconds=1)) - dt.timedelta(microseconds=1))
        .astimezone(dt.UTC)
        .date()
    )
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def bump_versions(
    container: Announcer,
    stylist_ids: Iterable[uuid.UUID | str],
    changes: Iterable[TimeChange] = (),
) -> None:
    """After a commit that took or freed time: `changes` name the instants per stylist; a
    stylist in `stylist_ids` without any change is recorded as changed on every date."""
    stylist_ids, changes = list(stylist_ids), list(changes)
    ns = container.settings.redis_namespace
    try:
        run_pipeline(
            container.redis_pipelines, lambda pipe: queue_bumps(pipe, ns, stylist_ids, changes)
        )
    except redis.RedisError:
        # Cached answers then show a taken time until they expire: a hold on it answers 409.
        log.warning("could not bump the versions of %s", stylist_ids or changes)


def queue_bumps(
    pipe: Any,
    namespace: str,
    stylist_ids: Iterable[uuid.UUID | str],
    changes: Iterable[TimeChange] = (),
) -> None:
    """Queue on `pipe` (run it with `run_pipeline`) what `bump_versions` does."""
    dates: dict[str, set[str]] = {}
    for changed, start, end in changes:
        dates.setdefault(str(changed), set()).update(d.isoformat() for d in utc_dates(start, end))
    for everything in stylist_ids:
        dates.setdefault(str(everything), set())
    _queue(pipe, namespace, dates)


def _queue(pipe: Any, namespace: str, dates: Mapping[str, set[str]]) -> None:
    cutoff = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=KEEP_PAST_DAYS)).isoformat()
    for stylist, touched in dates.items():
        keys = (version_key(namespace, stylist), changes_key(namespace, stylist))
        # EVALSHA, not a registered Script: a pipeline holding Script objects asks Redis
        # whether they exist first, an extra round trip at every write.
        pipe.evalsha(_BUMP_SHA, 2, *keys, cutoff, *sorted(touched))


class Commands:
    """Collects what a redis-py pipeline would queue, for a `RedisPipelines` to send: the
    commands the writes' post-commit pipelines use (`queue_bumps`, `queue_catalogue_bump`,
    the done signal, the receipt)."""

    def __init__(self) -> None:
        self.queued: list[tuple[Any, ...]] = []

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> None:
        self.queued.append(("EVALSHA", sha, numkeys, *keys_and_args))

    def set(self, key: str, value: Any, *, nx: bool = False, ex: int | None = None) -> None:
        self.queued.append(
            ("SET", key, value, *(["NX"] if nx else []), *(["EX", ex] if ex else []))
        )

    def incr(self, key: str) -> None:
        self.queued.append(("INCR", key))

    def lpush(self, key: str, *values: Any) -> None:
        self.queued.append(("LPUSH", key, *values))

    def expire(self, key: str, seconds: int) -> None:
        self.queued.append(("EXPIRE", key, seconds))


def run_pipeline(target: redis.Redis | RedisPipelines, fill: Callable[[Any], None]) -> list[Any]:
    """Run a pipeline that `fill` queues (bumps among other things), on a redis-py client or
    a pipeline. If Redis lost the bump script (a restart), load it and run the pipeline again:
    its bumps all failed, and what else it holds may run twice (the writes' done signals do
    no harm twice)."""
    for attempt in (1, 2):
        try:
            if isinstance(target, RedisPipelines):
                commands = Commands()
                fill(commands)
                return target.pipeline(commands.queued)
            pipe = target.pipeline(transaction=False)
            fill(pipe)
            return list(pipe.execute())
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            if isinstance(target, RedisPipelines):
                target.pipeline([("SCRIPT", "LOAD", _BUMP)])
            else:
                target.script_load(_BUMP)
    raise AssertionError("unreachable")


def changed_dates(
    client: redis.Redis, namespace: str, since: Mapping[str, int]
) -> set[dt.date] | None:
    """The UTC dates whose time changed after the given version of each stylist; None when
    any change covered every date (or Redis cannot tell)."""
    if not since:
        return set()
    try:
        pipe = client.pipeline(transaction=False)
        for stylist_id, version in since.items():
            pipe.zrangebyscore(changes_key(namespace, stylist_id), f"({version}", "+inf")
        replies: list[Any] = pipe.execute()
    except redis.RedisError:
        return None
    found: set[dt.date] = set()
    for members in replies:
        for member in members:
            text = member.decode()
            if text == EVERY_DATE:
                return None
            found.add(dt.date.fromisoformat(text))
    return found


def local_dates_reached(utc: Iterable[dt.date]) -> set[dt.date]:
    """Every local date whose free starts a change on these UTC dates may alter."""
    reach = range(-REACH_DAYS, REACH_DAYS + 1)
    return {d + dt.timedelta(days=i) for d in utc for i in reach}


def dirty_local_dates(
    client: redis.Redis, namespace: str, current: Versions, older: Versions
) -> set[dt.date] | None:
    """The local dates an answer computed under `older` may have wrong now; None: all."""
    moved = current.moved_since(older)
    if moved is None:
        return None
    changed = changed_dates(client, namespace, moved)
    return None if changed is None else local_dates_reached(changed)
