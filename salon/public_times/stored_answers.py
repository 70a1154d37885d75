"""Stored answers of the public reads, valid while the versions they were computed under hold.

A stored answer is a Redis hash: the response bytes as sent, the version keys and values it
was computed under, an epoch after which it must not be served, and the state a recomputation
starts from (the shown times of an exposure, the counts of a calendar). One round trip
looks a repeat up: the stored bytes, or on a miss the catalogue version and that state; a hit's
counters are then read in one MGET.
Everything here is optional: with Redis down, answers are computed and not stored.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from salon.infra.redis_pipelines import RedisPipelines
from salon.ports import Reads
from salon.public_times.day_times import DayTimesCache
from salon.public_times.free_times import Offer, Window
from salon.public_times.offers import OfferCache, catalogue_key, queue_catalogue_bump
from salon.public_times.versions import Versions, version_key

log = logging.getLogger(__name__)

# A stored answer's fields, as `lookup` reads them.
_STORED = ("response", "vkeys", "versions", "until", "state")
# A rate-limit counter outlives its one-minute window by a second.
_RATE_TTL = 61


@dataclass(frozen=True)
class Lookup:
    answer: bytes | None
    catalogue_version: int  # -1: unknown (Redis unreachable)
    state: dict[str, Any] | None = None  # what the stored answer was computed from
    rate_count: int | None = None  # the caller's requests this minute, when it was counted


class StoredAnswers:
    """What /v1/slots and /v1/dates share: offers, day free-time lists, stored answers.
    One per API process."""

    def __init__(self, container: Reads) -> None:
        self.container = container
        self.redis = container.redis
        self.ns = container.settings.redis_namespace
        self.offers = OfferCache(container)
        self.live = DayTimesCache(container)
        # Plain commands, not scripts: a Lua call cost Redis ~56 us of CPU, ~40 of it the
        # script's own overhead (docs/performance.md).
        self._pipelines = RedisPipelines(container.redis, name="salon-reads")

    def window(self, now: dt.datetime) -> Window:
        settings = self.container.settings
        return Window.from_now(now, settings.min_notice_minutes, settings.booking_horizon_days)

    def lookup(self, key: str, now: dt.datetime, rate_key: str | None = None) -> Lookup:
        """The stored answer under `key` if still valid; with `rate_key`, also count the
        caller's request (the rate limiter's counter) in the same round trip.

        Valid: not past its `until`, and every counter it was computed under still at the
        value it was computed under (read from Redis after the answer: a change in between
        makes it a miss, never a stale hit)."""
        epoch = int(now.timestamp())
        commands: list[tuple[Any, ...]] = [
            ("HMGET", key, *_STORED),
            ("GET", catalogue_key(self.ns)),
        ]
        if rate_key:
            # Counting a request twice (a retried round trip) is harmless.
            commands += [("INCR", rate_key), ("EXPIRE", rate_key, _RATE_TTL)]
        try:
            replies = self._pipelines.pipeline(commands)
        except redis.RedisError:
            return Lookup(None, -1)
        (response, vkeys, versions, until, state), catalogue = replies[0], replies[1]
        count = int(replies[2]) if rate_key else None
        if response is not None and until is not None and int(until) > epoch:
            version_keys = vkeys.decode().split()
            current = self._current(version_keys)
            if current is not None and ",".join(map(str, current)) == versions.decode():
                return Lookup(bytes(response), 0, rate_count=count)
        stored = orjson.loads(state) if state is not None else None
        return Lookup(None, int(catalogue or 0), stored, rate_count=count)

    def _current(self, keys: list[str]) -> tuple[int, ...] | None:
        """The counters' values now (a missing one is 0); None when Redis cannot tell."""
        try:
            raw = self._pipelines.pipeline([("MGET", *keys)])[0]
        except redis.RedisError:
            return None
        return tuple(int(v or 0) for v in raw)

    def offer(
        self,
        catalogue_version: int,
        location_id: uuid.UUID,
        service_id: uuid.UUID,
        stylist_id: uuid.UUID | None,
    ) -> tuple[Offer, Versions | None]:
        """The offer and the versions it is current under (None: Redis cannot tell)."""
        o = self.offers.get(location_id, service_id, stylist_id, catalogue_version)
        versions = self.versions(o)
        if versions is not None and versions.catalogue != catalogue_version:
            # The catalogue changed since the lookup: read the offer as it is now.
            o = self.offers.get(location_id, service_id, stylist_id, versions.catalogue)
            versions = self.versions(o)
        return o, versions

    def version_keys(self, stylists: list[str]) -> list[str]:
        return [catalogue_key(self.ns), *(version_key(self.ns, s) for s in stylists)]

    def versions(self, o: Offer) -> Versions | None:
        stylists = list(o.stylist_keys)
        keys = self.version_keys(stylists)
        try:
            raw = self.redis.mget(keys)
            if raw[0] is None:
                # A Redis that lost its data (a restart) also lost the counters, which would
                # start again from 0 and could match what a process kept from before. The
                # catalogue counter starts at a random value instead: a process that kept
                # anything under the old one sees another catalogue and recomputes it all.
                pipe = self.redis.pipeline(transaction=False)
                queue_catalogue_bump(pipe, self.ns)
                pipe.execute()
                raw = self.redis.mget(keys)
        except redis.RedisError:
            return None
        values = [int(v or 0) for v in raw]
        return Versions(values[0], tuple(zip(stylists, values[1:], strict=True)))

    def store(
        self,
        key: str,
        answer: bytes,
        versions: Versions | None,
        *,
        until: dt.datetime,
        ttl: int,
        state: dict[str, Any],
        also: Sequence[tuple[Any, ...]] = (),
    ) -> None:
        """Store an answer (when the versions are known: else nothing can tell it is still
        current) and the commands `also` (a new exposure's ledger entry) in one transaction.

        Sent without waiting for Redis to answer: the request goes on to its response; the
        reply is read, and a refusal logged, on the thread's next call (under that call's
        request id). Sent before the response, so a repeat asked after it finds it, unless
        Redis gets the repeat's lookup first (another connection: a resent packet to a remote
        Redis, or its I/O threads); that repeat is then computed again, the same times from
        the same seed, and the ledger counts the exposure twice. Best effort: with Redis
        down, logged. Not sent twice."""
        commands = [*self._answer_commands(key, answer, versions, until, ttl, state), *also]
        if not commands:
            return
        try:
            self._pipelines.send_later(commands, transaction=True)
        except redis.RedisError:
            log.warning("could not store an answer")

    def _answer_commands(
        self,
        key: str,
        answer: bytes,
        versions: Versions | None,
        until: dt.datetime,
        ttl: int,
        state: dict[str, Any],
    ) -> list[tuple[Any, ...]]:
        if versions is None:
            return []
        version_keys = self.version_keys([s for s, _ in versions.stylists])
        fields: dict[str, Any] = {
            "response": answer,
            "vkeys": " ".join(version_keys),
            "versions": ",".join(map(str, versions.values())),
            "until": int(until.timestamp()),
            "state": orjson.dumps({**state, "versions": versions.as_doc()}),
        }
        # Every stored answer has the same fields, so HSET replaces a previous one whole.
        return [
            ("HSET", key, *(x for pair in fields.items() for x in pair)),
            ("EXPIRE", key, max(1, ttl)),
        ]


def stream_entry(stream: str, entry: dict[str, str], min_id: str) -> tuple[Any, ...]:
    """An XADD of `entry` to `stream`, trimming entries older than `min_id` (roughly)."""
    return ("XADD", stream, "MINID", "~", min_id, "*", *(x for p in entry.items() for x in p))
