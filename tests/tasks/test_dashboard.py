"""The "Queues & workers" page: health banner, chart, units, links, the failed count, permissions."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from apps.tasks import records
from apps.tasks.enqueue import enqueue
from apps.tasks.models import JobRecord, JobStatus
from apps.tasks.records.transitions import Transition
from apps.tasks.services import control, dashboard, workers
from apps.tasks.services.dashboard import dashboard_data, format_rate, health_banner, render_chart
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/dramatiq_tasks/jobrecord/"
DASHBOARD = "/admin/dramatiq_tasks/jobrecord/dashboard/"
DATA = "/admin/dramatiq_tasks/jobrecord/dashboard/data/"
CONTROL_URLS = ("/dashboard/pause/", "/dashboard/resume/", "/dashboard/requeue/", "/dashboard/clear/")


def login(client, *codenames: str):
    user = User.objects.create_user(f"user-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


@pytest.fixture
def staff(client):
    return login(client, "view_jobrecord", "change_jobrecord", "delete_jobrecord")


@pytest.fixture
def live_worker(broker_redis):
    """A registered live worker consuming ``default`` only (no process: its registry entry)."""
    info = workers.WorkerInfo(
        worker_id=f"test-{uuid.uuid4().hex[:8]}", host="testhost", pid=4242, ppid=1, queues=["default"],
        threads=2, started_at=time.time() - 90,
    )  # fmt: skip
    workers.publish(info)
    yield info
    workers.unregister(info.worker_id)


def initial_data(body: str) -> dict:
    """The JSON the page renders itself from (json_script), as the browser reads it."""
    found = re.search(r'<script id="tasks-initial" type="application/json">(.*?)</script>', body, re.S)
    assert found, "the page embeds its first data"
    return json.loads(found.group(1))


def banner_texts(data: dict, level: str | None = None) -> list[str]:
    return [line["text"] for line in data["banner"] if level in (None, line["level"])]


def test_the_page_and_its_json_show_queues_chart_and_events(staff, broker_redis, clean_queues, settings):
    job_id = enqueue(tasks.low_noop)
    settings.DEBUG = False
    body = staff.get(DASHBOARD).content.decode()
    assert "Queues &amp; workers" in body
    first = initial_data(body)
    data = staff.get(DATA).json()
    for shown in (first, data):
        assert {row["name"]: row["ready"] for row in shown["queues"]}["low"] == 1
        assert shown["events"][0]["event"] == "enqueued" and shown["events"][0]["actor"] == "low_noop"
        assert len(shown["series"]) == 60 and shown["chart_svg"].startswith("<svg")
    event = data["events"][0]
    assert event["job_id"] == job_id and event["source"] == "dramatiq"
    assert event["job_url"] == reverse("admin:dramatiq_tasks_jobrecord_change", args=[job_id])
    assert event["queue_url"] == f"{LIST}?queue_name=low"
    assert staff.get(event["queue_url"]).status_code == 200 and job_id in staff.get(event["queue_url"]).content.decode()
    assert "/dashboard/clear/" not in body  # the clear button exists only with DEBUG on
    assert staff.get("/admin/dramatiq_tasks/jobrecord/dashboard/clear/low/").status_code == 403


def test_an_event_whose_record_is_gone_links_to_no_job(staff, broker_redis, clean_queues):
    job_id = enqueue(tasks.low_noop)
    JobRecord.objects.filter(message_id=job_id).delete()
    event = staff.get(DATA).json()["events"][0]
    assert event["job_id"] == job_id and event["job_url"] is None and event["queue_url"]


def test_the_banner_says_there_is_no_live_worker_then_which_queues_have_none(staff, broker_redis, clean_queues):
    data = staff.get(DATA).json()
    assert data["workers"] == [] and data["status"] == "degraded"
    assert banner_texts(data, "error") == ["No live worker: no job runs until a worker starts."]


def test_the_banner_names_unconsumed_and_paused_queues_as_the_health_report_does(
    staff, broker_redis, clean_queues, live_worker
):
    from apps.tasks.health import get_task_health

    control.pause_queue("low", by="test")
    try:
        data = staff.get(DATA).json()
        report = get_task_health()
    finally:
        control.resume_queue("low", by="test")
    assert report["queues_without_consumer"] == ["high", "low", "knowledge"]
    assert banner_texts(data, "warning") == [
        "No live worker consumes queue high, low, knowledge: its jobs wait.",
        "Paused: low (workers fetch nothing from it until resumed).",
    ]
    assert not banner_texts(data, "error")
    worker = next(row for row in data["workers"] if row["worker_id"] == live_worker.worker_id)
    assert 0 <= worker["last_seen_seconds_ago"] < 5 and 85 <= worker["uptime_seconds"] < 120
    assert {row["name"]: row["paused"] for row in data["queues"]}["low"] is True
    consumers = {row["name"]: row["consumers"] for row in data["queues"]}
    assert consumers == {"default": 1, "high": 0, "low": 0, "knowledge": 0}
    # Resumed: the next refresh no longer says so.
    assert not any("Paused" in text for text in banner_texts(staff.get(DATA).json()))


def test_health_banner_words_for_every_finding(db):
    healthy = {
        "status": "ok", "enabled": True, "redis_connection": {"ok": True}, "configuration_errors": [],
        "workers": [{"worker_id": "w", "last_seen": 0, "started_at": 0}], "queues_without_consumer": [],
        "paused_queues": [],
    }  # fmt: skip
    assert health_banner(healthy) == [{"level": "success", "text": "Healthy: 1 live worker, every queue consumed."}]
    assert health_banner({**healthy, "redis_connection": {"ok": False, "error": "ConnectionError: refused"}}) == [
        {"level": "error", "text": "Redis does not answer: ConnectionError: refused."}
    ]
    assert health_banner({**healthy, "enabled": False})[0]["level"] == "warning"
    # Without Redis the page still renders: the banner says why, no figure is made up.
    down = dashboard_data({**healthy, "status": "down", "redis_connection": {"ok": False, "error": "refused"}})
    assert down["banner"][0]["level"] == "error"
    assert down["queues"] == down["events"] == down["series"] == down["limits"] == []
    mixed = {
        **healthy, "paused_queues": ["low"], "configuration_errors": ["the lifecycle middleware is not installed"],
        "temporal": {"status": "degraded", "reason": "no live worker polls task queue 'q'"},
    }  # fmt: skip
    assert [(line["level"], line["text"]) for line in health_banner(mixed)] == [
        ("error", "Configuration: the lifecycle middleware is not installed."),
        ("warning", "Paused: low (workers fetch nothing from it until resumed)."),
        ("warning", "temporal: degraded: no live worker polls task queue 'q'"),
    ]


def test_the_chart_has_a_legend_axis_units_and_no_fixed_colours():
    now_minute = int(time.time() // 60)
    series = [{"minute": (now_minute - 59 + i) * 60, "completed": i % 8, "failed": i % 3} for i in range(60)]
    svg = render_chart(series)
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "jobs per minute" in labels and "time (minutes before now)" in labels
    assert {"completed", "failed"} <= set(labels)  # the legend
    assert {"-45 min", "-30 min", "-15 min", "now", "0", "4", "8"} <= set(labels)  # ticks: peak 7 rounds up to 8
    assert 'class="tasks-series tasks-series-completed"' in svg and 'class="tasks-series tasks-series-failed"' in svg
    # Colours come from the admin theme's CSS (classes and currentColor), never from the SVG.
    assert not re.search(r"#[0-9a-fA-F]{3,6}\b|rgb\(", svg)
    assert "<script" not in svg


def test_the_failed_count_links_to_exactly_the_records_it_counts(staff, broker_redis, clean_queues):
    now = timezone.now()

    def finish(job_id: str, status: str, finished_at, record_only: bool = False) -> None:
        transition = Transition(
            message_id=job_id, actor_name="add", queue_name="default", status=status, enqueued_at=finished_at,
            finished_at=finished_at, updated_at=finished_at, attempts=1,
        )  # fmt: skip
        if record_only:  # an old record whose counter has expired: written without the buffer
            records.record(transition, wait=True, publish=False)
        else:
            records.record(transition)  # the worker's path: the buffer also counts it per minute

    finish("dead-now", JobStatus.DEAD_LETTER, now)
    finish("failed-now", JobStatus.FAILED, now)
    finish("done-now", JobStatus.COMPLETED, now)
    finish("retrying-now", JobStatus.RETRYING, now)  # an attempt that will be retried: not a failure
    finish("failed-long-ago", JobStatus.FAILED, now - timedelta(hours=2), record_only=True)
    records.flush()

    data = staff.get(DATA).json()
    assert data["failed_last_hour"] == 2 and data["completed_last_hour"] == 1
    assert data["failure_rate"] == pytest.approx(2 / 3, abs=1e-3)
    listed = staff.get(data["failed_url"])
    assert listed.status_code == 200
    shown = set(re.findall(r'name="_selected_action" value="([^"]+)"', listed.content.decode()))
    assert shown == {"dead-now", "failed-now"}


def test_a_view_only_user_sees_figures_but_no_button_that_would_be_refused(client, broker_redis, settings):
    settings.DEBUG = True  # where the clear button would show too
    viewer = login(client, "view_jobrecord")
    body = viewer.get(DASHBOARD).content.decode()
    assert viewer.get(DATA).status_code == 200 and initial_data(body)["queues"]
    assert '<div id="tasks-controls"' not in body
    assert not [url for url in CONTROL_URLS if url in body]
    assert viewer.post("/admin/dramatiq_tasks/jobrecord/dashboard/pause/low/").status_code == 403


def test_who_may_change_records_gets_the_controls(staff, settings):
    settings.DEBUG = True
    body = staff.get(DASHBOARD).content.decode()
    assert '<div id="tasks-controls"' in body
    assert all(f"{url}__queue__/" in body for url in CONTROL_URLS)


def test_clear_queue_asks_then_clears_with_debug_on(staff, broker_redis, clean_queues, settings):
    settings.DEBUG = True
    pending = enqueue(tasks.low_noop)
    assert (
        'data-clear-url="/admin/dramatiq_tasks/jobrecord/dashboard/clear/__queue__/"'
        in staff.get(DASHBOARD).content.decode()
    )
    confirm = staff.get("/admin/dramatiq_tasks/jobrecord/dashboard/clear/low/")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    assert JobRecord.objects.get(message_id=pending).status == JobStatus.PENDING  # GET changed nothing
    response = staff.post("/admin/dramatiq_tasks/jobrecord/dashboard/clear/low/", follow=True)
    assert "Cleared 1 message(s)" in response.content.decode()
    assert {row["name"]: row["ready"] for row in staff.get(DATA).json()["queues"]}["low"] == 0


def test_actor_limits_show_running_over_the_limit_and_the_rate_with_its_unit(staff, one_of_two_running):
    body = staff.get(DASHBOARD).content.decode()
    assert '<section id="tasks-limits-section">' in body and "<h2>Actor limits</h2>" in body
    for shown in (initial_data(body), staff.get(DATA).json()):
        rows = {row["actor"]: row for row in shown["limits"]}
        assert set(rows) == {"one_of_two", "three_a_second"}  # only actors that declare limits
        assert rows["one_of_two"] | {"list_url": None} == {
            "actor": "one_of_two", "concurrency": 2, "running": 1, "rate_limit": None, "rate": None, "list_url": None,
        }  # fmt: skip
        assert rows["three_a_second"]["rate"] == "3 per 1 s" and rows["three_a_second"]["concurrency"] is None
    # The actor links to its jobs, whose list says the same.
    listed = staff.get(rows["one_of_two"]["list_url"]).content.decode()
    assert "one_of_two: at most 2 running at once (1 now)." in listed


def test_the_limits_section_is_hidden_when_no_actor_declares_limits(staff, broker_redis, monkeypatch):
    monkeypatch.setattr(dashboard.limits, "usage", lambda broker: [])
    body = staff.get(DASHBOARD).content.decode()
    assert '<section id="tasks-limits-section" hidden>' in body and initial_data(body)["limits"] == []


@pytest.mark.parametrize(
    ("count", "seconds", "noun", "text"),
    [(3, 1, "", "3 per 1 s"), (100, 60, "", "100 per 1 min"), (7, 90, "", "7 per 90 s"),
     (1000, 7200, "", "1000 per 2 h"), (1, 1, "start", "1 start per 1 s")],
)  # fmt: skip
def test_a_rate_reads_in_its_largest_whole_unit(count, seconds, noun, text):
    assert format_rate(count, seconds, noun) == text
