"""``get_task_health()``: is Redis up, which workers are alive, how long each queue is.

Every figure comes from Redis or the running configuration; workers come from the registry
that live worker processes refresh (services.workers), never from the configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from django.conf import settings

from apps.tasks.config import LIFECYCLE_MIDDLEWARE, get_task_config
from apps.tasks.discovery import discover_task_modules
from apps.tasks.masking import mask_text
from apps.tasks.redis_urls import mask_url
from apps.tasks.services.broker_info import broker_info
from apps.tasks.services.ping import redis_latency_ms
from apps.tasks.services.queues import queue_stats
from apps.tasks.services.reconcile import lost_counts
from apps.tasks.services.workers import live_workers

OK, DEGRADED, DOWN = "ok", "degraded", "down"
EXIT_CODES = {OK: 0, DEGRADED: 1, DOWN: 2}

logger = logging.getLogger(__name__)

#: Extra report sections contributed by optional apps (``apps.workflows`` adds "temporal"), so this
#: app never imports them. A provider returns its section (with a ``status``) or None to be left out.
_sections: dict[str, Callable[[], dict[str, Any] | None]] = {}


def register_health_section(name: str, provider: Callable[[], dict[str, Any] | None]) -> None:
    """Add ``report[name] = provider()`` to every health report; registering a name again replaces it."""
    _sections[name] = provider


def _add_sections(report: dict[str, Any]) -> dict[str, Any]:
    """A section that is not ok degrades the report (it never makes it down: dramatiq still serves)."""
    for name, provider in _sections.items():
        try:
            section = provider()
        except Exception as exc:
            logger.exception("Health section %s failed", name)
            section = {"status": DOWN, "error": mask_text(f"{type(exc).__name__}: {exc}")}
        if section is None:
            continue
        report[name] = section
        if section.get("status", OK) != OK and report["status"] == OK:
            report["status"] = DEGRADED
    return report


def configuration_errors() -> list[str]:
    """Checks of the running broker against TASK_CONFIG (settings that loaded can still disagree)."""
    config = get_task_config()
    if not config.enabled:
        return []
    errors = []
    broker = broker_info()
    if not broker.is_task_broker:
        errors.append(f"the broker is {broker.class_name}, not apps.tasks.broker.RedisBroker")
        return errors
    if broker.namespace != config.dramatiq.redis_key_prefix:
        errors.append(f"broker namespace {broker.namespace!r} != redis_key_prefix {config.dramatiq.redis_key_prefix!r}")
    if broker.redis_db != config.dramatiq.redis_db:
        errors.append(f"the broker uses Redis DB {broker.redis_db}, the configuration says {config.dramatiq.redis_db}")
    names = broker.middleware
    lifecycle_class = LIFECYCLE_MIDDLEWARE.rsplit(".", 1)[1]
    positions = {name.rsplit(".", 1)[1]: index for index, name in enumerate(names)}
    if lifecycle_class not in positions:
        errors.append("the lifecycle middleware is not installed: jobs are not recorded")
    elif "Retries" in positions and positions[lifecycle_class] > positions["Retries"]:
        errors.append("the lifecycle middleware must come before Retries to record retry decisions")
    if getattr(settings, "DRAMATIQ_BROKER", {}).get("OPTIONS", {}).get("url") != config.dramatiq.broker_url:
        errors.append(
            "DRAMATIQ_BROKER does not match TASK_CONFIG: build settings with TASK_CONFIG.merge_into(globals())"
        )
    return errors


def get_task_health() -> dict[str, Any]:
    """The health report; ``status`` is ok, degraded (a queue without consumer, bad configuration)
    or down (Redis unreachable)."""
    config = get_task_config()
    errors = configuration_errors()
    report: dict[str, Any] = {
        "status": OK,
        "enabled": config.enabled,
        "redis_connection": {"ok": False, "url": mask_url(config.dramatiq.broker_url), "latency_ms": None},
        "configuration_valid": not errors,
        "configuration_errors": errors,
        "workers": [],
        "queues": {},
        "discovered_modules": discover_task_modules(),
        "checked_at": datetime.now(timezone.utc).isoformat(),
    }
    if not config.enabled:
        return _add_sections(report)
    try:
        report["redis_connection"].update(ok=True, latency_ms=redis_latency_ms())
        workers = live_workers()
        stats = queue_stats()
        report["lost_messages"] = lost_counts()
    except Exception as exc:  # any Redis failure means down, with the reason and no secret
        report["redis_connection"]["error"] = mask_text(f"{type(exc).__name__}: {exc}")
        report["status"] = DOWN
        return _add_sections(report)

    for stat in stats:
        stat.consumers = sum(1 for worker in workers if stat.name in worker.queues)
    report["workers"] = [worker.as_dict() for worker in workers]
    report["queues"] = {stat.name: stat.as_dict() for stat in stats}
    unconsumed = [stat.name for stat in stats if not stat.has_consumer]
    report["queues_without_consumer"] = unconsumed
    report["paused_queues"] = [stat.name for stat in stats if stat.paused]  # on purpose: not degraded
    if errors or (unconsumed and config.health_requires_consumers):
        report["status"] = DEGRADED
    return _add_sections(report)
