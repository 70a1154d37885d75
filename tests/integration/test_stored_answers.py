"""Stored answers of the public reads (`salon.public_times.stored_answers`) against a real Redis: a
hit only while every counter it was computed under holds and its time lasts; the rate-limit count
in the same round trip; an answer and its ledger entry stored together, once."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from salon.bootstrap import Container, bootstrap
from salon.public_times.offers import catalogue_key
from salon.public_times.stored_answers import StoredAnswers, stream_entry
from salon.public_times.versions import Versions, version_key

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def client(settings) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    c = redis.Redis.from_url(settings.redis_url)
    yield c
    c.close()


@pytest.fixture
def reads(container: Container) -> StoredAnswers:
    return StoredAnswers(container)


def _store(reads: StoredAnswers, key: str, stylist: str, *, until: dt.datetime) -> str:
    ns = reads.ns
    catalogue = int(reads.redis.get(catalogue_key(ns)) or 0)
    version = int(reads.redis.get(version_key(ns, stylist)) or 0)
    stream = f"{ns}:test-ledger:{uuid.uuid4().hex}"
    reads.store(
        key,
        b'{"answer": 1}',
        Versions(catalogue, ((stylist, version),)),
        until=until,
        ttl=60,
        state={"shown": ["a"]},
        also=[stream_entry(stream, {"who": "me"}, "0-0")],
    )
    return stream


def test_an_answer_is_a_hit_until_its_stylist_changes(reads: StoredAnswers, client: redis.Redis):
    key, stylist = f"{reads.ns}:answer:{uuid.uuid4().hex}", str(uuid.uuid4())
    stream = _store(reads, key, stylist, until=NOW + dt.timedelta(minutes=5))
    assert client.xlen(stream) == 1  # its ledger entry, once
    assert 0 < client.ttl(key) <= 60
    for _ in range(3):
        assert reads.lookup(key, NOW).answer == b'{"answer": 1}'
    client.incr(version_key(reads.ns, stylist))  # a write took some of the stylist's time
    missed = reads.lookup(key, NOW)
    assert missed.answer is None
    assert missed.state is not None and missed.state["shown"] == ["a"]
    assert missed.catalogue_version == int(client.get(catalogue_key(reads.ns)) or 0)


def test_an_answer_past_its_time_is_a_miss(reads: StoredAnswers):
    key, stylist = f"{reads.ns}:answer:{uuid.uuid4().hex}", str(uuid.uuid4())
    _store(reads, key, stylist, until=NOW + dt.timedelta(seconds=30))
    assert reads.lookup(key, NOW).answer is not None
    assert reads.lookup(key, NOW + dt.timedelta(seconds=31)).answer is None


def test_a_counted_lookup_counts_the_caller_in_the_same_round_trip(
    reads: StoredAnswers, client: redis.Redis
):
    key, stylist = f"{reads.ns}:answer:{uuid.uuid4().hex}", str(uuid.uuid4())
    _store(reads, key, stylist, until=NOW + dt.timedelta(minutes=5))
    rate = f"{reads.ns}:rate:test-{uuid.uuid4().hex}"
    counts = [reads.lookup(key, NOW, rate).rate_count for _ in range(3)]
    assert counts == [1, 2, 3]
    assert 0 < client.ttl(rate) <= 61
    assert reads.lookup(f"{key}-absent", NOW, rate).rate_count == 4  # a miss counts too


def test_redis_down_is_an_unknown_catalogue_not_an_error(settings):  # type: ignore[no-untyped-def]
    down = bootstrap(settings.with_(redis_url="redis://127.0.0.1:1/0"))
    try:
        reads = StoredAnswers(down)
        started = time.monotonic()
        found = reads.lookup("any", NOW, "rate")
        assert found.answer is None and found.catalogue_version == -1
        reads.store(  # best effort: logged, not raised
            "any", b"{}", None, until=NOW, ttl=1, state={}, also=[stream_entry("s", {}, "0-0")]
        )
        assert time.monotonic() - started < 2
    finally:
        down.close()
