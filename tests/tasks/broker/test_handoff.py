"""An enqueue hands a message straight to an idle consumer, without ever losing it."""

from __future__ import annotations

import threading
import time
import uuid

import dramatiq
import pytest

from apps.tasks import keys
from apps.tasks.broker import Fetched, RedisBroker, get_redis
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.services.recovery import recover_dead_workers
from tests.helpers import wait_for
from tests.tasks.services.test_recovery import FAST_RECOVERY, HEARTBEAT_TIMEOUT_MS, WORKER_ARGS
from tests.testapp import tasks


@pytest.fixture
def queue_name(broker_redis):
    """A queue of its own, emptied afterwards (its keys included)."""
    name = f"handoff-{uuid.uuid4().hex[:8]}"
    yield name
    namespace = dramatiq.get_broker().namespace
    doomed = list(broker_redis.scan_iter(match=f"{namespace}:*{name}*", count=1000))
    if doomed:
        broker_redis.delete(*doomed)


def process_broker() -> RedisBroker:
    """Another broker process on the test namespace (its own broker id), without middleware."""
    return RedisBroker(client=get_redis(), namespace=dramatiq.get_broker().namespace, middleware=[])


def message(queue_name: str) -> dramatiq.Message:
    return dramatiq.Message(queue_name=queue_name, actor_name="anything", args=(1,), kwargs={}, options={})


def idle_members(queue_name: str) -> list[str]:
    client = get_redis()
    return [
        member.decode()
        for member in client.zrange(keys.idle_consumers(dramatiq.get_broker().namespace, queue_name), 0, -1)
    ]


def hand_over(queue_name: str, worker_broker: RedisBroker, consumer) -> dramatiq.Message:
    """With ``consumer`` waiting idle in a thread, send one message from another broker; it must
    arrive through the hand-over. Returns the message sent."""
    received = []
    thread = threading.Thread(target=lambda: received.append(next(consumer)))
    thread.start()
    wait_for(lambda: worker_broker.broker_id in idle_members(queue_name), message="the consumer to register as idle")
    sent = process_broker().enqueue(message(queue_name))
    thread.join(timeout=5)
    assert [proxy.message_id for proxy in received] == [sent.message_id]
    return sent


def test_an_idle_consumer_gets_the_message_straight_from_the_enqueue(queue_name, broker_redis):
    worker_broker, web_broker = process_broker(), process_broker()
    consumer = worker_broker.consume(queue_name, prefetch=2, timeout=5_000)

    sent = hand_over(queue_name, worker_broker, consumer)

    namespace, redis_id = worker_broker.namespace, sent.options["redis_message_id"]
    # Handed over: never on the queue, in the consumer's acks set as dramatiq's fetch would put it.
    assert broker_redis.llen(keys.queue(namespace, queue_name)) == 0
    assert broker_redis.sismember(keys.acks(namespace, worker_broker.broker_id, queue_name), redis_id)
    assert broker_redis.llen(keys.inbox(namespace, worker_broker.broker_id, queue_name)) == 0
    assert idle_members(queue_name) == []  # one message per registration
    # The next message, with the consumer busy, goes to the queue and is fetched as usual.
    second = web_broker.enqueue(message(queue_name))
    assert broker_redis.llen(keys.queue(namespace, queue_name)) == 1
    assert next(consumer).message_id == second.message_id


def test_an_expired_registration_is_skipped_and_the_message_queued(queue_name, broker_redis):
    namespace, web_broker = dramatiq.get_broker().namespace, process_broker()
    # A consumer that registered, then died more than its wait ago.
    broker_redis.zadd(keys.idle_consumers(namespace, queue_name), {"dead-broker": 1})

    sent = web_broker.enqueue(message(queue_name))

    assert broker_redis.lrange(keys.queue(namespace, queue_name), 0, -1) == [sent.options["redis_message_id"].encode()]
    assert not broker_redis.exists(keys.inbox(namespace, "dead-broker", queue_name))
    assert idle_members(queue_name) == []
    assert broker_redis.llen(keys.wake(namespace, queue_name)) == 1


