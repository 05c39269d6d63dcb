"""The per-process buffer of transitions and events, written in batches by one flusher thread.

A synchronous database round-trip per transition costs more than a typical task, so worker threads
only hand transitions to this buffer. The flusher coalesces them per job (pending → running →
completed written once), upserts each batch in one transaction, then runs what waited for that
commit (the broker's acks) and publishes the events in one call. If the database refuses, the
batch is kept and retried with back-off, and nothing that waited for it runs; past
``MAX_BUFFERED`` jobs the oldest are dropped (logged). A SIGKILL loses at most one flush interval
of transitions, and the broker redelivers the unacknowledged messages, which are recorded again.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections

from apps.tasks.config import get_task_config
from apps.tasks.status import JobStatus

from . import sql
from .sinks import event_sink
from .transitions import Transition

logger = logging.getLogger(__name__)

MAX_BUFFERED = 100_000
#: Flushes wake early once this many jobs wait.
FLUSH_AT = 1000
#: The longest back-off after failed flushes, in flush intervals (2 ** 6).
MAX_BACKOFF_EXPONENT = 6
#: Terminal statuses counted per minute for the dashboard, and the series they count in.
COUNTED_STATUSES = {JobStatus.COMPLETED: "completed", JobStatus.FAILED: "failed", JobStatus.DEAD_LETTER: "failed"}

#: (callback, key) → items: ``callback(*key, items)`` runs once the batch holding them commits.
Settlements = dict[tuple[Callable[..., Any], tuple], list[Any]]


def finished_counts(transitions: Iterable[Transition]) -> dict[tuple[int, str], int]:
    """``{(epoch minute, series): n}`` of the jobs these transitions finish."""
    counts: dict[tuple[int, str], int] = {}
    for item in transitions:
        series = COUNTED_STATUSES.get(item.status)
        if series is not None and item.finished_at is not None:
            key = (int(item.finished_at.timestamp() // 60), series)
            counts[key] = counts.get(key, 0) + 1
    return counts


def count_finished(transitions: Iterable[Transition]) -> None:
    """Add the jobs these transitions finish to the sink's per-minute counters (the dashboard chart).
    Logged, never raised: a counter is not worth failing the record it follows."""
    counts = finished_counts(transitions)
    sink = event_sink()
    if not counts or sink is None:
        return
    try:
        sink.count_finished(counts)
    except Exception:
        logger.exception("Could not update the per-minute job counters.")


def publish_events(events: list[dict[str, str]]) -> None:
    """Append events to the sink's stream now (raises what the sink raises)."""
    sink = event_sink()
    if events and sink is not None:
        sink.publish_events(events, get_task_config().events_max_length)


class Recorder:
    """The buffer and its flusher thread."""

    def __init__(self, flush_interval: float) -> None:
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._transitions: dict[str, Transition] = {}
        self._events: list[dict[str, str]] = []
        self._settlements: Settlements = {}
        self._wake = threading.Event()
        self._stopping = False
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Consecutive flushes that could not write their batch (the flusher backs off on them).
        self.failures = 0
        self.pid = os.getpid()

    def add(self, transition: Transition | None, events: list[dict[str, str]]) -> None:
        with self._lock:
            if transition is not None:
                earlier = self._transitions.get(transition.message_id)
                self._transitions[transition.message_id] = (
                    transition.merged_after(earlier) if earlier is not None else transition
                )
            self._events.extend(events)
            overfull = len(self._transitions) >= FLUSH_AT
        self._ensure_thread()
        if overfull:
            self._wake.set()

    def after_commit(self, callback: Callable[..., Any], key: tuple, item: Any) -> None:
        """Run ``callback(*key, [item, ...])`` once the records buffered so far are committed."""
        with self._lock:
            self._settlements.setdefault((callback, key), []).append(item)
        self._ensure_thread()

    def flush(self) -> bool:
        """Write everything buffered so far; on failure keep it for the next attempt. True when the
        records were written (events are retried on their own)."""
        with self._flush_lock:
            with self._lock:
                transitions, self._transitions = self._transitions, {}
                events, self._events = self._events, []
                settlements, self._settlements = self._settlements, {}
            try:
                sql.write_transitions(list(transitions.values()))
            except Exception:
                logger.exception("Could not write %d job records; will retry.", len(transitions))
                self._keep(transitions, settlements, events)
                connections["default"].close()
                return False
            self._settle(settlements)
            # Coalesced per job: a job finished once in this batch is counted once.
            count_finished(transitions.values())
            try:
                publish_events(events)
            except Exception:
                logger.exception("Could not publish %d lifecycle events; will retry.", len(events))
                self._keep({}, {}, events)
            return True

    def _settle(self, settlements: Settlements) -> None:
        for (callback, key), items in settlements.items():
            try:
                callback(*key, items)
            except Exception:
                logger.exception("Could not run %s%r for %d items after commit; will retry.", callback, key, len(items))
                self._keep({}, {(callback, key): items}, [])

    def _keep(self, transitions: dict[str, Transition], settlements: Settlements, events: list) -> None:
        """Put back what a flush could not finish, before what arrived meanwhile."""
        with self._lock:
            for message_id, transition in transitions.items():
                later = self._transitions.get(message_id)
                self._transitions[message_id] = later.merged_after(transition) if later else transition
            if len(self._transitions) > MAX_BUFFERED:
                logger.error("Job record buffer over %d entries: dropping the oldest.", MAX_BUFFERED)
                for message_id in list(self._transitions)[: len(self._transitions) - MAX_BUFFERED]:
                    del self._transitions[message_id]
            for key, items in settlements.items():
                self._settlements.setdefault(key, [])[:0] = items
            if events:
                self._events = (events + self._events)[-MAX_BUFFERED:]

    def pending(self) -> int:
        with self._lock:
            settling = sum(len(items) for items in self._settlements.values())
            return len(self._transitions) + len(self._events) + settling

    def next_wait(self) -> float:
        """Seconds until the next flush: the interval, doubled per consecutive failed flush."""
        return self.flush_interval * (2 ** min(self.failures, MAX_BACKOFF_EXPONENT))

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="tasks-recorder", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.next_wait())
            self._wake.clear()
            self.failures = 0 if self.flush() else self.failures + 1
        try:
            self.flush()
        finally:
            connections.close_all()

    def stop(self) -> None:
        """Flush and stop the thread (worker shutdown)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.flush()


_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def get_recorder() -> Recorder:
    """This process's recorder (a forked worker process gets its own)."""
    global _recorder
    if _recorder is None or _recorder.pid != os.getpid():
        with _recorder_lock:
            if _recorder is None or _recorder.pid != os.getpid():
                _recorder = Recorder(get_task_config().record_flush_interval_ms / 1000)
                atexit.register(_recorder.flush)
    return _recorder


def wait_until_flushed(timeout: float = 10.0) -> bool:
    """Flush this process's buffer now; True when nothing is left (tests and shutdown)."""
    recorder = get_recorder()
    deadline = time.monotonic() + timeout
    while True:
        recorder.flush()
        if recorder.pending() == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
