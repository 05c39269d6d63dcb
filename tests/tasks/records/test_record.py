"""``records.record``: written now or through the buffer; events follow the commit (no Redis)."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.tasks import records
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.records import Transition, now, set_event_sink

pytestmark = pytest.mark.django_db(transaction=True)


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, str]] = []

    def publish_events(self, events, max_length) -> None:
        self.events.extend(events)

    def count_finished(self, counts) -> None:
        pass


@pytest.fixture
def sink():
    sink = ListSink()
    set_event_sink(sink)
    yield sink
    set_event_sink(None)


def job(status: str, **values) -> Transition:
    return Transition(
        message_id="m1", actor_name="add", queue_name="default", status=status, enqueued_at=now(), **values
    )


def test_waiting_writes_now_and_publishes_after_the_callers_commit(sink):
    with transaction.atomic():
        records.record(job(JobStatus.PENDING), wait=True)
        assert sink.events == []  # not before the record is committed
    assert JobRecord.objects.get(pk="m1").status == JobStatus.PENDING
    assert [event["event"] for event in sink.events] == ["enqueued"]


def test_a_rolled_back_record_publishes_nothing(sink):
    with pytest.raises(RuntimeError), transaction.atomic():
        records.record(job(JobStatus.PENDING), wait=True)
        raise RuntimeError("the caller's transaction fails")
    assert not JobRecord.objects.filter(pk="m1").exists()
    assert sink.events == []


def test_an_older_transition_never_overwrites_a_newer_one(sink):
    first = job(JobStatus.PENDING)
    records.record(job(JobStatus.RUNNING), wait=True)
    records.record(first, wait=True, new=True)  # built earlier, written later
    records.record(first, wait=True)
    assert JobRecord.objects.get(pk="m1").status == JobStatus.RUNNING


def test_publish_false_writes_the_record_and_returns_no_event(sink):
    assert records.record(job(JobStatus.PENDING), wait=True, publish=False) == []
    assert sink.events == [] and JobRecord.objects.filter(pk="m1").exists()


def test_buffered_records_and_events_arrive_at_the_next_flush(sink):
    events = records.record(job(JobStatus.RUNNING, started_at=now()))
    assert [event["event"] for event in events] == ["started"]
    assert records.wait_until_flushed()
    assert JobRecord.objects.get(pk="m1").status == JobStatus.RUNNING
    assert [event["id"] for event in sink.events] == [events[0]["id"]]
