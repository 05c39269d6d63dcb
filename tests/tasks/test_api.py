"""Job status API: staff only, filters, pages, detail, retry; JSON errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from apps.tasks.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_jobrecord", "change_jobrecord"]))
    client.force_login(user)
    return client


@pytest.fixture
def jobs():
    now = timezone.now()
    specs = [
        ("j1", "add", "default", JobStatus.COMPLETED),
        ("j2", "add", "high", JobStatus.DEAD_LETTER),
        ("j3", "flaky", "default", JobStatus.RETRYING),
        ("j4", "add", "default", JobStatus.PENDING),
    ]
    for index, (message_id, actor, queue, status) in enumerate(specs):
        moment = now - timedelta(minutes=index)
        JobRecord.objects.create(
            message_id=message_id, actor_name=actor, queue_name=queue, status=status, args=[1, 2],
            enqueued_at=moment, updated_at=moment, next_retry_at=now if status == JobStatus.RETRYING else None,
        )  # fmt: skip


def ids(response) -> list[str]:
    return [row["id"] for row in response.json()["results"]]


def test_anonymous_and_non_staff_are_refused(client, jobs):
    assert client.get("/tasks/api/jobs/").status_code == 401
    user = User.objects.create_user("plain", password="pw")
    client.force_login(user)
    response = client.get("/tasks/api/jobs/")
    assert response.status_code == 403
    assert response.json()["error"] == "staff permission required"
    User.objects.filter(pk=user.pk).update(is_staff=True)  # staff without the permission
    assert client.get("/tasks/api/jobs/j1/").status_code == 403


def test_date_filters_and_ordering(staff_client, jobs):
    j2 = JobRecord.objects.get(message_id="j2").enqueued_at
    j3 = JobRecord.objects.get(message_id="j3").enqueued_at
    since, until = j3.isoformat().replace("+00:00", "Z"), j2.isoformat()
    assert ids(staff_client.get("/tasks/api/jobs/", {"since": since, "until": until})) == ["j3"]
    assert ids(staff_client.get("/tasks/api/jobs/", {"since": since})) == ["j1", "j2", "j3"]
    assert ids(staff_client.get("/tasks/api/jobs/?ordering=enqueued_at")) == ["j4", "j3", "j2", "j1"]


def test_list_filters_and_pages(staff_client, jobs):
    assert ids(staff_client.get("/tasks/api/jobs/")) == ["j1", "j2", "j3", "j4"]
    assert ids(staff_client.get("/tasks/api/jobs/?status=dead_letter")) == ["j2"]
    assert ids(staff_client.get("/tasks/api/jobs/?queue=default&actor=add")) == ["j1", "j4"]
    first = staff_client.get("/tasks/api/jobs/?page_size=3").json()
    assert (len(first["results"]), first["has_next"]) == (3, True)
    second = staff_client.get("/tasks/api/jobs/?page_size=3&page=2").json()
    assert ([row["id"] for row in second["results"]], second["has_next"]) == (["j4"], False)
    retrying = staff_client.get("/tasks/api/jobs/?status=retrying").json()["results"][0]
    assert retrying["next_retry_at"] is not None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=exploded", "unknown status 'exploded'"),
        ("queue=nope", "unknown queue 'nope'"),
        ("page=0", "page must be between 1 and 1000000"),
        ("page=two", "page must be an integer"),
        ("page_size=1000", "page_size must be between 1 and 200"),
        ("stauts=completed", "unknown parameter(s): stauts; valid: actor, backend, ordering, page"),
        ("since=yesterday", "since must be an ISO 8601 date or time"),
        ("ordering=actor_name", "unknown ordering 'actor_name'; valid: -enqueued_at, enqueued_at"),
    ],
)
def test_bad_filters_are_400_json(staff_client, jobs, query, message):
    response = staff_client.get(f"/tasks/api/jobs/?{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_detail_and_unknown_id(staff_client, jobs):
    detail = staff_client.get("/tasks/api/jobs/j2/").json()
    assert (detail["id"], detail["status"], detail["args"], detail["traceback"]) == ("j2", "dead_letter", [1, 2], "")
    response = staff_client.get("/tasks/api/jobs/missing/")
    assert response.status_code == 404
    assert response.json() == {"error": "no job 'missing'"}


def test_retry_resends_a_finished_job_and_refuses_a_running_one(staff_client, jobs, broker_redis, clean_queues):
    response = staff_client.post("/tasks/api/jobs/j1/retry/")
    assert response.status_code == 202
    new_id = response.json()["job_id"]
    assert new_id != "j1"
    new = JobRecord.objects.get(message_id=new_id)
    assert (new.actor_name, new.args, new.status) == ("add", [1, 2], "pending")

    response = staff_client.post("/tasks/api/jobs/j3/retry/")
    assert response.status_code == 409
    assert "only finished jobs" in response.json()["error"]
    assert staff_client.post("/tasks/api/jobs/missing/retry/").status_code == 404
    assert staff_client.get("/tasks/api/jobs/j1/retry/").status_code == 405


def test_scripts_use_the_api_token_and_sessions_still_need_csrf(client, settings, jobs, broker_redis, clean_queues):
    from django.test import Client

    from apps.tasks.enqueue import enqueue
    from tests.testapp import tasks

    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(update={"api_token": "script-token"})
    script = Client(enforce_csrf_checks=True)
    bearer = {"HTTP_AUTHORIZATION": "Bearer script-token"}
    assert script.get("/tasks/api/jobs/", **bearer).status_code == 200
    assert script.get("/tasks/api/jobs/", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    waiting = enqueue(tasks.add, args=(1, 1))
    assert script.post(f"/tasks/api/jobs/{waiting}/cancel/", **bearer).status_code == 200  # no CSRF for a token
    assert JobRecord.objects.get(message_id=waiting).error_message == "cancelled by api token (api)"

    user = User.objects.create_user("session", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_jobrecord", "change_jobrecord"]))
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    refused = browser.post(f"/tasks/api/jobs/{enqueue(tasks.add, args=(2, 2))}/cancel/")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
