"""after_ack / after_nack fire once the ack has reached Redis, not when it is queued behind the
job record: a middleware told a message is acknowledged can rely on it (real Redis, no worker)."""

from __future__ import annotations

import uuid

import dramatiq
import pytest
from dramatiq.middleware import Middleware

from apps.tasks import keys, records
from apps.tasks.broker import RedisBroker, get_redis

pytestmark = pytest.mark.django_db(transaction=True)


class SeesAcks(Middleware):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []
        self.broker: RedisBroker | None = None

    def _saw(self, command: str, message) -> None:
        acks = keys.acks(self.broker.namespace, self.broker.broker_id, message.queue_name)
        still_in_flight = get_redis().sismember(acks, message.options["redis_message_id"])
        self.seen.append((command, message.message_id, bool(still_in_flight)))

    def after_ack(self, broker, message) -> None:
        self._saw("ack", message)

    def after_nack(self, broker, message) -> None:
        self._saw("nack", message)


@pytest.fixture
def queue_name(broker_redis):
    name = f"hooks-{uuid.uuid4().hex[:8]}"
    yield name
    namespace = dramatiq.get_broker().namespace
    doomed = list(broker_redis.scan_iter(match=f"{namespace}:*{name}*", count=1000))
    if doomed:
        broker_redis.delete(*doomed)


def test_ack_hooks_wait_for_the_ack_to_reach_redis(queue_name, broker_redis):
    watcher = SeesAcks()
    broker = RedisBroker(client=get_redis(), namespace=dramatiq.get_broker().namespace, middleware=[watcher])
    watcher.broker = broker
    sent = [
        broker.enqueue(dramatiq.Message(queue_name=queue_name, actor_name="a", args=(), kwargs={}, options={}))
        for _ in range(2)
    ]
    consumer = broker.consume(queue_name, prefetch=2, timeout=100)
    first, second = next(consumer), next(consumer)
    # What dramatiq's worker does once a message is processed:
    consumer.ack(first)
    broker.emit_after("ack", first)
    second.fail()
    consumer.nack(second)
    broker.emit_after("nack", second)
    assert watcher.seen == []  # queued behind the record batch: not acknowledged yet
    assert records.wait_until_flushed()
    assert sorted(watcher.seen) == sorted([("ack", sent[0].message_id, False), ("nack", sent[1].message_id, False)])
    # Other signals and other threads are not held back.
    broker.emit_after("ack", first)
    assert len(watcher.seen) == 3
