"""Actor module for the Dramatiq baseline: one actor that does nothing.

Run by ``dramatiq bench.noop_actors``; the broker's Redis URL and namespace come from the
environment so each benchmark run uses keys of its own and never touches the app's queues.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

QUEUE = "bench_noop"
ACTOR = "noop"


def make_broker(url: str, namespace: str) -> RedisBroker:
    """The one place the (untyped) broker is built; the producer side uses it too."""
    return RedisBroker(url=url, namespace=namespace)  # type: ignore[no-untyped-call]


broker = make_broker(
    os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    os.environ.get("BENCH_DRAMATIQ_NAMESPACE", "salon-bench"),
)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE, max_retries=0)
def noop() -> None:
    """Nothing: the drain rate then measures broker + worker overhead per message alone."""
