"""`salon api` with hand-written Redis parts off, as over TLS (what each saves /v1/slots).

A gunicorn config module (`bench.scenarios.PATHS`) that sets nothing, only patches the
product in the master before the workers fork: ``BENCH_REDIS_PY`` lists the parts off,
``pipelines`` (RedisPipelines through a redis-py pipeline), ``mirror`` (no version mirror),
``ctypes`` (Python's socket calls where redis_socket calls libc's keeping the GIL)."""

import os

from salon.infra import redis_socket
from salon.infra.redis_pipelines import RedisPipelines
from salon.public_times import stored_answers

OFF = os.environ.get("BENCH_REDIS_PY", "").split(",")
if "pipelines" in OFF:  # `_plain` False, as for a TLS client (what __init__ sets is ignored)
    RedisPipelines._plain = property(lambda s: False, lambda s, v: None)  # type: ignore[assignment]
if "ctypes" in OFF:
    redis_socket._RECV = redis_socket._SEND = None
if "mirror" in OFF:
    stored_answers.version_mirror = lambda client, namespace: None
