"""Stored answers of the public reads, valid while the versions they were computed under hold.

A stored answer is a Redis hash: the response bytes as sent, the version keys and values it
was computed under, an epoch after which it must not be served, and the state a recomputation
starts from (the shown times of an exposure, the counts of a calendar). One script call
answers a repeat: on a hit the stored bytes; on a miss the catalogue version and that state.
Everything here is optional: with Redis down, answers are computed and not stored.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import redis

from salon.free_times import Offer, Window
from salon.live_times import LiveTimes
from salon.offers import OfferCache, catalogue_key, queue_catalogue_bump
from salon.resp import is_plain
from salon.script_lane import ScriptLane
from salon.version_mirror import VersionMirror
from salon.versions import Versions, version_key


def version_mirror(client: redis.Redis, namespace: str) -> VersionMirror | None:
    """A mirror of the namespace's counters (None over TLS: the mirror speaks plain RESP)."""
    if not is_plain(client):
        return None
    pool = client.connection_pool
    prefixes = [catalogue_key(namespace), version_key(namespace, "")]
    name = "salon-versions-" + "".join(c if c.isalnum() else "-" for c in namespace)
    return VersionMirror(dict(pool.connection_kwargs), prefixes, name)


if TYPE_CHECKING:
    from salon.bootstrap import Container

log = logging.getLogger(__name__)

# Stored answers this process keeps to answer repeats without Redis (a few KB each).
MAX_KEPT_ANSWERS = 8192

# KEYS[1]: the answer, KEYS[2]: the catalogue version, KEYS[3] (optional): the caller's
# rate-limit counter of this minute, counted in the same call. ARGV[1]: now (epoch seconds).
_LOOKUP = """
local count = 0
if KEYS[3] then
  count = redis.call('INCR', KEYS[3])
  if count == 1 then redis.call('EXPIRE', KEYS[3], 61) end
end
local h = redis.call('HMGET', KEYS[1], 'response', 'vkeys', 'versions', 'until', 'state')
local catalogue = redis.call('GET', KEYS[2]) or '0'
if h[1] and tonumber(h[4]) > tonumber(ARGV[1]) then
  local keys = {}
  for k in string.gmatch(h[2], '%S+') do keys[#keys + 1] = k end
  local current = redis.call('MGET', unpack(keys))
  local parts = {}
  for i, v in ipairs(current) do parts[i] = v or '0' end
  if table.concat(parts, ',') == h[3] then return {1, count, h[1], h[2], h[3], h[4]} end
end
return {0, count, catalogue, h[5]}
"""


# KEYS[1]: the answer, KEYS[2]: a stream. ARGV: the stream's MINID, the answer's TTL, how many
# answer fields (0: none to store), then the answer's fields and values, then the entry's.
_STORE_WITH_ENTRY = """
local n = tonumber(ARGV[3])
if n > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n))
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[1], '*', unpack(ARGV, 4 + 2 * n))
return n
"""


@dataclass(frozen=True)
class KeptAnswer:
    """A stored answer this process has seen, valid while the mirrored counters agree."""

    response: bytes
    version_keys: tuple[str, ...]
    versions: tuple[int, ...]
    until: int  # epoch seconds


@dataclass(frozen=True)
class Lookup:
    answer: bytes | None
    catalogue_version: int  # -1: unknown (Redis unreachable)
    state: dict[str, Any] | None = None  # what the stored answer was computed from
    rate_count: int | None = None  # the caller's requests this minute, when it was counted


