"""Deterministic recovery after a worker process dies.

dramatiq's RedisBroker puts a dead worker's unacknowledged messages back only during maintenance,
which runs on about 1 broker call in 1,000 and only for the queue of that call: at low traffic a
crashed worker's messages can wait for hours. Every live worker process calls
``recover_dead_workers`` on each heartbeat. A dead process on the same host is certain at once
(its pid is gone, seen through its in-flight slot file): its messages are back within one
heartbeat interval (5 s by default). One on another host is dead when its heartbeat is older
than the heartbeat timeout: back within the timeout plus one interval, whatever the traffic.

A message that was running in worker processes that died ``max_worker_deaths`` times (a task
that gets its worker OOM-killed, say) is moved to the dead letter queue instead of being
redelivered forever, and its job record says why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import dramatiq
from dramatiq.common import dq_name, q_name

from apps.tasks import keys, records
from apps.tasks.broker import get_redis
from apps.tasks.config import get_task_config
from apps.tasks.notifications import notify_dead_letter
from apps.tasks.services import inflight, limits, workers
from apps.tasks.status import JobStatus

logger = logging.getLogger(__name__)

POISON_ERROR_TYPE = "apps.tasks.errors.WorkerDied"


@dataclass
class RecoveryReport:
    dead_workers: list[str] = field(default_factory=list)
    poisoned: list[str] = field(default_factory=list)
    maintained_queues: list[str] = field(default_factory=list)


def _dramatiq_has_dead_brokers(broker: dramatiq.Broker) -> bool:
    since_ms = time.time() * 1000 - broker.heartbeat_timeout
    return bool(get_redis().zrangebyscore(keys.heartbeats(broker.namespace), "-inf", f"({since_ms}", start=0, num=1))


def _dead_letter_poison(broker, worker_id: str, entry: dict, deaths: int) -> bool:
    queue = q_name(entry["queue"])
    if not broker.move_to_dead_letters(worker_id, queue, entry["redis_id"]):
        return False
    reason = (
        f"the worker process died {deaths} times while running this message; "
        "moved to the dead letter queue instead of redelivering it"
    )
    transition = records.Transition(
        message_id=entry["message_id"],
        actor_name=entry["actor"],
        queue_name=queue,
        status=JobStatus.DEAD_LETTER,
        enqueued_at=records.from_millis(entry.get("enqueued_ms") or time.time() * 1000),
        attempts=records.attempt_number(entry),
        error_type=POISON_ERROR_TYPE,
        error_message=reason,
        finished_at=records.now(),
    )
    records.record(transition, wait=True)
    notify_dead_letter(transition)
    logger.error("Message %s (%s): %s", transition.message_id, transition.actor_name, reason)
    return True


def _account_dead_processes(broker: dramatiq.Broker, report: RecoveryReport) -> None:
    """Count a death for each message that a vanished worker process on this host was running."""
    client = get_redis()
    config = get_task_config().dramatiq
    deaths_key = keys.worker_deaths(broker.namespace)
    for dead in inflight.dead_processes(config.state_path):
        if not client.set(keys.recovery_lock(broker.namespace, f"slots:{dead.worker_id}"), "1", nx=True, px=60_000):
            continue
        for entry in dead.running:
            # Its concurrency slot (services.limits) would otherwise stay taken until its key expires.
            limits.release_slot(broker, entry.get("actor", ""))
            if len(dead.running) > 1 and not entry.get("alone"):
                continue  # not its death for sure: redelivered, it runs alone, and a death is then its own
            deaths = client.hincrby(deaths_key, entry["redis_id"], 1)
            client.pexpire(deaths_key, config.dead_message_ttl_ms)
            if deaths >= config.max_worker_deaths and _dead_letter_poison(broker, dead.worker_id, entry, deaths):
                report.poisoned.append(entry["message_id"])
        # Its pid is gone: the process is certainly dead. Age its broker heartbeat (if dramatiq has
        # not dropped it yet) so that maintenance puts its messages back now, not after the timeout.
        client.zadd(keys.heartbeats(broker.namespace), {dead.worker_id: 0}, xx=True)
        workers.unregister(dead.worker_id)
        report.dead_workers.append(dead.worker_id)
        dead.path.unlink(missing_ok=True)
        logger.warning("Worker process %d died while running %d message(s).", dead.pid, len(dead.running))


def _drop_dead_inboxes(broker: dramatiq.Broker) -> int:
    """Delete the inboxes of broker processes past their heartbeat timeout. A message handed to one
    is also in that process's acks set, which maintenance puts back on the queue."""
    client = get_redis()
    index = keys.inboxes(broker.namespace)
    inboxes = [key.decode() for key in client.smembers(index)]
    if not inboxes:
        return 0
    pipeline = client.pipeline(transaction=False)
    for key in inboxes:  # not ZMSCORE: Redis 6.2+
        pipeline.zscore(keys.heartbeats(broker.namespace), keys.inbox_owner(broker.namespace, key))
    beats = pipeline.execute()
    since_ms = time.time() * 1000 - broker.heartbeat_timeout
    dead = [key for key, beat in zip(inboxes, beats, strict=True) if beat is None or beat < since_ms]
    if dead:
        client.pipeline(transaction=False).delete(*dead).srem(index, *dead).execute()
    return len(dead)


def recover_dead_workers(broker: dramatiq.Broker) -> RecoveryReport:
    """Account for dead processes on this host (poison messages), drop dead workers from the
    registry, then run dramatiq's maintenance on each configured queue if any broker process is
    past its heartbeat timeout, which puts their unacknowledged messages back."""
    report = RecoveryReport()
    _account_dead_processes(broker, report)
    for worker_id in workers.dead_worker_ids():
        workers.unregister(worker_id)
        report.dead_workers.append(worker_id)
        logger.warning("Worker %s stopped sending heartbeats: recovering its messages.", worker_id)
    if report.dead_workers or _dramatiq_has_dead_brokers(broker):
        for queue in get_task_config().dramatiq.queues:
            for name in (queue, dq_name(queue)):
                broker.run_maintenance(name)
                report.maintained_queues.append(name)
    _drop_dead_inboxes(broker)
    return report
