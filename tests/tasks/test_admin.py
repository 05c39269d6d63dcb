"""Admin: job list (fast, filtered, retry), the Queues & workers page, permissions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.tasks.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/dramatiq_tasks/jobrecord/"
DASHBOARD = "/admin/dramatiq_tasks/jobrecord/dashboard/"
DATA = "/admin/dramatiq_tasks/jobrecord/dashboard/data/"


@pytest.fixture
def staff(client):
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    codenames = ["view_jobrecord", "change_jobrecord", "delete_jobrecord"]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def make_records(count: int, **overrides) -> list[str]:
    now = timezone.now()
    rows = [
        JobRecord(
            message_id=f"r{index:05d}", actor_name="add", queue_name="default", status=JobStatus.COMPLETED,
            args=[index, 1], enqueued_at=now - timedelta(seconds=index), updated_at=now, **overrides,
        )
        for index in range(count)
    ]  # fmt: skip
    JobRecord.objects.bulk_create(rows)
    return [row.message_id for row in rows]


@pytest.mark.parametrize("url", [LIST, DASHBOARD, DATA])
def test_anonymous_and_non_staff_go_to_login(client, url):
    assert client.get(url).url.startswith("/admin/login/")
    client.force_login(User.objects.create_user("plain", password="pw"))
    assert client.get(url).url.startswith("/admin/login/")


@pytest.mark.parametrize("url", [LIST, DASHBOARD, DATA])
def test_staff_without_permission_is_refused(client, url):
    client.force_login(User.objects.create_user("intern", password="pw", is_staff=True))
    assert client.get(url).status_code == 403


def test_list_never_counts_the_whole_table(staff):
    make_records(300)
    with CaptureQueriesContext(connection) as captured:
        response = staff.get(LIST)
    assert response.status_code == 200
    assert "r00000" in response.content.decode()
    counts = [query["sql"] for query in captured if "COUNT(" in query["sql"].upper()]
    assert counts, "the paginator still counts (capped)"
    assert all("LIMIT" in sql.upper() for sql in counts), counts
    assert len(captured) <= 12, [query["sql"] for query in captured]


def test_filters_and_search(staff):
    make_records(5)
    JobRecord.objects.filter(message_id="r00001").update(
        status=JobStatus.DEAD_LETTER, queue_name="low", actor_name="low_noop"
    )
    body = staff.get(LIST, {"status__exact": "dead_letter"}).content.decode()
    assert "r00001" in body and "r00002" not in body
    body = staff.get(LIST, {"queue_name": "low"}).content.decode()
    assert "r00001" in body and "r00003" not in body
    body = staff.get(LIST, {"actor_name": "low_noop"}).content.decode()
    assert "r00001" in body and "r00004" not in body
    body = staff.get(LIST, {"q": "r00003"}).content.decode()
    assert "r00003" in body and "r00002" not in body


def test_the_list_of_an_actors_jobs_says_its_limits(staff, one_of_two_running):
    def limits_line(actor_name: str) -> str | None:
        found = re.search(
            r'<p id="actor-limits"[^>]*>(.*?)</p>', staff.get(LIST, {"actor_name": actor_name}).content.decode()
        )
        return found and found.group(1)

    assert limits_line("one_of_two") == "Limits of actor one_of_two: at most 2 running at once (1 now)."
    assert limits_line("three_a_second") == "Limits of actor three_a_second: at most 3 starts per 1 s."
    assert limits_line("add") is None  # no limit declared
    assert limits_line("no_such_actor") is None
    assert '<p id="actor-limits"' not in staff.get(LIST).content.decode()  # unfiltered: no line


def test_search_by_id_prefix_and_by_error_text(staff):
    make_records(3)
    JobRecord.objects.filter(message_id="r00001").update(
        status=JobStatus.DEAD_LETTER, error_type="httpx.ConnectTimeout", error_message="upstream Billing API timed out"
    )
    JobRecord.objects.filter(message_id="r00002").update(status=JobStatus.FAILED, error_message="disk full")

    def listed(term: str) -> set[str]:
        body = staff.get(LIST, {"q": term}).content.decode()
        return {job_id for job_id in ("r00000", "r00001", "r00002") if f">{job_id}<" in body}

    assert listed("r0000") == {"r00000", "r00001", "r00002"}  # a prefix of 4+ characters
    assert listed("r00") == set()  # too short to be a prefix, and no such id
    assert listed("error:billing api") == {"r00001"}  # any case, in the message
    assert listed("ERROR:connecttimeout") == {"r00001"}  # or in the type
    assert listed("error:full") == {"r00002"}
    assert listed("error:   ") == {"r00000", "r00001", "r00002"}  # nothing to look for: no filter
    assert "&#x27;error:text&#x27;" in staff.get(LIST).content.decode()  # the help text says what it matches


def test_detail_shows_arguments_and_traceback(staff):
    make_records(1, error_type="builtins.ValueError", traceback="Traceback (most recent call last):\n  boom")
    body = staff.get(f"{LIST}r00000/change/").content.decode()
    assert "Traceback (most recent call last)" in body and "builtins.ValueError" in body


def test_retry_action_resends_selected_jobs(staff, broker_redis, clean_queues):
    ids = make_records(2)
    response = staff.post(LIST, {"action": "retry_selected", "_selected_action": ids}, follow=True)
    assert "Retried 2 job(s)." in response.content.decode()
    assert JobRecord.objects.filter(status=JobStatus.PENDING, actor_name="add").count() == 2


def test_the_admin_index_links_to_queues_and_workers_for_who_may_view_records(staff, client):
    index = staff.get("/admin/").content.decode()
    assert "Queues &amp; workers" in index and "/admin/dramatiq_tasks/queuesandworkers/" in index
    response = staff.get("/admin/dramatiq_tasks/queuesandworkers/")
    assert response.status_code == 302 and response.url == DASHBOARD
    client.force_login(User.objects.create_user("nobody", password="pw", is_staff=True))
    assert "Queues &amp; workers" not in client.get("/admin/").content.decode()


def test_deleting_a_dead_letters_record_deletes_the_dead_letter_too(admin_client, broker_redis, clean_queues):
    import dramatiq

    from apps.tasks import keys
    from apps.tasks.enqueue import enqueue
    from apps.tasks.services import dead_letters
    from tests.testapp import tasks

    broker = dramatiq.get_broker()
    buried = []
    for number in range(2):
        job_id = enqueue(tasks.add, args=(number, number))
        redis_id = f"{job_id}.1"
        body = broker_redis.hget(keys.queue_messages(broker.namespace, "default"), redis_id)
        broker_redis.lrem(keys.queue(broker.namespace, "default"), 0, redis_id)
        broker.bury("default", redis_id, body)  # as a worker does with a message that failed for good
        JobRecord.objects.filter(message_id=job_id).update(status=JobStatus.DEAD_LETTER)
        buried.append(job_id)
    assert dead_letters.count_dead_letters("default")["default"] == 2

    admin_client.post(f"/admin/dramatiq_tasks/jobrecord/{buried[0]}/delete/", {"post": "yes"})
    assert dead_letters.count_dead_letters("default")["default"] == 1
    action = {"action": "delete_selected", "_selected_action": [buried[1]], "post": "yes"}
    admin_client.post("/admin/dramatiq_tasks/jobrecord/", action)
    assert dead_letters.count_dead_letters("default")["default"] == 0
    assert not JobRecord.objects.filter(message_id__in=buried).exists()


def test_bulk_actions_act_on_every_record_the_filters_match_after_showing_the_count(
    admin_client, broker_redis, clean_queues
):
    from apps.tasks.enqueue import enqueue
    from tests.testapp import tasks

    waiting = [enqueue(tasks.add, args=(n, n)) for n in range(3)]
    elsewhere = enqueue(tasks.add, args=(9, 9), queue_name="high")
    page = admin_client.get(f"{LIST}?queue_name=default").content.decode()
    assert "Cancel all matching" in page and "bulk/cancel/?queue_name=default" in page

    confirm = admin_client.get(f"{LIST}bulk/cancel/?queue_name=default").content.decode()
    assert '<strong id="bulk-count">3</strong>' in confirm
    admin_client.post(f"{LIST}bulk/cancel/?queue_name=default")
    assert set(JobRecord.objects.filter(message_id__in=waiting).values_list("status", flat=True)) == {"cancelled"}
    assert JobRecord.objects.get(message_id=elsewhere).status == JobStatus.PENDING

    retry = admin_client.get(f"{LIST}bulk/retry/?status__exact=pending").content.decode()
    assert '<strong id="bulk-count">1</strong>' in retry and '<strong id="bulk-applicable">0</strong>' in retry
    admin_client.post(f"{LIST}bulk/delete/?status__exact=cancelled")
    assert not JobRecord.objects.filter(message_id__in=waiting).exists()
    assert admin_client.get(f"{LIST}bulk/nope/").status_code == 404


def test_a_view_only_user_gets_no_bulk_links_and_a_403(client):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_jobrecord"))
    client.force_login(user)
    assert "all matching" not in client.get(LIST).content.decode()
    assert client.get(f"{LIST}bulk/retry/").status_code == 403


def test_the_list_shows_the_error_a_human_status_seconds_and_short_durations(admin_client):
    from apps.tasks.admin import format_duration

    now = timezone.now()
    JobRecord.objects.create(
        message_id="failed-1", actor_name="add", queue_name="default", status=JobStatus.DEAD_LETTER,
        error_type="apps.tasks.errors.PermanentError", error_message="card declined\nsecond line",
        enqueued_at=now, updated_at=now, duration_ms=0,
    )  # fmt: skip
    page = admin_client.get(LIST).content.decode()
    assert "<code>PermanentError</code> card declined" in page and "second line" not in page
    assert ">Dead letter</b>" in page and "&lt;1 ms" in page
    assert timezone.localtime(now).strftime("%H:%M:%S") in page
    assert [format_duration(ms) for ms in (None, 0, 250, 3_200, 245_000)] == ["-", "<1 ms", "250 ms", "3.2 s",
                                                                              "4 min 05 s"]  # fmt: skip


def test_the_detail_page_retries_after_asking_and_cancels(admin_client, broker_redis, clean_queues):
    from apps.tasks.enqueue import enqueue
    from tests.testapp import tasks

    now = timezone.now()
    JobRecord.objects.create(
        message_id="done-1", actor_name="add", queue_name="default", status=JobStatus.COMPLETED, args=[1, 2],
        enqueued_at=now, updated_at=now,
    )  # fmt: skip
    detail = admin_client.get(f"{LIST}done-1/change/").content.decode()
    assert 'id="retry-job"' in detail and 'id="cancel-job"' not in detail
    confirm = admin_client.get(f"{LIST}done-1/retry/").content.decode()
    assert "retrying runs it <strong>again</strong>" in confirm
    response = admin_client.post(f"{LIST}done-1/retry/")
    new_id = response.url.split("/")[-3]
    assert new_id != "done-1" and JobRecord.objects.get(message_id=new_id).args == [1, 2]
    # Each page links to the other: the job the retry became, and the job it is a retry of.
    assert (
        f'Retried as job <a href="{LIST}{new_id}/change/"' in admin_client.get(f"{LIST}done-1/change/").content.decode()
    )
    assert (
        f'A retry of job <a href="{LIST}done-1/change/"' in admin_client.get(f"{LIST}{new_id}/change/").content.decode()
    )

    waiting = enqueue(tasks.add, args=(3, 4))
    assert 'id="cancel-job"' in admin_client.get(f"{LIST}{waiting}/change/").content.decode()
    admin_client.post(f"{LIST}{waiting}/cancel/")
    assert JobRecord.objects.get(message_id=waiting).status == JobStatus.CANCELLED
