"""What apps.tasks gained for a second backend: the ``backend`` column, the event ``source``, filters,
and how Temporal lifecycle events and closed workflows land in job records (no server needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from apps.tasks.models import JobBackend, JobRecord, JobStatus
from apps.tasks.records import Transition, event_fields, write_transitions
from apps.tasks.services import records
from apps.workflows.lifecycle import WorkflowEvent
from apps.workflows.records import CANCELLED_ERROR, apply_workflow_event, reconcile
from tests.helpers import stream_events

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def with_temporal(settings, **changes) -> None:
    settings.TEMPORAL_CONFIG = settings.TEMPORAL_CONFIG.model_copy(
        update={"enabled": True, "task_queue": "long", **changes}
    )


def test_event_source_defaults_to_dramatiq():
    assert event_fields("started", job_id="j", queue="q", actor="a")["source"] == "dramatiq"
    assert event_fields("started", job_id="j", queue="q", actor="a", source="temporal")["source"] == "temporal"


@pytest.mark.django_db(transaction=True)
def test_backend_is_set_on_insert_and_never_changed_by_later_transitions():
    base = {"message_id": "w1", "actor_name": "Reindex", "queue_name": "long", "enqueued_at": T0}
    write_transitions([Transition(status="pending", updated_at=T0, backend="temporal", **base)])
    write_transitions([Transition(status="running", updated_at=T0 + timedelta(seconds=1), **base)])
    record = JobRecord.objects.get(pk="w1")
    assert (record.status, record.backend) == (JobStatus.RUNNING, JobBackend.TEMPORAL)
    write_transitions([Transition(status="pending", updated_at=T0, message_id="d1", actor_name="add",
                                  queue_name="default", enqueued_at=T0)])  # fmt: skip
    assert JobRecord.objects.get(pk="d1").backend == JobBackend.DRAMATIQ


@pytest.mark.django_db(transaction=True)
def test_filters_by_backend_and_by_the_temporal_queue_when_enabled(settings):
    for job_id, backend, queue in (("d", "dramatiq", "default"), ("t", "temporal", "long")):
        JobRecord.objects.create(message_id=job_id, actor_name="x", queue_name=queue, backend=backend,
                                 enqueued_at=T0, updated_at=T0)  # fmt: skip
    assert [row.pk for row in records.filter_records(backend="temporal")] == ["t"]
    with pytest.raises(records.InvalidFilter, match="unknown backend"):
        records.filter_records(backend="celery")
    with pytest.raises(records.InvalidFilter):  # not a queue while Temporal is off
        records.filter_records(queue="long")
    with_temporal(settings)
    assert [row.pk for row in records.filter_records(queue="long")] == ["t"]
    assert records.record_as_dict(JobRecord.objects.get(pk="t"))["backend"] == "temporal"


@pytest.mark.django_db(transaction=True)
def test_admin_offers_the_temporal_queue_and_backend_filters(settings, admin_client):
    with_temporal(settings)
    JobRecord.objects.create(message_id="t", actor_name="x", queue_name="long", backend="temporal",
                             enqueued_at=T0, updated_at=T0)  # fmt: skip
    page = admin_client.get("/admin/dramatiq_tasks/jobrecord/").content.decode()
    assert "?queue_name=long" in page and "?backend__exact=temporal" in page


def event(name: str, at: datetime, **values) -> WorkflowEvent:
    return WorkflowEvent(
        name, job_id="wf-1", run_id="run-1", workflow_type="ReindexKnowledgeWorkflow", task_queue="long", attempt=1,
        at=at.isoformat(), enqueued_at=T0.isoformat(), **values,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_workflow_events_move_the_record_and_reach_the_stream(broker_redis, clean_queues):
    apply_workflow_event(event("started", T0, args=[{"batch_size": 2}]))
    record = JobRecord.objects.get(pk="wf-1")
    assert (record.status, record.backend, record.started_at, record.args) == (
        JobStatus.RUNNING, JobBackend.TEMPORAL, T0, [{"batch_size": 2}],
    )  # fmt: skip
    apply_workflow_event(event("completed", T0 + timedelta(seconds=3), result={"outcome": "completed"}))
    record.refresh_from_db()
    assert (record.status, record.duration_ms, record.result) == (JobStatus.COMPLETED, 3000, {"outcome": "completed"})
    stream = stream_events(broker_redis, "wf-1")
    assert [(item["event"], item["source"], item["meta"]["kind"]) for item in stream] == [
        ("started", "temporal", "workflow"), ("completed", "temporal", "workflow"),
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_workflow_is_a_cancelled_record_saying_who_and_why(broker_redis, clean_queues):
    apply_workflow_event(event("started", T0))
    apply_workflow_event(event("cancelled", T0 + timedelta(seconds=1), error_message="cancelled by ops: too slow"))
    record = JobRecord.objects.get(pk="wf-1")
    assert (record.status, record.error_type, record.error_message, record.duration_ms) == (
        JobStatus.CANCELLED, CANCELLED_ERROR, "cancelled by ops: too slow", 1000,
    )  # fmt: skip
    assert [item["event"] for item in stream_events(broker_redis, "wf-1")] == ["started", "cancelled"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_workflow_keeps_its_error_type_and_message():
    apply_workflow_event(event("started", T0))
    failed = event("failed", T0 + timedelta(seconds=2), error_type="builtins.ValueError", error_message="bad")
    apply_workflow_event(failed)
    record = JobRecord.objects.get(pk="wf-1")
    assert (record.status, record.error_type, record.error_message) == (JobStatus.FAILED, "builtins.ValueError", "bad")


@pytest.mark.django_db(transaction=True)
def test_reconcile_closes_records_of_workflows_closed_unseen():
    apply_workflow_event(event("started", T0))
    assert not reconcile("wf-1", "RUNNING", None, "ReindexKnowledgeWorkflow", "long")
    assert reconcile("wf-1", "TERMINATED", T0 + timedelta(seconds=5), "ReindexKnowledgeWorkflow", "long")
    record = JobRecord.objects.get(pk="wf-1")
    assert (record.status, record.error_type, record.duration_ms) == (
        JobStatus.FAILED, "temporal.WorkflowTerminated", 5000,
    )  # fmt: skip
    assert not reconcile("wf-1", "COMPLETED", None, "ReindexKnowledgeWorkflow", "long")  # terminal stays


@pytest.mark.django_db(transaction=True)
def test_reconcile_closes_a_workflow_cancelled_unseen_as_cancelled():
    assert reconcile("wf-2", "CANCELED", T0, "ReindexKnowledgeWorkflow", "long")
    record = JobRecord.objects.get(pk="wf-2")
    assert (record.status, record.error_type, record.error_message) == (
        JobStatus.CANCELLED, CANCELLED_ERROR, "workflow canceled",
    )  # fmt: skip
