"""What the running broker is, for checks against the configuration (health)."""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq

from apps.tasks.broker import RedisBroker


@dataclass(frozen=True)
class BrokerInfo:
    class_name: str
    is_task_broker: bool  # an apps.tasks.broker.RedisBroker: the only one that records jobs
    namespace: str | None
    redis_db: int | None
    middleware: tuple[str, ...]  # dotted class paths, in order


def broker_info() -> BrokerInfo:
    broker = dramatiq.get_broker()
    middleware = tuple(f"{type(item).__module__}.{type(item).__name__}" for item in broker.middleware)
    if not isinstance(broker, RedisBroker):
        return BrokerInfo(type(broker).__name__, False, None, None, middleware)
    db = broker.client.connection_pool.connection_kwargs.get("db", 0)
    return BrokerInfo(type(broker).__name__, True, broker.namespace, db, middleware)
