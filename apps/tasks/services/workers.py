"""The registry of live worker processes, kept in Redis by each worker (see middleware.worker_registry).

dramatiq's ``__heartbeats__`` counts every broker process, producers such as the web app included,
and keeps dead ones until a random maintenance; this registry holds worker processes only, and an
entry is live only while its heartbeat is younger than the heartbeat timeout.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import dramatiq

from apps.tasks import keys
from apps.tasks.broker import get_redis
from apps.tasks.config import get_task_config
from apps.tasks.services.inflight import pid_alive

#: (pid, worker id) of the worker registered by this process, set by ``publish``.
_registered_here: tuple[int, str] | None = None


@dataclass
class WorkerInfo:
    worker_id: str
    host: str
    pid: int
    ppid: int
    queues: list[str]
    threads: int
    started_at: float
    last_seen: float = 0.0
    tasks_processed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return {**data, **self.extra}


def _namespace() -> str:
    return dramatiq.get_broker().namespace


def heartbeat_timeout_ms() -> int:
    return get_task_config().dramatiq.heartbeat_timeout_ms


def publish(info: WorkerInfo) -> None:
    """Refresh a worker's entry: its JSON (expiring) and its score in the index, in one round-trip."""
    namespace = _namespace()
    timeout_ms = heartbeat_timeout_ms()
    now_ms = time.time() * 1000
    info.last_seen = now_ms / 1000
    pipeline = get_redis().pipeline(transaction=False)
    pipeline.set(keys.worker(namespace, info.worker_id), json.dumps(info.as_dict()), px=timeout_ms * 2)
    pipeline.zadd(keys.workers(namespace), {info.worker_id: now_ms})
    pipeline.execute()
    if info.pid == os.getpid():
        global _registered_here
        _registered_here = (info.pid, info.worker_id)


def process_identity() -> str:
    """Who this process is, for a claim another process may have to judge: ``host:pid``, and
    ``@worker_id`` when it is a registered worker process (see ``process_is_gone``)."""
    pid = os.getpid()
    identity = f"{socket.gethostname()}:{pid}"
    if _registered_here is not None and _registered_here[0] == pid:
        identity += f"@{_registered_here[1]}"
    return identity


def process_is_gone(identity: str) -> bool:
    """True only when the process ``identity`` names (see ``process_identity``) is certainly dead:
    on this host, its pid is gone; on another host, it was a registered worker whose heartbeat is
    older than the heartbeat timeout (or that unregistered). Anything else (an empty or unknown
    identity, a process of another host that was no worker) is not known to be gone: False."""
    address, _, worker_id = identity.partition("@")
    host, _, pid_text = address.rpartition(":")
    if not host or not pid_text.isdigit():
        return False
    if host == socket.gethostname():
        return not pid_alive(int(pid_text))
    if not worker_id:
        return False
    score = get_redis().zscore(keys.workers(_namespace()), worker_id)
    return score is None or score < time.time() * 1000 - heartbeat_timeout_ms()


def unregister(worker_id: str) -> None:
    namespace = _namespace()
    pipeline = get_redis().pipeline(transaction=False)
    pipeline.zrem(keys.workers(namespace), worker_id)
    pipeline.delete(keys.worker(namespace, worker_id))
    pipeline.execute()


def live_workers() -> list[WorkerInfo]:
    """Worker processes whose heartbeat is younger than the heartbeat timeout (two round-trips)."""
    client = get_redis()
    namespace = _namespace()
    since_ms = time.time() * 1000 - heartbeat_timeout_ms()
    worker_ids = [member.decode() for member in client.zrangebyscore(keys.workers(namespace), since_ms, "+inf")]
    if not worker_ids:
        return []
    found = []
    for raw in client.mget([keys.worker(namespace, worker_id) for worker_id in worker_ids]):
        if raw is None:
            continue
        data = json.loads(raw)
        known = {name: data.pop(name) for name in list(data) if name in WorkerInfo.__dataclass_fields__}
        found.append(WorkerInfo(**known, extra=data))
    return sorted(found, key=lambda info: (info.host, info.pid))


def dead_worker_ids() -> list[str]:
    """Registered workers whose heartbeat is older than the heartbeat timeout."""
    since_ms = time.time() * 1000 - heartbeat_timeout_ms()
    members = get_redis().zrangebyscore(keys.workers(_namespace()), "-inf", f"({since_ms}")
    return [member.decode() for member in members]
