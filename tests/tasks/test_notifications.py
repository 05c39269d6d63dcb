"""The default dead-letter notifier mails ADMINS; a missing mail set-up is logged, never raised."""

from types import SimpleNamespace

import pytest
from django.core import mail

from apps.tasks.notifications import notify_dead_letter

JOB = SimpleNamespace(
    message_id="4f1c-dead",
    actor_name="send_invoice",
    queue_name="default",
    attempts=1,
    error_type="builtins.ValueError",
    error_message="bad invoice number",
    traceback="Traceback ...",
)


@pytest.fixture(autouse=True)
def default_notifier(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_mail_admins_with_actor_id_error_and_admin_link(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    notify_dead_letter(JOB)
    (sent,) = mail.outbox
    assert sent.to == ["ops@example.com"]
    assert "send_invoice" in sent.subject and "4f1c-dead" in sent.subject
    assert "bad invoice number" in sent.body
    assert "/admin/dramatiq_tasks/jobrecord/4f1c-dead/change/" in sent.body


def test_no_admins_is_logged_not_raised(settings, caplog):
    settings.ADMINS = []
    notify_dead_letter(JOB)
    assert mail.outbox == []
    assert "No ADMINS configured" in caplog.text


def test_a_broken_mail_server_is_logged_not_raised(settings, caplog):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 1
    notify_dead_letter(JOB)
    assert "dead-letter notifier" in caplog.text and "failed" in caplog.text
