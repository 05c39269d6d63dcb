"""What the reindex workflow and its activities exchange (plain dataclasses: sandbox-safe, JSON on the wire)."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.workflows.heartbeat import DEFAULT_HEARTBEAT_TIMEOUT

#: Phases of a reindex, in order; ``paused`` can interrupt ``indexing``, ``compensating`` any phase before
#: ``finalising``, ending ``cancelled`` (a cancel request) or ``failed`` (a batch failing for good).
PHASES = (
    "starting", "indexing", "paused", "awaiting_approval", "finalising", "completed", "compensating", "cancelled",
    "failed",
)  # fmt: skip


@dataclass
class ReindexProgress:
    """Where a reindex stands: answered by the ``progress`` query, carried across continue-as-new."""

    phase: str = "starting"
    total: int = 0
    done: int = 0
    batches_done: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    #: The id of the last document handed to a finished batch: listing resumes after it.
    cursor: int = 0
    paused: bool = False
    approved: bool = False
    restored: int = 0
    dropped: int = 0


@dataclass
class ReindexRequest:
    """How to reindex. Times in seconds; ``throttle_ms`` pauses after each document (gentle on a busy
    database, and how tests make a batch last long enough to interrupt). The heartbeat time-out is how
    long a batch whose worker died waits before another worker resumes it."""

    batch_size: int = 50
    page_size: int = 500
    require_approval: bool = True
    activity_timeout_seconds: float = 600.0
    heartbeat_timeout_seconds: float = DEFAULT_HEARTBEAT_TIMEOUT
    max_attempts: int = 5
    throttle_ms: int = 0
    #: Batches per workflow run: then it continues as new, so the history stays small however big the base.
    batches_per_run: int = 500
    #: Set by the workflow itself when it continues as new; callers leave it empty.
    carried: ReindexProgress | None = None


@dataclass
class DocumentPage:
    after: int
    limit: int


@dataclass
class ReindexBatch:
    job_id: str
    number: int
    document_ids: list[int]
    throttle_ms: int = 0
    total: int = 0
    done_before: int = 0


@dataclass
class BatchOutcome:
    number: int
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    #: Documents an earlier attempt of this batch had finished (from its last heartbeat).
    resumed_at: int = 0
    failed_ids: list[int] = field(default_factory=list)


@dataclass
class ReindexResult:
    outcome: str
    documents: int
    completed: int
    failed: int
    skipped: int
    batches: int
    dropped_backups: int
