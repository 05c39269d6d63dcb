from django.db import models

from .status import TERMINAL_STATUSES, JobStatus

__all__ = ["TERMINAL_STATUSES", "JobBackend", "JobRecord", "JobStatus", "QueuesAndWorkers"]


class JobBackend(models.TextChoices):
    """Which system runs a job; both share one id space (a Temporal job's id is its workflow id)."""

    DRAMATIQ = "dramatiq", "Dramatiq"
    TEMPORAL = "temporal", "Temporal"


class JobRecord(models.Model):
    """What happened to one message, written by the enqueue helper and the lifecycle middleware."""

    message_id = models.CharField(max_length=64, primary_key=True)
    actor_name = models.CharField(max_length=255)
    queue_name = models.CharField(max_length=255)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    #: False when arguments were masked or cut to size: the record cannot re-send the job.
    args_complete = models.BooleanField(default=True)
    #: When args/kwargs are not exact (masked, cut): the exact ones, encrypted (records.payload).
    payload = models.TextField(blank=True, default="", db_default="", editable=False)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error_type = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    #: When ``result`` is not exact (masked, too large): the exact return value, encrypted.
    result_payload = models.TextField(blank=True, default="", db_default="", editable=False)
    enqueued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, default="", help_text="host:pid of the last worker")
    next_retry_at = models.DateTimeField(null=True, blank=True)
    #: Time of the transition written last; an older transition arriving late never overwrites a newer one.
    updated_at = models.DateTimeField()
    #: A database default too: the recorder's upsert names its columns, older writers may not name this one.
    backend = models.CharField(
        max_length=16, choices=JobBackend.choices, default=JobBackend.DRAMATIQ, db_default=JobBackend.DRAMATIQ
    )
    #: The job an operator's retry of this one sent (``services.records.retry_job``), if it was a new job.
    retried_as = models.CharField(max_length=64, blank=True, default="", db_default="", editable=False)

    class Meta:
        # Named after the app's first label (``tasks``); the label is now ``dramatiq_tasks``.
        db_table = "tasks_jobrecord"
        ordering = ["-enqueued_at"]
        indexes = [
            models.Index(fields=["-enqueued_at"], name="tasks_job_enqueued"),
            models.Index(fields=["status", "-enqueued_at"], name="tasks_job_status"),
            models.Index(fields=["queue_name", "-enqueued_at"], name="tasks_job_queue"),
            models.Index(fields=["actor_name", "-enqueued_at"], name="tasks_job_actor"),
            models.Index(fields=["updated_at"], name="tasks_job_updated"),
            models.Index(fields=["backend", "-enqueued_at"], name="tasks_job_backend"),
            # Few records are retried: a partial index finds the job a retry came from, at no cost to the rest.
            models.Index(fields=["retried_as"], name="tasks_job_retried_as", condition=~models.Q(retried_as="")),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.message_id} ({self.status})"


class QueuesAndWorkers(JobRecord):
    """No data of its own: the admin index's "Queues & workers" entry, which opens the dashboard."""

    class Meta:
        proxy = True
        verbose_name = verbose_name_plural = "Queues & workers"
        default_permissions = ()
