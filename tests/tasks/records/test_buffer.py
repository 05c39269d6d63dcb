"""The batching buffer: what is kept, retried and settled when the database or the broker fails.

No Redis: events go to a list sink. These carry the guarantee that a message is acknowledged only
after its record commits.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from django.db import OperationalError

from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.records import Transition, buffer, events_for, now, set_event_sink

pytestmark = pytest.mark.django_db


class ListSink:
    """Collects what the broker would get."""

    def __init__(self) -> None:
        self.events: list[dict[str, str]] = []
        self.counts: list[dict[tuple[int, str], int]] = []
        self.refuse = 0

    def publish_events(self, events, max_length) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("stream down")
        self.events.extend(events)

    def count_finished(self, counts) -> None:
        self.counts.append(counts)


@pytest.fixture
def sink():
    sink = ListSink()
    set_event_sink(sink)
    yield sink
    set_event_sink(None)


@pytest.fixture
def recorder():
    # A flusher that never wakes on its own: the test flushes.
    made = buffer.Recorder(flush_interval=3600)
    made._ensure_thread = lambda: None
    return made


def patch_writes(monkeypatch, write) -> None:
    """Replace ``sql.write_transitions`` for this test's own flushes only: the process-wide
    recorder's flusher thread (started by earlier tests) goes on writing through the real one."""
    real = buffer.sql.write_transitions
    test_thread = threading.current_thread()

    def write_here(transitions, using="default"):
        if threading.current_thread() is not test_thread:
            return real(transitions, using=using)
        return write(transitions, using=using)

    monkeypatch.setattr(buffer.sql, "write_transitions", write_here)


class FailingWrites:
    """``sql.write_transitions`` that refuses ``times`` batches, as a database that is down would."""

    def __init__(self, monkeypatch, times: int) -> None:
        self.times = times
        self.attempts = 0
        real = buffer.sql.write_transitions

        def write(transitions, using="default"):
            self.attempts += 1
            if self.times:
                self.times -= 1
                raise OperationalError("server closed the connection unexpectedly")
            real(transitions, using=using)

        patch_writes(monkeypatch, write)


def job(message_id: str, status: str, at, **values) -> Transition:
    return Transition(
        message_id=message_id, actor_name="add", queue_name="default", status=status, enqueued_at=at,
        updated_at=at, **values,
    )  # fmt: skip


def add(recorder, transition: Transition) -> None:
    recorder.add(transition, events_for(transition))


