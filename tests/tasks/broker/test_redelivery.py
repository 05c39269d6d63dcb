"""A message redelivered after its worker died is run again only if its job is not finished.

The state a crash leaves is built by hand, as it is after a SIGKILL between the record's commit
and the batched ack: each message sits in the acks set of a broker process whose heartbeat is
long gone, and its record says how far the job got. A live worker's recovery puts them back.
"""

from __future__ import annotations

import uuid

import dramatiq
import pytest
from django.utils import timezone

from apps.tasks import keys
from apps.tasks.broker.consumer import decode
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from tests.helpers import wait_for
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

WORKER_ARGS = ("--processes", "1", "--threads", "2", "--queues", "default")
LEFT_AS = {"completed": JobStatus.COMPLETED, "dead_letter": JobStatus.DEAD_LETTER, "running": JobStatus.RUNNING}


def test_a_redelivered_message_whose_record_is_final_is_settled_without_running(
    start_worker, broker_redis, clean_queues
):
    namespace = dramatiq.get_broker().namespace
    effects = f"{namespace}:test:redelivery:{uuid.uuid4().hex}"
    job_ids = {name: enqueue(tasks.record_effect, args=(effects, name)) for name in LEFT_AS}
    by_job = {
        decode(body).message_id: redis_id.decode()
        for redis_id, body in broker_redis.hgetall(keys.queue_messages(namespace, "default")).items()
    }
    redis_ids = {name: by_job[job_id] for name, job_id in job_ids.items()}
    dead_broker = f"dead-{uuid.uuid4().hex}"
    for redis_id in redis_ids.values():
        broker_redis.lrem(keys.queue(namespace, "default"), 0, redis_id)
        broker_redis.sadd(keys.acks(namespace, dead_broker, "default"), redis_id)
    broker_redis.zadd(keys.heartbeats(namespace), {dead_broker: 0})
    for name, status in LEFT_AS.items():
        finished_at = None if status == JobStatus.RUNNING else timezone.now()
        JobRecord.objects.filter(message_id=job_ids[name]).update(status=status, finished_at=finished_at)

    start_worker(*WORKER_ARGS)
    wait_for(
        lambda: JobRecord.objects.get(message_id=job_ids["running"]).status == JobStatus.COMPLETED,
        timeout=30,
        message="the job that was running to run again and complete",
    )
    wait_for(
        lambda: not broker_redis.hexists(keys.queue_messages(namespace, "default"), redis_ids["completed"]),
        timeout=10,
        message="the completed job's message to be acknowledged",
    )
    dead_letters = keys.dead_letters(namespace, "default")
    wait_for(
        lambda: broker_redis.zscore(dead_letters, redis_ids["dead_letter"]) is not None,
        timeout=10,
        message="the dead-lettered job's message back in the dead letters",
    )
    assert [value.decode() for value in broker_redis.lrange(effects, 0, -1)] == ["running"]
    assert JobRecord.objects.get(message_id=job_ids["completed"]).status == JobStatus.COMPLETED
    assert JobRecord.objects.get(message_id=job_ids["dead_letter"]).status == JobStatus.DEAD_LETTER
    assert broker_redis.scard(keys.acks(namespace, dead_broker, "default")) == 0
