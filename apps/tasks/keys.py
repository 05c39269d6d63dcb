"""Every Redis key name the app reads or writes, on the broker's database.

dramatiq's own layout (namespace ``ns``): ``ns:Q`` ready ids, ``ns:Q.msgs`` encoded messages,
``ns:Q.DQ``/``ns:Q.DQ.msgs`` delayed, ``ns:Q.XQ``/``ns:Q.XQ.msgs`` dead letters,
``ns:__acks__.<broker_id>.<Q>`` in flight, ``ns:__heartbeats__`` every broker process.
"""

from __future__ import annotations

from collections.abc import Callable

from dramatiq.common import dq_name, xq_name


def queue(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{queue_name}"


def queue_messages(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{queue_name}.msgs"


def queue_low(namespace: str, queue_name: str) -> str:
    """List: ready messages of negative priority, highest first; fetched once the queue itself is empty."""
    return f"{namespace}:{queue_name}.low"


def queue_priorities(namespace: str, queue_name: str) -> str:
    """Hash: Redis message id → priority, for messages sent with a ``queue_priority`` (broker.RedisBroker)."""
    return f"{namespace}:{queue_name}.prio"


def unique(namespace: str, unique_key: str) -> str:
    """String: the id of the waiting or running job that holds a unique key (enqueue's ``unique_key``)."""
    return f"{namespace}:tasks:unique:{unique_key}"


def paused(namespace: str, queue_name: str) -> str:
    """String (JSON: who paused it and when): while it exists, consumers of the queue fetch nothing."""
    return f"{namespace}:tasks:paused:{queue_name}"


def aborts(namespace: str) -> str:
    """Key prefix of dramatiq-abort's event lists (abort requests the workers block on)."""
    return f"{namespace}:tasks:aborts:"


def abort_note(namespace: str, job_id: str) -> str:
    """String (JSON: who asked and why): kept for the record of a running job being aborted."""
    return f"{namespace}:tasks:abort-note:{job_id}"


def actor_limit(namespace: str, actor_name: str, kind: str) -> str:
    """Key (prefix, for a window) of dramatiq's rate limiter for an actor's ``concurrency`` or ``rate_limit``."""
    return f"{namespace}:tasks:limit:{actor_name}:{kind}"


def cancelled(namespace: str) -> str:
    """Set: Redis ids of delayed messages cancelled while a worker held them (broker lua cancel)."""
    return f"{namespace}:tasks:cancelled"


def delay_queue(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{dq_name(queue_name)}"


def delay_queue_messages(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{dq_name(queue_name)}.msgs"


def dead_letters(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{xq_name(queue_name)}"


def dead_letter_messages(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{xq_name(queue_name)}.msgs"


def heartbeats(namespace: str) -> str:
    return f"{namespace}:__heartbeats__"


def ping_result(namespace: str, token: str) -> str:
    """Where the built-in ``ping`` actor records that it ran."""
    return f"{namespace}:tasks:ping:{token}"


def metrics(namespace: str) -> str:
    """Hash holding every job counter and duration histogram of a namespace (services.metrics)."""
    return f"{namespace}:tasks:metrics"


def schedule_tick(namespace: str, name: str, tick: int) -> str:
    """The claim of one tick (epoch seconds of its minute) of one schedule."""
    return f"{namespace}:tasks:schedule:{name}:{tick}"


def schedules_last_sent(namespace: str) -> str:
    """Hash: schedule name → JSON of the last tick sent (tick, message id, when, by whom)."""
    return f"{namespace}:tasks:schedules"


def events(namespace: str) -> str:
    """The capped stream of lifecycle events."""
    return f"{namespace}:tasks:events"


def workers(namespace: str) -> str:
    """Sorted set: worker id → last heartbeat (ms). The index of the worker registry."""
    return f"{namespace}:tasks:workers"


def worker(namespace: str, worker_id: str) -> str:
    """JSON description of one live worker process (expires without heartbeats)."""
    return f"{namespace}:tasks:workers:{worker_id}"


def worker_deaths(namespace: str) -> str:
    """Hash: Redis message id → how many worker processes died while running it."""
    return f"{namespace}:tasks:deaths"


def acks(namespace: str, broker_id: str, queue_name: str) -> str:
    """dramatiq's set of messages a broker process fetched from a queue and has not acknowledged."""
    return f"{namespace}:__acks__.{broker_id}.{queue_name}"


def redelivered(namespace: str) -> str:
    """Hash: Redis message id → when (ms) maintenance put it back from a dead broker process's acks
    set. The consumer checks such a message's record before running it again (consumer.py)."""
    return f"{namespace}:tasks:redelivered"


def reconcile_lock(namespace: str) -> str:
    """Held by the worker process running this interval's reconcile pass."""
    return f"{namespace}:tasks:reconcile:lock"


def reconcile_cursor(namespace: str) -> str:
    """Where the last reconcile pass stopped (enqueued_at in µs and message id of its last record)."""
    return f"{namespace}:tasks:reconcile:cursor"


def lost_count(namespace: str) -> str:
    """Hash: ``resent`` / ``lost`` → how many records the reconciler found without their message."""
    return f"{namespace}:tasks:reconcile:counts"


def recovery_lock(namespace: str, worker_id: str) -> str:
    return f"{namespace}:tasks:recovering:{worker_id}"


def minute_counts(namespace: str, minute: int) -> str:
    """Hash status → jobs finished in that minute (epoch minutes), for the dashboard's chart."""
    return f"{namespace}:tasks:minute:{minute}"


def wake(namespace: str, queue_name: str) -> str:
    """List an idle consumer of the queue blocks on; each enqueue pushes a token (broker.RedisBroker)."""
    return f"{namespace}:{queue_name}.wake"


def idle_consumers(namespace: str, queue_name: str) -> str:
    """Sorted set: broker id → until when (Redis clock, ms) its consumer of the queue waits, idle,
    for a message handed straight to its inbox (broker.RedisBroker)."""
    return f"{namespace}:__idle__.{queue_name}"


def inbox(namespace: str, broker_id: str, queue_name: str) -> str:
    """List of encoded messages handed to one broker process's idle consumer of a queue; each is
    already in that process's acks set."""
    return f"{namespace}:__inbox__.{broker_id}.{queue_name}"


def inbox_owner(namespace: str, inbox_key: str) -> str:
    """The broker id in an ``inbox`` key (broker ids are UUIDs: no dots)."""
    return inbox_key[len(f"{namespace}:__inbox__.") :].split(".", 1)[0]


def inboxes(namespace: str) -> str:
    """Set of every inbox key, so that recovery can delete those of dead broker processes."""
    return f"{namespace}:__inboxes__"


def around_broker_id(key: Callable[[str, str, str], str], namespace: str, queue_name: str) -> tuple[str, str]:
    """What comes before and after the broker id in a per-broker key (``acks``, ``inbox``), for a
    Lua script that learns the broker id itself."""
    before, after = key(namespace, "\0", queue_name).split("\0")
    return before, after