def test_transitions_of_one_job_are_coalesced_into_one_row_keeping_what_each_knew(recorder, sink):
    t0 = now()
    add(recorder, job("m1", JobStatus.PENDING, t0))
    add(recorder, job("m1", JobStatus.RUNNING, t0 + timedelta(seconds=1), started_at=t0, attempts=1, worker="h:1"))
    add(recorder, job("m1", JobStatus.COMPLETED, t0 + timedelta(seconds=2), finished_at=t0, attempts=1, result=3))
    assert recorder.pending() == 4  # one job, three events
    assert recorder.flush() is True
    row = JobRecord.objects.get(pk="m1")
    assert (row.status, row.started_at, row.result, row.attempts) == ("completed", t0, 3, 1)
    assert [event["event"] for event in sink.events] == ["enqueued", "started", "completed"]
    assert sink.counts == [{(int(t0.timestamp() // 60), "completed"): 1}]
    assert recorder.pending() == 0


@pytest.mark.django_db(transaction=True)  # a failed flush closes the connection
def test_database_down_keeps_the_batch_settles_nothing_and_retries_it_whole(recorder, sink, monkeypatch):
    failing = FailingWrites(monkeypatch, times=2)
    acked: list[tuple] = []
    t0 = now()
    add(recorder, job("m1", JobStatus.COMPLETED, t0, finished_at=t0))
    recorder.after_commit(lambda queue, command, ids: acked.append((queue, command, ids)), ("default", "ack"), "r1")
    assert recorder.flush() is False
    assert recorder.flush() is False
    # Nothing that waited for the commit ran: no ack, no event, no record.
    assert (acked, sink.events, JobRecord.objects.filter(pk="m1").exists()) == ([], [], False)
    add(recorder, job("m2", JobStatus.COMPLETED, t0 + timedelta(seconds=1), finished_at=t0))
    recorder.after_commit(lambda queue, command, ids: acked.append((queue, command, ids)), ("default", "ack"), "r2")
    assert recorder.flush() is True
    assert failing.attempts == 3
    assert set(JobRecord.objects.values_list("pk", "status")) == {("m1", "completed"), ("m2", "completed")}
    # The kept ack comes before the later one; lambdas differ, so each ran in its own call.
    assert [ids for _, _, ids in acked] == [["r1"], ["r2"]]
    assert [event["job_id"] for event in sink.events] == ["m1", "m2"]


def test_after_commit_items_of_one_callback_and_key_go_in_one_call(recorder, sink):
    calls: list[tuple] = []

    def settle(queue, command, ids):
        calls.append((queue, command, list(ids)))

    for redis_id in ("r1", "r2", "r3"):
        recorder.after_commit(settle, ("default", "ack"), redis_id)
    recorder.after_commit(settle, ("default", "nack"), "r4")
    assert recorder.flush() is True
    assert calls == [("default", "ack", ["r1", "r2", "r3"]), ("default", "nack", ["r4"])]


def test_a_failed_settlement_is_retried_after_the_next_commit_without_writing_again(recorder, sink, monkeypatch):
    calls: list[list[str]] = []
    refusals = [ConnectionError("redis down")]

    def settle(queue, command, ids):
        if refusals:
            raise refusals.pop()
        calls.append(list(ids))

    t0 = now()
    add(recorder, job("m1", JobStatus.COMPLETED, t0, finished_at=t0))
    recorder.after_commit(settle, ("default", "ack"), "r1")
    assert recorder.flush() is True  # the records committed; the ack did not go
    assert calls == [] and recorder.pending() == 1
    writes = FailingWrites(monkeypatch, times=0)
    assert recorder.flush() is True
    assert calls == [["r1"]]
    assert writes.attempts == 1 and recorder.pending() == 0


def test_events_the_sink_refuses_are_kept_in_order_and_sent_later(recorder, sink):
    t0 = now()
    sink.refuse = 1
    add(recorder, job("m1", JobStatus.RUNNING, t0, started_at=t0))
    assert recorder.flush() is True  # records are written; the event waits
    add(recorder, job("m2", JobStatus.RUNNING, t0, started_at=t0))
    assert recorder.flush() is True
    assert [event["job_id"] for event in sink.events] == ["m1", "m2"]


@pytest.mark.django_db(transaction=True)  # a failed flush closes the connection
def test_the_buffer_is_capped_dropping_the_oldest_jobs_with_an_error(recorder, sink, monkeypatch, caplog):
    FailingWrites(monkeypatch, times=1)
    monkeypatch.setattr(buffer, "MAX_BUFFERED", 3)
    t0 = now()
    for number in range(5):
        recorder.add(job(f"m{number}", JobStatus.PENDING, t0), [])
    with caplog.at_level(logging.ERROR, logger=buffer.__name__):
        assert recorder.flush() is False
    assert "buffer over 3 entries" in caplog.text
    assert recorder.flush() is True
    assert sorted(JobRecord.objects.values_list("pk", flat=True)) == ["m2", "m3", "m4"]


@pytest.mark.django_db(transaction=True)  # a failed flush closes the connection
def test_back_off_grows_only_with_failed_flushes_not_with_steady_load(recorder, sink, monkeypatch):
    """Under steady load more arrives during a flush than it wrote: that is no failure."""
    t0 = now()
    for number in range(3):
        add(recorder, job(f"a{number}", JobStatus.PENDING, t0))
    real_write = buffer.sql.write_transitions

    def write_while_more_arrives(transitions, using="default"):
        real_write(transitions, using=using)
        for extra in range(len(transitions) + 1):
            recorder.add(job(f"b{len(transitions)}-{extra}", JobStatus.PENDING, t0), [])

    patch_writes(monkeypatch, write_while_more_arrives)
    ok = recorder.flush()
    recorder.failures = 0 if ok else recorder.failures + 1
    assert recorder.pending() > 3 and recorder.failures == 0
    assert recorder.next_wait() == recorder.flush_interval
    FailingWrites(monkeypatch, times=10)
    for expected in (1, 2, 3):
        recorder.failures = 0 if recorder.flush() else recorder.failures + 1
        assert recorder.failures == expected
    assert recorder.next_wait() == recorder.flush_interval * 8
    recorder.failures = 50
    assert recorder.next_wait() == recorder.flush_interval * 2**buffer.MAX_BACKOFF_EXPONENT