def test_closing_a_consumer_puts_a_handed_message_back_on_the_queue(queue_name, broker_redis):
    worker_broker, web_broker = process_broker(), process_broker()
    consumer = worker_broker.consume(queue_name, prefetch=2, timeout=100)
    assert next(consumer) is None  # nothing to fetch: registered as idle, waited, timed out
    assert worker_broker.broker_id in idle_members(queue_name)  # the registration outlives the wait a moment
    # An enqueue lands before the registration expires: handed over, while nobody pops the inbox.
    broker_redis.zadd(keys.idle_consumers(worker_broker.namespace, queue_name), {worker_broker.broker_id: 2**50})
    sent = web_broker.enqueue(message(queue_name))
    inbox = keys.inbox(worker_broker.namespace, worker_broker.broker_id, queue_name)
    assert broker_redis.llen(inbox) == 1

    consumer.close()

    redis_id = sent.options["redis_message_id"].encode()
    assert broker_redis.lrange(keys.queue(worker_broker.namespace, queue_name), 0, -1) == [redis_id]
    assert not broker_redis.sismember(keys.acks(worker_broker.namespace, worker_broker.broker_id, queue_name), redis_id)
    assert broker_redis.llen(inbox) == 0
    assert idle_members(queue_name) == []


def test_a_message_handed_over_while_busy_is_taken_at_the_next_fetch(queue_name, broker_redis):
    worker_broker, web_broker = process_broker(), process_broker()
    consumer = worker_broker.consume(queue_name, prefetch=4, timeout=100)
    assert next(consumer) is None  # registered; woken by nothing
    # Still registered: this one is handed to the inbox, the next one queued.
    broker_redis.zadd(keys.idle_consumers(worker_broker.namespace, queue_name), {worker_broker.broker_id: 2**50})
    first, second = web_broker.enqueue(message(queue_name)), web_broker.enqueue(message(queue_name))

    assert [next(consumer).message_id, next(consumer).message_id] == [first.message_id, second.message_id]
    assert idle_members(queue_name) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_message_handed_to_a_worker_killed_while_idle_is_recovered(start_worker, broker_redis, clean_queues):
    namespace = dramatiq.get_broker().namespace
    idle_key = keys.idle_consumers(namespace, "default")
    broker_redis.delete(idle_key)  # registrations left by earlier tests' workers
    first = start_worker(*WORKER_ARGS, **FAST_RECOVERY)
    # Its consumer of "default" registers as idle (and refreshes the registration every second).
    dead_broker_id = wait_for(lambda: next(iter(broker_redis.zrange(idle_key, 0, -1)), None), timeout=30).decode()
    first.kill()
    # Within its last wait: the message is handed to the dead process (its registration has not expired).
    broker_redis.zadd(idle_key, {dead_broker_id: 2**50})
    key = f"{namespace}:test:handoff:{uuid.uuid4().hex}"
    message_id = enqueue(tasks.mark_slowly, args=(key, 1, 0))
    # In the dead process's acks set, which recovery trusts (the inbox entry itself may already be
    # gone: Redis can serve it to the killed process's blocked pop before it sees the socket closed).
    assert broker_redis.scard(keys.acks(namespace, dead_broker_id, "default")) == 1
    assert broker_redis.llen(keys.queue(namespace, "default")) == 0
    inbox = keys.inbox(namespace, dead_broker_id, "default")
    killed_at = time.monotonic()

    start_worker(*WORKER_ARGS, **FAST_RECOVERY)
    wait_for(lambda: broker_redis.smembers(key) == {b"1"}, timeout=HEARTBEAT_TIMEOUT_MS / 1000 + 20, message="the run")
    assert time.monotonic() - killed_at < HEARTBEAT_TIMEOUT_MS / 1000 + 20
    wait_for(
        lambda: JobRecord.objects.filter(message_id=message_id, status=JobStatus.COMPLETED).exists(),
        timeout=20,
        message="a completed record",
    )
    wait_for(lambda: not broker_redis.exists(inbox), timeout=10, message="the dead inbox to be deleted")
    assert inbox.encode() not in broker_redis.smembers(keys.inboxes(namespace))


