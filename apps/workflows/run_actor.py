"""Run a dramatiq actor's function as a durable Temporal job (what the router does with a long actor job).

The workflow is one activity with the actor's own limits: its time limit, its retries and backoff,
its permanent errors never retried. A heartbeat thread runs beside the function, so a worker that
dies mid-call is noticed within ``heartbeat_timeout_seconds`` (``TEMPORAL_CONFIG.heartbeat_timeout``,
5 s by default) and the call runs again elsewhere.
Sandbox-safe at module level (Django is imported inside the activity only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from apps.workflows.heartbeat import DEFAULT_HEARTBEAT_TIMEOUT, heartbeating


@dataclass
class ActorCall:
    """An actor and its arguments, with the limits the activity runs under (seconds)."""

    actor: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    time_limit_seconds: float = 600.0
    max_attempts: int = 6
    min_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    heartbeat_timeout_seconds: float = DEFAULT_HEARTBEAT_TIMEOUT


@activity.defn(name="run_actor")
def run_actor(call: ActorCall) -> Any:
    """Call the actor's function; permanent errors (bad arguments, PermanentError) are not retried."""
    from apps.tasks.enqueue import resolve_actor
    from apps.tasks.errors import is_permanent

    actor = resolve_actor(call.actor)
    with heartbeating():
        try:
            return actor.fn(*call.args, **call.kwargs)
        except Exception as exc:
            if is_permanent(exc):
                raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
            raise


@workflow.defn(name="RunActorWorkflow")
class RunActorWorkflow:
    """One actor call, retried by Temporal instead of dramatiq."""

    @workflow.run
    async def run(self, call: ActorCall) -> Any:
        return await workflow.execute_activity(
            run_actor,
            call,
            start_to_close_timeout=timedelta(seconds=call.time_limit_seconds),
            heartbeat_timeout=timedelta(seconds=call.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=call.min_backoff_seconds),
                maximum_interval=timedelta(seconds=max(call.min_backoff_seconds, call.max_backoff_seconds)),
                maximum_attempts=call.max_attempts,
            ),
        )