class PublicReads:
    """What /v1/slots and /v1/dates share: offers, day free-time lists, stored answers.
    One per API process."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.redis = container.redis
        self.ns = container.settings.redis_namespace
        self.offers = OfferCache(container)
        self.live = LiveTimes(container)
        # Counting a rate-limited request twice is harmless; a ledger entry twice is not.
        self._lookup = ScriptLane(container.redis, _LOOKUP, retry=True)
        self._store_with_entry = ScriptLane(container.redis, _STORE_WITH_ENTRY, retry=False)
        self.mirror = version_mirror(container.redis, self.ns)
        self._kept: OrderedDict[str, KeptAnswer] = OrderedDict()
        self._kept_lock = threading.Lock()

    def window(self, now: dt.datetime) -> Window:
        settings = self.container.settings
        return Window.from_now(now, settings.min_notice_minutes, settings.booking_horizon_days)

    def lookup(self, key: str, now: dt.datetime, rate_key: str | None = None) -> Lookup:
        """The stored answer under `key` if still valid; with `rate_key`, also count the
        caller's request (the rate limiter's counter) in the same round trip."""
        epoch = int(now.timestamp())
        if rate_key is None and self.mirror is not None:
            kept = self._kept_answer(key, epoch)
            if kept is not None:
                return Lookup(kept, 0)
        token = self.mirror.token() if self.mirror is not None else None
        keys = [key, catalogue_key(self.ns), *([rate_key] if rate_key else [])]
        try:
            reply = self._lookup(keys, [epoch])
        except redis.RedisError:
            return Lookup(None, -1)
        count = int(reply[1]) if rate_key else None
        if int(reply[0]) == 1:
            answer = bytes(reply[2])
            if self.mirror is not None:
                version_keys = reply[3].decode().split()
                versions = [int(v) for v in reply[4].split(b",")]
                self.mirror.learn(token, version_keys, versions)
                self._keep(
                    key, KeptAnswer(answer, tuple(version_keys), tuple(versions), int(reply[5]))
                )
            return Lookup(answer, 0, rate_count=count)
        state = orjson.loads(reply[3]) if reply[3] is not None else None
        return Lookup(None, int(reply[2]), state, rate_count=count)

    def _kept_answer(self, key: str, epoch: int) -> bytes | None:
        with self._kept_lock:
            kept = self._kept.get(key)
        if kept is None or epoch >= kept.until or self.mirror is None:
            return None
        return kept.response if self.mirror.values(kept.version_keys) == kept.versions else None

    def _keep(self, key: str, kept: KeptAnswer) -> None:
        with self._kept_lock:
            self._kept[key] = kept
            self._kept.move_to_end(key)
            while len(self._kept) > MAX_KEPT_ANSWERS:
                self._kept.popitem(last=False)

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
        # Counters this process is told about when they change need no round trip.
        known = self.mirror.values(keys) if self.mirror is not None else None
        if known is not None:
            return Versions(known[0], tuple(zip(stylists, known[1:], strict=True)))
        token = self.mirror.token() if self.mirror is not None else None
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
                token = None
                raw = self.redis.mget(keys)
        except redis.RedisError:
            return None
        values = [int(v or 0) for v in raw]
        if self.mirror is not None:
            self.mirror.learn(token, keys, values)
        return Versions(values[0], tuple(zip(stylists, values[1:], strict=True)))

    def store(
        self,
        pipe: Any,
        key: str,
        answer: bytes,
        versions: Versions,
        *,
        until: dt.datetime,
        ttl: int,
        state: dict[str, Any],
    ) -> None:
        fields = self._stored_fields(key, answer, versions, until, state)
        pipe.delete(key)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, max(1, ttl))

    def store_with_entry(
        self,
        key: str,
        answer: bytes,
        versions: Versions | None,
        *,
        until: dt.datetime,
        ttl: int,
        state: dict[str, Any],
        stream: str,
        entry: dict[str, str],
        min_id: str,
    ) -> None:
        """`store` (when the versions are known) and a stream entry, in one script call:
        a new exposure and its ledger entry. Best effort: with Redis down, neither."""
        fields = (
            self._stored_fields(key, answer, versions, until, state) if versions is not None else {}
        )
        args: list[Any] = [min_id, max(1, ttl), len(fields)]
        for pairs in (fields, entry):
            for name, value in pairs.items():
                args += [name, value]
        try:
            self._store_with_entry([key, stream], args)
        except redis.RedisError:
            log.warning("could not store an answer or its stream entry")

    def _stored_fields(
        self,
        key: str,
        answer: bytes,
        versions: Versions,
        until: dt.datetime,
        state: dict[str, Any],
    ) -> dict[str, Any]:
        version_keys = self.version_keys([s for s, _ in versions.stylists])
        fields: dict[str, Any] = {
            "response": answer,
            "vkeys": " ".join(version_keys),
            "versions": ",".join(map(str, versions.values())),
            "until": int(until.timestamp()),
            "state": orjson.dumps({**state, "versions": versions.as_doc()}),
        }
        if self.mirror is not None:
            kept = KeptAnswer(answer, tuple(version_keys), versions.values(), fields["until"])
            self._keep(key, kept)
        return fields
