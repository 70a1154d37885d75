"""`salon api` with hand-written Redis parts off, as over TLS (what each saves /v1/slots).

A gunicorn config module (`bench.scenarios.PATHS`) that sets nothing, only patches the
product in the master before the workers fork: ``BENCH_REDIS_PY`` lists the parts off,
``pipelines`` (RedisPipelines through a redis-py pipeline)."""

import os

from salon.infra.redis_pipelines import RedisPipelines

OFF = os.environ.get("BENCH_REDIS_PY", "").split(",")
if "pipelines" in OFF:  # `_plain` False, as for a TLS client (what __init__ sets is ignored)
    RedisPipelines._plain = property(lambda s: False, lambda s, v: None)  # type: ignore[assignment]
