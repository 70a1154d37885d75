"""What a location offers, snapshotted per process so a public read runs no catalogue query.

`offer()` (four queries: location, service, who offers it, which stylists) is the same for
every customer asking about a service. Each API process keeps the answers it has read, each
tagged with the catalogue version it was read under: a counter in Redis that every catalogue
write bumps after it commits (`queue_catalogue_bump`, sent with the write's done signal). A
reader fetches the counter with the stylists' versions it needs anyway, so a change of staff
or services shows at the next request in every process; the snapshot's age is also capped.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from typing import Any

from cachetools import TTLCache

from salon.infra.single_flight import SingleFlight
from salon.ports import HasSessions
from salon.public_times.free_times import Offer, offer

# Lost bumps are made up for by the scheduler (`salon.public_times.version_repair`); this only
# bounds changes made behind the application's back.
MAX_AGE_SECONDS = 1800.0
MAX_ENTRIES = 4096

OfferKey = tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]


def catalogue_key(namespace: str) -> str:
    return f"{namespace}:catalogue-version"


def queue_catalogue_bump(pipe: Any, namespace: str) -> None:
    # Started at a random value, never at 0: after a Redis restart the counter must not come back to
    # a value some process kept answers under (see `salon.public_times.stored_answers`).
    pipe.set(catalogue_key(namespace), secrets.randbits(48), nx=True)
    pipe.incr(catalogue_key(namespace))


class OfferCache:
    def __init__(self, container: HasSessions, *, max_entries: int = MAX_ENTRIES) -> None:
        self.container = container
        self.max_entries = max_entries
        # Least recently used first out, each at most MAX_AGE_SECONDS old; not thread-safe.
        self._entries: TTLCache[OfferKey, tuple[Offer, int]] = TTLCache(
            max_entries, MAX_AGE_SECONDS, timer=time.monotonic
        )
        self._lock = threading.Lock()
        self._flights: SingleFlight[Offer] = SingleFlight()

    def get(
        self,
        location_id: uuid.UUID,
        service_id: uuid.UUID,
        stylist_id: uuid.UUID | None,
        catalogue_version: int,
    ) -> Offer:
        """The offer as of `catalogue_version`; raises NotFound like `offer()` (not cached:
        a location that does not exist yet may exist at the next request)."""
        key = (location_id, service_id, stylist_id)
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[1] == catalogue_version:
            return hit[0]
        # After a catalogue change every request re-reads its offer: one read per offer at a
        # time, which the requests asking meanwhile share.
        return self._flights.run(
            (key, catalogue_version),
            lambda: self._read(key, location_id, service_id, stylist_id, catalogue_version),
        )

    def _read(
        self,
        key: OfferKey,
        location_id: uuid.UUID,
        service_id: uuid.UUID,
        stylist_id: uuid.UUID | None,
        catalogue_version: int,
    ) -> Offer:
        with self.container.sessions() as session:
            found = offer(session, location_id, service_id, stylist_id)
        with self._lock:
            self._entries[key] = (found, catalogue_version)
        return found
