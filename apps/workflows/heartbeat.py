"""Heartbeats of synchronous activities, sent from a thread beside their work, well within their time-out.

A heartbeat is how Temporal tells a dead worker from a slow activity: an activity silent for its
heartbeat time-out is retried elsewhere. So the time-out is short (seconds: that is how long a dead
worker stalls a job), and a thread beats ``BEATS_PER_TIMEOUT`` times per time-out with the latest
details (where a retry resumes), however long the work between two ``progress`` calls takes.
Sandbox-safe: no Django.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from temporalio import activity

from apps.workflows.defaults import DEFAULT_HEARTBEAT_TIMEOUT

__all__ = ["DEFAULT_HEARTBEAT_TIMEOUT", "Heartbeat", "beat_interval", "heartbeating"]
#: Beats per time-out: several, so a late one (a busy host, the SDK's throttling) does not time it out.
BEATS_PER_TIMEOUT = 4


def beat_interval(timeout: timedelta | None) -> float:
    """Seconds between two beats of an activity whose heartbeat time-out is ``timeout``."""
    seconds = timeout.total_seconds() if timeout else DEFAULT_HEARTBEAT_TIMEOUT
    return max(0.1, seconds / BEATS_PER_TIMEOUT)


class Heartbeat:
    """The running activity's heartbeat; ``progress`` records new details (and beats at once)."""

    def __init__(self, details: tuple[Any, ...]) -> None:
        self._details = details
        self._stop = threading.Event()

    def progress(self, *details: Any) -> None:
        self._details = details
        activity.heartbeat(*details)

    def _beat_until_stopped(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                activity.heartbeat(*self._details)
            except Exception:  # the activity ended (or the worker stops) between the wait and the call
                return


@contextmanager
def heartbeating(*details: Any) -> Iterator[Heartbeat]:
    """Beat for the running activity while the block runs, at the interval its heartbeat time-out asks."""
    info = activity.info()
    heartbeat = Heartbeat(details)
    # The copied context carries the activity's, so the thread reports for this activity.
    thread = threading.Thread(
        target=contextvars.copy_context().run,
        args=(heartbeat._beat_until_stopped, beat_interval(info.heartbeat_timeout)),
        name=f"heartbeat-{info.activity_type}",
        daemon=True,
    )
    thread.start()
    try:
        yield heartbeat
    finally:
        heartbeat._stop.set()
        thread.join(timeout=15)
