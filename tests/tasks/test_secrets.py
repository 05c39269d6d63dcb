"""One masking policy on every way out: a planted secret appears in no log, record, event, page,
API answer or command output; the rule is by whole words; health shows topology only to staff or
the bearer token; every malformed API input gets a JSON error."""

from __future__ import annotations

import io
import json
import re
import secrets
import sys
import uuid

import dramatiq
import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.views.debug import get_exception_reporter_class

from apps.tasks import keys
from apps.tasks.config import DramatiqConfig
from apps.tasks.enqueue import enqueue
from apps.tasks.masking import is_secret_key, mask_text, mask_value
from apps.tasks.models import JobRecord, JobStatus
from tests.helpers import ROOT, manage_env, run_manage, wait_for
from tests.testapp import tasks

SECRET = f"s3cr3t-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(
    "key", ["password", "api_token", "X-Api-Key", "clientSecret", "PASSWORD2", "authorization", "apikey", "db.passwd"]
)
def test_keys_with_a_secret_word_are_secret(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["tokenizer", "secretary", "passport", "keyboard", "author", "max_tokens_total"])
def test_words_that_only_contain_a_secret_word_are_not(key):
    assert not is_secret_key(key)


def test_the_secret_words_are_configurable(settings):
    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(update={"secret_arg_keys": ("pin",)})
    assert is_secret_key("card_pin") and not is_secret_key("password")


def test_text_keeps_what_is_not_secret_and_hides_what_is():
    line = (
        f"Failed to process message leaks(url='redis://:{SECRET}@10.0.0.9:6379/0', password='{SECRET}', "
        f"api_token='{SECRET}', tokenizer='bert') with unhandled exception."
    )
    masked = mask_text(line)
    assert SECRET not in masked
    assert "tokenizer='bert'" in masked and "password='***'" in masked and "redis://:***@10.0.0.9" in masked
    assert SECRET not in mask_text(f'{{"api_token": "{SECRET}", "n": 1}} Authorization: Bearer {SECRET}')
    assert mask_value({"nested": [{"clientSecret": SECRET, "tokenizer": "bert"}]}) == (
        {"nested": [{"clientSecret": "***", "tokenizer": "bert"}]},
        True,
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_failing_task_with_secrets_leaks_them_nowhere(start_worker, broker_redis, clean_queues, admin_client):
    worker = start_worker("--processes", "1", "--threads", "1", "--queues", "default")
    url = f"redis://:{SECRET}@10.0.0.9:6379/0"
    job_id = enqueue(
        tasks.leaks_secrets, args=(url,), kwargs={"password": SECRET, "api_token": SECRET, "tokenizer": "bert"}
    )

    def dead():
        record = JobRecord.objects.filter(message_id=job_id).first()
        return record if record and record.status == JobStatus.DEAD_LETTER else None

    record = wait_for(dead, timeout=30, message="the job dead-lettered")
    wait_for(lambda: "Failed to process message" in worker.log(), timeout=10, message="dramatiq's failure line")
    assert record.error_message and "***" in record.error_message and "10.0.0.9" in record.error_message
    assert record.kwargs["tokenizer"] == "bert"

    outputs = {
        "worker log": worker.log(),
        "record": json.dumps(JobRecord.objects.filter(message_id=job_id).values().first(), default=str),
        "events": "\n".join(
            repr(fields) for _, fields in broker_redis.xrange(keys.events(dramatiq.get_broker().namespace))
        ),
        "api list": admin_client.get("/tasks/api/jobs/").content.decode(),
        "api detail": admin_client.get(f"/tasks/api/jobs/{job_id}/").content.decode(),
        "admin list": admin_client.get("/admin/dramatiq_tasks/jobrecord/").content.decode(),
        "admin detail": admin_client.get(f"/admin/dramatiq_tasks/jobrecord/{job_id}/change/").content.decode(),
        "dashboard data": admin_client.get("/admin/dramatiq_tasks/jobrecord/dashboard/data/").content.decode(),
        "dashboard": admin_client.get("/admin/dramatiq_tasks/jobrecord/dashboard/").content.decode(),
        "admin index": admin_client.get("/admin/").content.decode(),
        "health": admin_client.get("/health/tasks/").content.decode(),
    }
    commands = [["tasks", "jobs"], ["tasks", "dead"], ["tasks", "queues"], ["tasks", "workers"], ["tasks", "stats"]]
    for command in [*commands, *(["tasks", "--json", *rest] for _, *rest in commands)]:
        out = io.StringIO()
        call_command(*command, stdout=out)
        outputs[" ".join(command)] = out.getvalue()
    assert job_id in outputs["api list"] and job_id in outputs["tasks --json dead"]
    leaked = [where for where, text in outputs.items() if SECRET in text]
    assert leaked == []


@pytest.mark.django_db
def test_the_debug_page_masks_broker_cache_and_config_secrets(settings, rf):
    url = f"redis://:{SECRET}@10.0.0.9:6379/0"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": url}}
    settings.DRAMATIQ_BROKER = {"BROKER": "x", "OPTIONS": {"url": url}}
    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(update={"dramatiq": DramatiqConfig(redis_url=url)})
    settings.DEBUG = True

    def connect(redis_url: str) -> None:
        broker_url = redis_url  # noqa: F841  (a local the page lists)
        raise ConnectionError(f"cannot reach {redis_url}")

    try:
        connect(url)
    except ConnectionError:
        request = rf.get("/boom/")
        html = get_exception_reporter_class(request)(request, *sys.exc_info()).get_traceback_html()
    assert "10.0.0.9" in html and "DRAMATIQ_BROKER" in html
    assert SECRET not in html


@pytest.mark.django_db
def test_health_shows_only_the_status_to_anonymous_callers(client, settings):
    anonymous = client.get("/health/tasks/").json()
    assert set(anonymous) == {"status"}
    settings.TASK_CONFIG = settings.TASK_CONFIG.model_copy(update={"metrics_token": "probe-token"})
    assert set(client.get("/health/tasks/", HTTP_AUTHORIZATION="Bearer wrong").json()) == {"status"}
    full = client.get("/health/tasks/", HTTP_AUTHORIZATION="Bearer probe-token").json()
    assert "workers" in full and "queues" in full
    client.force_login(User.objects.create_user("ops", password="pw", is_staff=True))
    assert "redis_connection" in client.get("/health/tasks/").json()


@pytest.fixture
def api_client(db):
    user = User.objects.create_user("api", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_jobrecord", "change_jobrecord"]))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/tasks/api/jobs/%00/", 400),
        ("get", "/tasks/api/jobs/" + "x" * 65 + "/", 400),
        ("get", "/tasks/api/jobs/?page=99999999999999999999", 400),
        ("get", "/tasks/api/jobs/?page=0", 400),
        ("get", "/tasks/api/jobs/?page_size=100000", 400),
        ("get", "/tasks/api/jobs/abc/retry/", 405),
        ("post", "/tasks/api/jobs/abc/retry/", 403),  # no CSRF token
        ("options", "/tasks/api/jobs/", 405),
    ],
)
def test_malformed_api_input_gets_a_json_error(api_client, method, path, status):
    response = getattr(api_client, method)(path)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json" and "error" in response.json()
    if status == 405:
        assert response["Allow"] in ("GET", "POST")


