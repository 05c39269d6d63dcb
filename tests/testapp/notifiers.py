"""A dead-letter notifier that leaves a trace the tests can read from another process."""

import json

import dramatiq

from apps.tasks.broker import get_redis


def notifications_key() -> str:
    return f"{dramatiq.get_broker().namespace}:test:notifications"


def record_notification(job) -> None:
    payload = {"message_id": job.message_id, "actor": job.actor_name, "error_type": job.error_type}
    get_redis().rpush(notifications_key(), json.dumps(payload))
