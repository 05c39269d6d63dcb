"""Build and run one Temporal worker for the discovered workflows and activities (``runtemporal``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from apps.workflows.client import connect, require_enabled
from apps.workflows.discovery import Definitions, load_definitions

if TYPE_CHECKING:
    from apps.workflows.config import TemporalConfig

logger = logging.getLogger(__name__)

#: Local activities (the lifecycle recorder) get threads of their own beside the activities'.
LOCAL_ACTIVITY_THREADS = 4
#: A heartbeat reaches the server at least this often: it is how a running activity learns of a
#: cancel request and how far a retry may skip (the SDK's default waits up to 0.8 x heartbeat timeout).
HEARTBEAT_THROTTLE = timedelta(seconds=2)


async def run_worker(
    stop: asyncio.Event,
    *,
    config: TemporalConfig | None = None,
    identity: str,
    on_ready: Callable[[Definitions], None] | None = None,
) -> None:
    """Poll the task queue until ``stop`` is set, then shut down gracefully: running activities get
    ``shutdown_timeout`` seconds to finish before they are cancelled."""
    from temporalio.worker import Worker

    from apps.workflows.executor import ActivityExecutor
    from apps.workflows.interceptors import LifecycleInterceptor

    config = config or require_enabled()
    definitions = load_definitions()
    client = await connect(config, identity=identity)
    threads = config.activity_threads + LOCAL_ACTIVITY_THREADS
    with ActivityExecutor(max_workers=threads, thread_name_prefix="activity") as executor:
        worker = Worker(
            client,
            task_queue=config.task_queue,
            workflows=list(definitions.workflows.values()),
            activities=list(definitions.activities.values()),
            activity_executor=executor,
            interceptors=[LifecycleInterceptor()],
            identity=identity,
            max_concurrent_activities=config.activity_threads,
            max_concurrent_local_activities=LOCAL_ACTIVITY_THREADS,
            graceful_shutdown_timeout=timedelta(seconds=config.shutdown_timeout),
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=config.sticky_queue_timeout),
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        )
        async with worker:
            if on_ready is not None:
                on_ready(definitions)
            await stop.wait()
            logger.info("Temporal worker %s stopping", identity)