def test_retry_with_a_nul_id_is_a_400_not_a_503(db, client):
    user = User.objects.create_user("retrier", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_jobrecord"))
    client.force_login(user)  # Django's test client skips CSRF checks: this is about the id
    response = client.post("/tasks/api/jobs/%00/retry/")
    assert response.status_code == 400 and "not a job id" in response.json()["error"]


def test_check_deploy_is_clean_with_the_production_environment():
    """The uncommented values of .env.example are the production environment (with a real key)."""
    example = (ROOT / ".env.example").read_text()
    production = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.+)$", example, flags=re.MULTILINE))
    wanted = ("DEBUG", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
              "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")  # fmt: skip
    env = manage_env(DJANGO_SETTINGS_MODULE="project.settings", SECRET_KEY=secrets.token_urlsafe(50),
                     **{name: production[name] for name in wanted})  # fmt: skip
    done = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_a_projects_own_log_handler_with_the_masking_filter_gets_masked_lines():
    import logging

    from apps.tasks.logging import MaskingFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger(f"test.masking.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise ConnectionError(f"cannot reach redis://:{SECRET}@10.0.0.9:6379/0")
    except ConnectionError:
        logger.exception("send(api_token=%r, tokenizer=%r) failed", SECRET, "bert")
    text = stream.getvalue()
    assert "ConnectionError" in text and "tokenizer='bert'" in text and "redis://:***@10.0.0.9" in text
    assert SECRET not in text
