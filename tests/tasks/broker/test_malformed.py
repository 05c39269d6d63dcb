"""Malformed entries in a queue end as dead letters with a record saying why; the worker goes on.

Each kind is written straight into Redis, as a buggy producer or a hand edit would, next to a good
message that must still complete: the consumer thread must not crash, and nothing may stay in the
worker's acks set (in flight for ever).
"""

from __future__ import annotations

import json
import uuid

import dramatiq
import pytest

from apps.tasks import keys
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from tests.helpers import wait_for
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

GOOD_FIELDS = {
    "queue_name": "default", "actor_name": "add", "args": [1, 2], "kwargs": {}, "options": {},
    "message_timestamp": 1_700_000_000_000,
}  # fmt: skip

MALFORMED = {
    "garbage bytes": b"\xff\xfe\x00garbage",
    "truncated JSON": b'{"queue_name": "default", "actor_name": "ad',
    "a JSON list": b"[1, 2, 3]",
    "missing fields": json.dumps({"queue_name": "default", "actor_name": "add"}).encode(),
    "a bad timestamp": json.dumps({**GOOD_FIELDS, "message_id": "bad-timestamp", "message_timestamp": "soon"}).encode(),
    "no body": None,
}


def push(client, queue: str, redis_id: str, body: bytes | None) -> None:
    namespace = dramatiq.get_broker().namespace
    if body is not None:
        client.hset(keys.queue_messages(namespace, queue), redis_id, body)
    client.rpush(keys.queue(namespace, queue), redis_id)


def in_flight(client) -> int:
    namespace = dramatiq.get_broker().namespace
    return sum(client.scard(key) for key in client.scan_iter(match=keys.acks(namespace, "*", "default")))


def test_each_malformed_kind_becomes_a_dead_letter_with_a_record_and_the_worker_goes_on(
    start_worker, broker_redis, clean_queues
):
    namespace = dramatiq.get_broker().namespace
    ids = {kind: f"malformed-{uuid.uuid4().hex[:8]}" for kind in MALFORMED}
    for kind, body in MALFORMED.items():
        push(broker_redis, "default", ids[kind], body)
    delayed_id = f"malformed-delayed-{uuid.uuid4().hex[:8]}"
    push(broker_redis, "default.DQ", delayed_id, b"not a delayed message")
    start_worker("--processes", "1", "--threads", "2", "--queues", "default")
    good = enqueue(tasks.add, args=(2, 3))

    wait_for(
        lambda: JobRecord.objects.filter(pk=good, status=JobStatus.COMPLETED).exists(),
        timeout=20, message="the good message to complete after the malformed ones",
    )  # fmt: skip
    dead_letters = keys.dead_letters(namespace, "default")
    wait_for(
        lambda: broker_redis.zcard(dead_letters) == len(MALFORMED) + 1,
        timeout=10, message="every malformed entry in the dead letters",
    )  # fmt: skip
    kept = broker_redis.hgetall(keys.dead_letter_messages(namespace, "default"))
    for kind, body in MALFORMED.items():
        assert kept[ids[kind].encode()] == (body or b""), f"{kind}: the body is kept for inspection"
    assert kept[delayed_id.encode()] == b"not a delayed message"
    assert broker_redis.hlen(keys.queue_messages(namespace, "default")) == 0
    assert broker_redis.hlen(keys.delay_queue_messages(namespace, "default")) == 0
    wait_for(lambda: in_flight(broker_redis) == 0, timeout=10, message="nothing left in flight")

    assert JobRecord.objects.get(pk=delayed_id).status == JobStatus.DEAD_LETTER
    for kind in MALFORMED:
        record_id = "bad-timestamp" if kind == "a bad timestamp" else ids[kind]
        record = JobRecord.objects.get(pk=record_id)
        assert record.status == JobStatus.DEAD_LETTER, kind
        assert record.error_type == "apps.tasks.errors.MalformedMessage", kind
        assert record.error_message.startswith("undecodable message"), (kind, record.error_message)
