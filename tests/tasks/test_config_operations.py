"""TaskConfig's operations fields: schedules, log format, metrics; invalid values name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from apps.tasks.config import PROJECT_MIDDLEWARE, ScheduleEntry, TaskConfig, check_cron

GRACEFUL = "apps.tasks.middleware.graceful_shutdown.GracefulShutdownMiddleware"


def schedule(**values) -> dict:
    return {"name": "nightly", "cron": "0 2 * * *", "actor": "apps.tasks.tasks.purge_job_records_task", **values}


def error_of(**config) -> dict:
    with pytest.raises(ValidationError) as caught:
        TaskConfig(**config)
    (error,) = caught.value.errors()
    return error


def test_defaults_schedule_the_purge_only_and_log_plain():
    config = TaskConfig()
    assert [(entry.name, entry.cron, entry.actor) for entry in config.schedules] == [
        ("purge-job-records", "17 3 * * *", "apps.tasks.tasks.purge_job_records_task")
    ]
    assert config.log_format.value == "plain"
    assert (config.metrics_enabled, config.metrics_token) == (False, "")


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("61 * * * *", "is not a valid cron expression"),
        ("* * * *", "needs 5 fields"),
        ("0 0 * * * *", "needs 5 fields"),
        ("0 9 * * 1", "not as a number"),  # crontab's 1 is Monday, APScheduler's is Tuesday: refused
        ("0 9 * * mon-fry", "is not a valid cron expression"),
        ("every day", "needs 5 fields"),
    ],
)
def test_a_bad_cron_expression_is_rejected_with_the_field_named(cron, reason):
    error = error_of(schedules=[schedule(), schedule(name="bad", cron=cron)])
    assert error["loc"] == ("schedules", 1, "cron")
    assert reason in error["msg"] and repr(cron) in error["msg"]


def test_good_cron_expressions_are_normalised():
    assert check_cron("*/5   *  * * *") == "*/5 * * * *"
    assert ScheduleEntry(**schedule(cron="30 6 1-7 * mon")).cron == "30 6 1-7 * mon"


def test_schedule_names_and_actors_are_checked():
    assert error_of(schedules=[schedule(), schedule()])["loc"] == ("schedules",)
    assert "duplicate schedule names: nightly" in error_of(schedules=[schedule(), schedule()])["msg"]
    assert error_of(schedules=[schedule(name="has space")])["loc"] == ("schedules", 0, "name")
    assert error_of(schedules=[schedule(actor="apps.tasks:purge")])["loc"] == ("schedules", 0, "actor")
    assert error_of(schedules=[schedule(every="day")])["loc"] == ("schedules", 0, "every")


def test_log_format_is_plain_or_json():
    assert TaskConfig(log_format="json").log_format.value == "json"
    assert error_of(log_format="xml")["loc"] == ("log_format",)


def test_graceful_shutdown_is_always_installed():
    assert GRACEFUL in PROJECT_MIDDLEWARE
    assert GRACEFUL in TaskConfig().to_django_settings()["DRAMATIQ_BROKER"]["MIDDLEWARE"]
