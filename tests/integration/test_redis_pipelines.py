"""Calls on plain per-thread connections (`salon.infra.redis_pipelines`), against a real Redis: the
same replies as redis-py, and redis-py's errors when Redis restarts, hangs or is not there."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from salon.infra.redis_pipelines import RedisPipelines

ECHO = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1]), redis.call('GET', 'missing')}"


class ScriptLane:
    """A script called through a lane: one command whose reply shows which call it was."""

    def __init__(
        self, client: redis.Redis, source: str, *, retry: bool, name: str = "salon-reads"
    ) -> None:
        self.lane, self.source, self.retry = RedisPipelines(client, name=name), source, retry

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        command = ("EVAL", self.source, len(keys), *keys, *args)
        return self.lane.pipeline([command], retry=self.retry)[0]


@pytest.fixture
def client(settings) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    c = redis.Redis.from_url(settings.redis_url)
    yield c
    c.close()


@pytest.fixture
def key(client: redis.Redis) -> Iterator[str]:
    k = f"lane-test:{uuid.uuid4().hex}"
    yield k
    client.delete(k)


def kill_lane_connections(client: redis.Redis, name: str) -> int:
    killed = 0
    for info in client.client_list():
        if info.get("name") == name:
            killed += int(client.execute_command("CLIENT", "KILL", "ID", info["id"]))
    return killed


def test_replies_are_redis_pys(client: redis.Redis, key: str) -> None:
    lane = ScriptLane(client, ECHO, retry=True)
    via_redis_py = client.register_script(ECHO)
    assert lane([key], ["x"]) == [key.encode(), b"x", 1, None]
    assert via_redis_py(keys=[key], args=["x"]) == [key.encode(), b"x", 2, None]
    assert lane([key], [7]) == [key.encode(), b"7", 3, None]


def test_a_script_error_is_a_response_error(client: redis.Redis, key: str) -> None:
    lane = ScriptLane(client, "return redis.error_reply('no such thing')", retry=True)
    with pytest.raises(redis.ResponseError, match="no such thing"):
        lane([key], [])


def test_a_connection_closed_while_idle_is_replaced_before_the_call(
    client: redis.Redis, key: str
) -> None:
    name = f"lane-{uuid.uuid4().hex[:8]}"
    retrying = ScriptLane(client, ECHO, retry=True, name=name)
    once = ScriptLane(client, ECHO, retry=False, name=name)
    assert retrying([key], ["a"])[2] == 1
    assert once([key], ["a"])[2] == 2
    assert kill_lane_connections(client, name) == 2
    time.sleep(0.1)  # the kill's FIN reaches the sockets
    # Both see the closed socket before sending: even the call that must not run twice works.
    assert once([key], ["b"])[2] == 3
    assert retrying([key], ["b"])[2] == 4


class OneAnswerServer:
    """A Redis stand-in whose every connection answers its first two commands (the lane's
    CLIENT SETNAME and one EVAL) and then closes on the third, unanswered: a server that
    died with the call in flight, which a real Redis cannot be made to do on cue."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        import hiredis

        reader = hiredis.Reader()
        replies = [b"+OK\r\n", b":42\r\n"]
        with conn:
            while replies:
                data = conn.recv(65536)
                if not data:
                    return
                reader.feed(data)
                while reader.gets() is not False and replies:
                    conn.sendall(replies.pop(0))
            conn.recv(65536)  # the third command: read, never answered

    def close(self) -> None:
        self.listener.close()


def test_a_call_cut_off_in_flight_is_retried_only_where_it_may_run_twice() -> None:
    server = OneAnswerServer()
    try:
        target = redis.Redis(port=server.port, socket_timeout=2)
        retrying = ScriptLane(target, ECHO, retry=True)
        once = ScriptLane(target, ECHO, retry=False)
        assert retrying(["k"], ["x"]) == 42
        assert retrying(["k"], ["x"]) == 42  # cut off, then again on a fresh connection
        assert server.connections == 2
        assert once(["k"], ["x"]) == 42
        with pytest.raises(redis.ConnectionError):
            once(["k"], ["x"])  # cut off: its caller is told, nothing is sent twice
        assert server.connections == 3
        assert once(["k"], ["x"]) == 42  # and the next call has a fresh connection
    finally:
        server.close()


