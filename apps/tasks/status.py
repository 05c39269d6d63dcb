"""Job statuses; importable before Django's app registry is ready (middleware loads early)."""

from django.db import models


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    RETRYING = "retrying", "Retrying"
    DEAD_LETTER = "dead_letter", "Dead letter"
    SKIPPED = "skipped", "Skipped"
    #: Taken out before it ran, by an operator (the record says who and why).
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = (
    JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.DEAD_LETTER, JobStatus.SKIPPED, JobStatus.CANCELLED,
)  # fmt: skip
