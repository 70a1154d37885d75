"""`salon api` with hand-written Redis parts off, as over TLS (what each saves /v1/slots).

A gunicorn config module (`bench.scenarios.PATHS`) that sets nothing, only patches the
product in the master before the workers fork: ``BENCH_REDIS_PY`` lists the parts off,
``pipelines`` (RedisPipelines through a redis-py pipeline), ``mirror`` (no version mirror)."""

import os

import redis

from salon.infra.redis_pipelines import RedisPipelines
from salon.public_times import stored_answers

OFF = os.environ.get("BENCH_REDIS_PY", "").split(",")
if "pipelines" in OFF:
    _init = RedisPipelines.__init__

    def _redis_py(self: RedisPipelines, client: redis.Redis, name: str = "") -> None:
        _init(self, client, *([name] if name else []))
        self._plain = False  # what it sets for a TLS client

    RedisPipelines.__init__ = _redis_py  # type: ignore[method-assign]
if "mirror" in OFF:
    stored_answers.version_mirror = lambda client, namespace: None
