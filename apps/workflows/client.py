"""Reach Temporal from synchronous Django code (views, commands, health) as well as from async code.

Each synchronous call connects, does its work and lets the client go: a loopback connection costs
about 5 ms, and no client, event loop or SDK thread is left waiting on a loop that is gone (the
SDK's Rust threads calling into a finalising interpreter is what aborts processes, sdk-python #300).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from django.core.exceptions import ImproperlyConfigured

from apps.workflows.config import TemporalConfig, get_temporal_config

if TYPE_CHECKING:
    from temporalio.client import Client

T = TypeVar("T")


class WorkflowsDisabled(ImproperlyConfigured):
    """Temporal is off (``TEMPORAL_CONFIG.enabled`` is False): nothing may connect to it."""


def temporal_config() -> TemporalConfig:
    """The running ``TEMPORAL_CONFIG``."""
    return get_temporal_config()


def require_enabled() -> TemporalConfig:
    config = temporal_config()
    if not config.enabled:
        raise WorkflowsDisabled("Temporal is disabled: set TEMPORAL_ENABLED=1 (TEMPORAL_CONFIG.enabled).")
    return config


async def connect(config: TemporalConfig | None = None, identity: str | None = None) -> Client:
    """A client for the configured server and namespace (fails after ``connect_timeout`` seconds)."""
    from temporalio.client import Client

    from apps.workflows.failures import DATA_CONVERTER

    config = config or require_enabled()
    return await Client.connect(
        config.address,
        namespace=config.namespace,
        connect_timeout=timedelta(seconds=config.connect_timeout),
        identity=identity,
        data_converter=DATA_CONVERTER,  # error types as dotted paths (workers use their client's)
    )


def run(call: Callable[[Client], Awaitable[T]], config: TemporalConfig | None = None) -> T:
    """``await call(client)`` with a fresh client, from synchronous code; returns its result."""

    async def main() -> T:
        return await call(await connect(config))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from inside an event loop (an async view): run on a helper thread with a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="temporal-client") as pool:
        return pool.submit(asyncio.run, main()).result()
