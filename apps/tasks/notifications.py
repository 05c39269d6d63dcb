"""Telling people when a job fails for good. Notifiers log their own failures; they never raise."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import mail_admins
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from apps.tasks.config import get_task_config

logger = logging.getLogger(__name__)


def admin_link(message_id: str) -> str:
    """The admin change page of a job record (absolute when TASK_CONFIG.admin_base_url is set)."""
    try:
        path = reverse("admin:dramatiq_tasks_jobrecord_change", args=[message_id])
    except NoReverseMatch:
        return ""
    return get_task_config().admin_base_url.rstrip("/") + path


def mail_admins_notifier(job: Any) -> None:
    """Mail ``settings.ADMINS`` with the actor, id, error and admin link of a dead-lettered job."""
    if not settings.ADMINS:
        logger.warning(
            "Job %s (%s) is dead-lettered: %s: %s. No ADMINS configured, so nobody was mailed.",
            job.message_id,
            job.actor_name,
            job.error_type,
            job.error_message,
        )
        return
    body = (
        f"Actor: {job.actor_name}\nQueue: {job.queue_name}\nJob id: {job.message_id}\n"
        f"Attempts: {job.attempts}\nError: {job.error_type}: {job.error_message}\n"
        f"Admin: {admin_link(job.message_id)}\n\n{job.traceback}"
    )
    mail_admins(f"Job dead-lettered: {job.actor_name} {job.message_id}", body, fail_silently=False)


def notify_dead_letter(job: Any) -> None:
    """Call the configured notifier; any failure of it (no mail server, bad path) is logged."""
    path = get_task_config().dead_letter_notifier
    if not path:
        return
    try:
        import_string(path)(job)
    except Exception:
        logger.exception("The dead-letter notifier %s failed for job %s.", path, job.message_id)
