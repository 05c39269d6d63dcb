"""``manage.py workflows list|describe|cancel|signal|start`` and ``manage.py runtemporal``'s lifecycle."""

from __future__ import annotations

import getpass
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.tasks.models import JobStatus
from apps.workflows import control
from tests.helpers import manage_env, run_manage, wait_for
from tests.knowbase.reindex.documents import indexed_documents, start_reindex

from .conftest import worker_env
from .helpers import TemporalWorker, history, wait_for_phase, wait_for_record

pytestmark = pytest.mark.django_db(transaction=True)


def workflows(*args: str) -> str:
    out = StringIO()
    call_command("workflows", *args, stdout=out)
    return out.getvalue()


@pytest.mark.worker
def test_list_describe_signal_cancel(temporal, module_temporal_worker, clean_queues):
    indexed_documents(3)
    job_id = start_reindex(batch_size=2, require_approval=True)
    wait_for_phase(job_id, "awaiting_approval")

    listed = json.loads(workflows("--json", "list", "--status", "running"))
    assert [(row["job_id"], row["workflow_type"], row["record_status"]) for row in listed] == [
        (job_id, "ReindexKnowledgeWorkflow", "running")
    ]
    table = workflows("list", "--type", "ReindexKnowledgeWorkflow")
    assert job_id in table and "RUNNING" in table

    described = json.loads(workflows("--json", "describe", job_id))
    assert described["status"] == "RUNNING" and described["progress"]["phase"] == "awaiting_approval"
    assert described["record"]["backend"] == "temporal"
    assert "progress: " in workflows("describe", job_id)

    assert "signal 'pause' sent" in workflows("signal", job_id, "pause")
    cancelled = workflows("cancel", job_id, "--reason", "from the CLI")
    assert f"cancellation requested for {job_id}" in cancelled
    record = wait_for_record(job_id, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.COMPLETED)
    # Who and why, as a cancelled dramatiq job says it.
    assert (record.status, record.error_message) == (
        JobStatus.CANCELLED, f"cancelled by {getpass.getuser()} (manage.py workflows cancel): from the CLI",
    )  # fmt: skip
    # The record is written just before the workflow closes: its status follows within moments.
    wait_for(lambda: json.loads(workflows("--json", "describe", job_id))["status"] == "CANCELED", timeout=30)


@pytest.mark.worker
def test_start_goes_through_the_router(temporal, module_temporal_worker, clean_queues):
    started = json.loads(workflows("--json", "start", "add", "--arg", "20", "--arg", "22", "--expected-seconds", "60"))
    assert started["backend"] == "temporal"
    assert wait_for_record(started["job_id"], JobStatus.COMPLETED, timeout=60).result == 42
    reindex = workflows("--json", "start", "ReindexKnowledgeWorkflow", "--arg", '{"require_approval": false}')
    job_id = json.loads(reindex)["job_id"]
    assert wait_for_record(job_id, JobStatus.COMPLETED, timeout=60).result["outcome"] == "completed"


@pytest.mark.worker
def test_unknown_signals_and_finished_workflows_are_refused(temporal, module_temporal_worker, clean_queues):
    job_id = start_reindex(require_approval=True)
    wait_for_phase(job_id, "awaiting_approval")

    with pytest.raises(CommandError, match=r"unknown signal 'aprove'.*approve, pause, resume"):
        workflows("signal", job_id, "aprove")
    with pytest.raises(control.Refused, match="unknown signal"):
        control.signal(job_id, "aprove")
    # From the command line: an error on stderr and a non-zero exit, not "sent".
    result = run_manage("workflows", "signal", job_id, "aprove", env=worker_env(temporal))
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert "unknown signal 'aprove'" in result.stderr
    assert not any(event["name"] == "aprove" for event in history(job_id))

    control.signal(job_id, "approve")
    assert wait_for_record(job_id, JobStatus.COMPLETED, JobStatus.FAILED).status == JobStatus.COMPLETED
    wait_for(lambda: control.describe(job_id)["status"] == "COMPLETED", timeout=30)
    with pytest.raises(CommandError, match=f"workflow {job_id} is completed"):
        workflows("cancel", job_id)
    with pytest.raises(CommandError, match=f"workflow {job_id} is completed"):
        workflows("signal", job_id, "approve")
    with pytest.raises(control.Refused, match="is completed"):
        control.cancel(job_id, by="test")
    result = run_manage("workflows", "cancel", job_id, env=worker_env(temporal))
    assert result.returncode == 1 and "is completed" in result.stderr, result.stdout
    assert wait_for_record(job_id, JobStatus.COMPLETED).status == JobStatus.COMPLETED


def test_errors_are_command_errors(temporal):
    with pytest.raises(CommandError, match="no workflow"):
        workflows("describe", "no-such-job")
    with pytest.raises(CommandError, match="not JSON"):
        workflows("signal", "no-such-job", "approve", "--arg", "{oops")
    with pytest.raises(CommandError, match="no running workflow"):
        workflows("cancel", "no-such-job")


def test_disabled_temporal_refuses_politely():
    result = run_manage("workflows", "list", env=manage_env(TEMPORAL_ENABLED="0"))
    assert result.returncode == 1 and "Temporal is disabled" in result.stderr
    result = run_manage("runtemporal", env=manage_env(TEMPORAL_ENABLED="0"))
    assert result.returncode == 1 and "Temporal is disabled" in result.stderr


@pytest.mark.worker
def test_runtemporal_stops_cleanly_on_sigterm(temporal, tmp_path):
    """The SDK can abort a finalising interpreter after a worker ran; the command must exit 0 anyway."""
    worker = TemporalWorker(env=worker_env(temporal), log_path=tmp_path / "worker.log").wait_ready()
    try:
        code = worker.terminate(timeout=60)
    finally:
        worker.stop()
    log = worker.log()
    assert code == 0, log
    assert f"worker {log.split('worker ', 1)[1].split(' ', 1)[0]} stopped" in log
    assert "Fatal Python error" not in log and "Traceback" not in log


@pytest.mark.worker
def test_runtemporal_supervises_several_workers(temporal, tmp_path):
    worker = TemporalWorker("--workers", "2", env=worker_env(temporal), log_path=tmp_path / "workers.log")
    try:
        wait_for(lambda: worker.log().count("; ready") == 2, timeout=90, interval=0.1, message="two ready workers")
        code = worker.terminate(timeout=60)
    finally:
        worker.stop()
    log = worker.log()
    assert code == 0, log
    assert "supervising 2 workers" in log and log.count(" stopped") == 2
