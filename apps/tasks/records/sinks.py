"""Where lifecycle events and finished-job counts go: the broker, handed in, never imported.

records sits below the broker, so it only knows this protocol. By default the sink is dramatiq's
current broker when it implements it (``apps.tasks.broker.RedisBroker`` does; a StubBroker, with
tasks disabled, does not, and events are then dropped). ``set_event_sink`` hands in another one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import dramatiq


@runtime_checkable
class EventSink(Protocol):
    def publish_events(self, events: list[dict[str, str]], max_length: int) -> None:
        """Append events to the capped lifecycle stream, in order."""

    def count_finished(self, counts: dict[tuple[int, str], int]) -> None:
        """Add ``{(epoch minute, "completed" | "failed"): n}`` to the per-minute counters."""


_sink: EventSink | None = None


def set_event_sink(sink: EventSink | None) -> None:
    """Send events to ``sink`` (None: back to the current broker)."""
    global _sink
    _sink = sink


def event_sink() -> EventSink | None:
    if _sink is not None:
        return _sink
    broker = dramatiq.get_broker()
    return broker if isinstance(broker, EventSink) else None
