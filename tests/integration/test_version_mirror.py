"""The version mirror against a real Redis: what it learned is forgotten as soon as Redis
changes it, a read racing a change learns nothing, and a lost connection trusts nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from salon.public_times.stored_answers import version_mirror
from salon.public_times.version_mirror import VersionMirror


def live(mirror: VersionMirror, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        token = mirror.token()
        if token is not None:
            return token
        time.sleep(0.02)
    raise AssertionError("the mirror never went live")


@pytest.fixture
def namespace() -> str:
    return f"mirror-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(settings) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    c = redis.Redis.from_url(settings.redis_url)
    yield c
    c.close()


@pytest.fixture
def mirror(client, namespace) -> Iterator[VersionMirror]:  # type: ignore[no-untyped-def]
    m = version_mirror(client, namespace)
    assert m is not None
    yield m
    m.stop()


def test_a_learned_counter_is_forgotten_before_the_write_that_changed_it_returns(
    mirror, client, namespace
):
    key = f"{namespace}:stylist-version:{uuid.uuid4()}"
    client.set(key, 7)
    mirror.learn(live(mirror), [key], [7])
    assert mirror.values([key]) == (7,)
    for _ in range(20):  # no sleeping: Redis sends the invalidation before the INCR's reply
        value = client.incr(key)
        assert mirror.values([key]) is None
        mirror.learn(mirror.token(), [key], [value])
        assert mirror.values([key]) == (value,)
    other = f"{namespace}:unrelated"
    client.incr(other)
    assert mirror.values([key]) == (value,)  # keys outside the prefixes change nothing


def test_a_read_racing_a_change_learns_nothing(mirror, client, namespace):
    key = f"{namespace}:catalogue-version"
    client.set(key, 1)
    token = live(mirror)
    stale = int(client.get(key) or 0)
    client.incr(key)  # changed between the read and the learning
    mirror.learn(token, [key], [stale])
    assert mirror.values([key]) is None


def test_a_lost_connection_trusts_nothing_until_it_is_back(mirror, client, namespace):
    key = f"{namespace}:catalogue-version"
    client.set(key, 3)
    mirror.learn(live(mirror), [key], [3])
    assert mirror.values([key]) == (3,)
    ours = [c for c in client.client_list() if c.get("name") == mirror.name]
    assert len(ours) == 1
    client.client_kill_filter(_id=ours[0]["id"])
    deadline = time.monotonic() + 2
    while mirror.values([key]) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mirror.values([key]) is None
    token = live(mirror)  # it reconnects by itself, having forgotten everything
    assert mirror.values([key]) is None
    mirror.learn(token, [key], [3])
    assert mirror.values([key]) == (3,)