def test_recovery_deletes_only_dead_inboxes(queue_name, broker_redis, settings):
    broker = dramatiq.get_broker()
    namespace, now_ms = broker.namespace, time.time() * 1000
    live, dead = keys.inbox(namespace, "live-broker", queue_name), keys.inbox(namespace, "dead-broker", queue_name)
    broker_redis.zadd(
        keys.heartbeats(namespace), {"live-broker": now_ms, "dead-broker": now_ms - 10 * broker.heartbeat_timeout}
    )
    broker_redis.rpush(live, "data")
    broker_redis.rpush(dead, "data")
    broker_redis.sadd(keys.inboxes(namespace), live, dead)
    try:
        recover_dead_workers(broker)
        assert broker_redis.exists(live) and not broker_redis.exists(dead)
        assert broker_redis.smembers(keys.inboxes(namespace)) >= {live.encode()}
        assert dead.encode() not in broker_redis.smembers(keys.inboxes(namespace))
    finally:
        broker_redis.zrem(keys.heartbeats(namespace), "live-broker", "dead-broker")
        broker_redis.srem(keys.inboxes(namespace), live, dead)
        broker_redis.delete(live, dead)


def test_a_message_handed_over_by_a_leftover_registration_is_not_stranded_behind_a_busy_queue(queue_name, broker_redis):
    worker_broker, web_broker = process_broker(), process_broker()
    consumer = worker_broker.consume(queue_name, prefetch=4, timeout=5_000)
    hand_over(queue_name, worker_broker, consumer)
    # A registration still live (e.g. left by a wait redis-py retried after a dropped connection)
    # takes one more hand-over; meanwhile the queue itself has work, so the consumer keeps fetching.
    namespace = worker_broker.namespace
    broker_redis.zadd(keys.idle_consumers(namespace, queue_name), {worker_broker.broker_id: 2**50})
    handed = web_broker.enqueue(message(queue_name))
    queued = web_broker.enqueue(message(queue_name))
    assert broker_redis.llen(keys.inbox(namespace, worker_broker.broker_id, queue_name)) == 1

    assert {next(consumer).message_id, next(consumer).message_id} == {handed.message_id, queued.message_id}
    assert broker_redis.llen(keys.inbox(namespace, worker_broker.broker_id, queue_name)) == 0
    assert idle_members(queue_name) == []


def test_close_requeues_what_it_holds_and_skips_entries_it_cannot_decode(queue_name, broker_redis, caplog):
    worker_broker, web_broker = process_broker(), process_broker()
    sent = [web_broker.enqueue(message(queue_name)) for _ in range(2)]
    consumer = worker_broker.consume(queue_name, prefetch=2, timeout=100)
    assert next(consumer).message_id == sent[0].message_id  # the second one waits in the cache
    consumer.message_cache[:0] = [Fetched(None, None), Fetched(None, b"\xff not a message")]  # handed over: no id

    consumer.close()

    namespace, redis_id = worker_broker.namespace, sent[1].options["redis_message_id"].encode()
    assert broker_redis.lrange(keys.queue(namespace, queue_name), 0, -1) == [redis_id]
    assert not broker_redis.sismember(keys.acks(namespace, worker_broker.broker_id, queue_name), redis_id)
    assert "undecodable entry" in caplog.text and "not a message" not in caplog.text


def test_an_enqueue_run_twice_by_a_client_retry_queues_the_message_once(queue_name, broker_redis):
    web_broker = process_broker()
    data = message(queue_name).copy(options={"redis_message_id": "retried"}).encode()
    for _ in range(2):  # what redis-py does when the reply to the first call timed out
        web_broker._enqueue_ready(queue_name, "retried", data, int(time.time() * 1000), None)
    assert broker_redis.lrange(keys.queue(web_broker.namespace, queue_name), 0, -1) == [b"retried"]


def test_a_consumer_at_its_prefetch_limit_backs_off_instead_of_spinning(queue_name, broker_redis, monkeypatch):
    """dramatiq's worker calls ``next`` again at once after a None: a full consumer must sleep
    (dramatiq's back-off), or its thread spins for the GIL the worker threads need."""
    from apps.tasks.broker import consumer as consumer_module

    worker_broker, web_broker = process_broker(), process_broker()
    consumer = worker_broker.consume(queue_name, prefetch=1, timeout=1_000)
    for _ in range(2):
        web_broker.enqueue(message(queue_name))
    assert next(consumer) is not None  # taken, not acknowledged: the consumer is full
    slept: list[float] = []
    monkeypatch.setattr(consumer_module.time, "sleep", slept.append)

    assert [next(consumer) for _ in range(3)] == [None, None, None]

    assert len(slept) == 3 and all(0 < seconds <= 1 for seconds in slept)
    assert broker_redis.llen(keys.queue(worker_broker.namespace, queue_name)) == 1  # nothing more fetched