def test_threads_have_connections_of_their_own(client: redis.Redis, key: str) -> None:
    name = f"lane-{uuid.uuid4().hex[:8]}"
    lane = ScriptLane(client, ECHO, retry=True, name=name)
    replies: list[int] = []
    lock = threading.Lock()
    done, finish = threading.Barrier(5), threading.Event()

    def work() -> None:
        for _ in range(50):
            n = lane([key], ["t"])[2]
            with lock:
                replies.append(n)
        done.wait()
        finish.wait(10)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    done.wait(10)
    open_now = sum(1 for c in client.client_list() if c.get("name") == name)
    finish.set()
    for t in threads:
        t.join()
    assert sorted(replies) == list(range(1, 201))  # no reply went to another thread
    assert open_now == 4


def _child_call(lane: ScriptLane, key: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(lane([key], ["child"]))


def test_a_forked_child_opens_its_own_connection(client: redis.Redis, key: str) -> None:
    lane = ScriptLane(client, ECHO, retry=False)
    assert lane([key], ["parent"])[2] == 1
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    child = ctx.Process(target=_child_call, args=(lane, key, out))
    child.start()
    assert out.get(timeout=10)[1:3] == [b"child", 2]
    child.join(10)
    # The parent's connection still reads its own replies.
    assert lane([key], ["parent"])[1:3] == [b"parent", 3]


def test_redis_not_there_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    lane = ScriptLane(redis.Redis(port=port, socket_connect_timeout=0.5), ECHO, retry=True)
    with pytest.raises(redis.ConnectionError):
        lane(["k"], ["x"])


def test_a_hanging_redis_is_a_timeout_not_a_wait() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts (the kernel does) and never answers
        port = listener.getsockname()[1]
        lane = ScriptLane(redis.Redis(port=port, socket_timeout=0.2), ECHO, retry=True)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            lane(["k"], ["x"])
        assert time.monotonic() - started < 1.0  # one timeout: a timeout is not retried


def test_a_command_lane_pipeline_answers_in_order_and_raises_the_first_error(
    client: redis.Redis, key: str
) -> None:
    from salon.infra.redis_pipelines import RedisPipelines

    lane = RedisPipelines(client, name=f"lane-{uuid.uuid4().hex[:8]}")
    assert lane.pipeline([("INCR", key), ("INCR", key), ("GET", key)]) == [1, 2, b"2"]
    with pytest.raises(redis.ResponseError):
        lane.pipeline([("INCR", key), ("LPUSH", key, "x"), ("INCR", key)])
    assert client.get(key) == b"4"  # every command ran; the error was raised after reading all
    with pytest.raises(redis.exceptions.NoScriptError):
        lane.pipeline([("EVALSHA", "0" * 40, 0)])
    assert lane.pipeline([("PING",)]) == [b"PONG"]  # the connection is still in step


def test_a_command_lane_transaction_answers_its_commands_and_raises_an_error_inside(
    client: redis.Redis, key: str
) -> None:
    from salon.infra.redis_pipelines import RedisPipelines

    lane = RedisPipelines(client, name=f"lane-{uuid.uuid4().hex[:8]}")
    assert lane.pipeline([("INCR", key), ("GET", key)], transaction=True) == [1, b"1"]
    with pytest.raises(redis.ResponseError):
        lane.pipeline([("INCR", key), ("LPUSH", key, "x"), ("INCR", key)], transaction=True)
    assert client.get(key) == b"3"  # Redis runs the rest of a transaction around an error
    with pytest.raises(redis.ResponseError):  # a command Redis refuses to queue: nothing runs
        lane.pipeline([("INCR", key), ("NOSUCHCOMMAND",)], transaction=True)
    assert client.get(key) == b"3"
    assert lane.pipeline([("PING",)]) == [b"PONG"]  # the connection is still in step


def test_the_writes_post_commit_pipeline_through_a_lane_is_redis_pys(client: redis.Redis) -> None:
    from salon.infra.redis_pipelines import RedisPipelines
    from salon.public_times.offers import queue_catalogue_bump
    from salon.public_times.versions import queue_bumps, run_pipeline

    stylist = uuid.uuid4()
    day = dt.datetime(2030, 5, 6, 10, tzinfo=dt.UTC)
    states = []
    for target in (client, RedisPipelines(client)):
        ns = f"lane-{uuid.uuid4().hex[:8]}"

        def fill(pipe: Any, ns: str = ns) -> None:
            queue_catalogue_bump(pipe, ns)
            queue_bumps(pipe, ns, [], [(stylist, day, day + dt.timedelta(hours=1))])
            pipe.lpush(f"{ns}:done", "1")
            pipe.expire(f"{ns}:done", 120)

        client.script_flush()  # the bump script is loaded again on the way
        run_pipeline(target, fill)
        run_pipeline(target, fill)
        keys = sorted(k.decode() for k in client.keys(f"{ns}:*"))
        states.append(
            (
                [k.removeprefix(ns) for k in keys],
                client.zrange(f"{ns}:stylist-changes:{stylist}", 0, -1, withscores=True),
                client.lrange(f"{ns}:done", 0, -1),
                0 < client.ttl(f"{ns}:done") <= 120,
            )
        )
        for k in keys:
            client.delete(k)
    assert states[0] == states[1]
    # The first run met NOSCRIPT and ran again whole (its signal twice, as documented).
    assert states[0][2] == [b"1", b"1", b"1"] and states[0][3]
    assert len(states[0][1]) > 0  # the bump recorded its dates


def test_commands_sent_without_waiting_run_and_keep_the_connection_in_step(
    client: redis.Redis, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    from salon.infra.redis_pipelines import RedisPipelines

    name = f"lane-{uuid.uuid4().hex[:8]}"
    lane = RedisPipelines(client, name=name)
    lane.send_later([("INCR", key), ("INCR", key)], transaction=True)
    # Another connection sees them once Redis ran them; this thread's next call reads the
    # owed replies first, so its own replies are its own.
    assert lane.pipeline([("GET", key), ("PING",)]) == [b"2", b"PONG"]
    lane.send_later([("LPUSH", key, "x")])  # refused by Redis: logged, not raised
    lane.send_later([("INCR", key), ("LPUSH", key, "x")], transaction=True)
    with caplog.at_level("WARNING", logger="salon.infra.redis_pipelines"):
        assert lane.pipeline([("GET", key)]) == [b"3"]
    assert sum("refused a command sent without waiting" in m for m in caplog.messages) == 2
    assert len([c for c in client.client_list() if c.get("name") == name]) == 1


def test_a_connection_lost_with_replies_owed_is_replaced_for_the_next_call(
    client: redis.Redis, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    from salon.infra.redis_pipelines import RedisPipelines

    name = f"lane-{uuid.uuid4().hex[:8]}"
    lane = RedisPipelines(client, name=name)
    assert lane.pipeline([("PING",)]) == [b"PONG"]
    # Sent into a connection Redis has already closed: the kernel takes the bytes, nobody
    # runs them, and the reply the thread is owed never comes.
    assert kill_lane_connections(client, name) == 1
    lane._connections._local.conn.readable = lambda: False  # too early to see the close
    lane.send_later([("INCR", key)])
    with caplog.at_level("WARNING", logger="salon.infra.redis_pipelines"):
        assert lane.pipeline([("INCR", key)]) == [1]
    assert any("sent without waiting was lost" in m for m in caplog.messages)


def test_sending_without_waiting_to_a_redis_not_there_is_a_connection_error() -> None:
    from salon.infra.redis_pipelines import RedisPipelines

    lane = RedisPipelines(redis.Redis(port=1, socket_connect_timeout=0.5))
    with pytest.raises(redis.ConnectionError):
        lane.send_later([("PING",)])


def test_a_new_connection_refused_while_sending_without_waiting_is_a_redis_error() -> None:
    """Redis may refuse a connection with an error reply (max clients, a changed password):
    sending without waiting raises redis-py's error, which best-effort callers catch."""
    from salon.infra.redis_pipelines import RedisPipelines

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def refuse() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)  # the connection's CLIENT SETNAME
            conn.sendall(b"-ERR max number of clients reached\r\n")
            conn.recv(65536)

    threading.Thread(target=refuse, daemon=True).start()
    try:
        lane = RedisPipelines(redis.Redis(port=listener.getsockname()[1], socket_timeout=2))
        with pytest.raises(redis.ResponseError, match="max number of clients"):
            lane.send_later([("PING",)])
    finally:
        listener.close()
