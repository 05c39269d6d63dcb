"""The events a transition implies: derived from it, never built beside it (no Redis, no database)."""

from __future__ import annotations

import json
from datetime import timedelta

import dramatiq

from apps.tasks.enqueue import EnqueueError
from apps.tasks.records import (
    ENQUEUE_ERROR_TYPE,
    Transition,
    attempt_number,
    events_for,
    now,
    pending,
    retrying,
    transition_for,
)
from apps.tasks.status import JobStatus


def names_and_meta(transition: Transition) -> list[tuple[str, dict]]:
    return [(event["event"], json.loads(event["meta"])) for event in events_for(transition)]


def message(**options) -> dramatiq.Message:
    return dramatiq.Message(
        queue_name="default", actor_name="add", args=(1, 2), kwargs={}, options=options, message_id="m1",
        message_timestamp=1_700_000_000_000,
    )  # fmt: skip


def test_attempt_number_counts_retries_and_attempts_before_a_requeue():
    assert attempt_number({}) == 1
    assert attempt_number({"retries": 2}) == 3
    assert attempt_number({"retries": 1, "prior_attempts": 4}) == 6


def test_a_pending_transition_and_its_enqueued_event():
    transition = pending(message(retries=1), delay=500)
    assert (transition.status, transition.attempts, transition.args) == (JobStatus.PENDING, 1, (1, 2))
    assert names_and_meta(transition) == [("enqueued", {"delay_ms": 500})]
    refused = pending(message(), error="enqueue failed: ConnectionError: down")
    assert (refused.error_type, refused.error_message) == (ENQUEUE_ERROR_TYPE, "enqueue failed: ConnectionError: down")


def test_the_enqueue_error_type_names_the_real_exception_class():
    assert f"{EnqueueError.__module__}.{EnqueueError.__qualname__}" == ENQUEUE_ERROR_TYPE


def test_started_and_completed_carry_the_attempt_and_their_own_times():
    t0 = now()
    running = transition_for(message(), JobStatus.RUNNING, attempts=2, started_at=t0)
    [started] = events_for(running)
    assert (started["event"], started["meta"], started["timestamp"]) == ("started", '{"attempt":2}', t0.isoformat())
    done = transition_for(message(), JobStatus.COMPLETED, attempts=2, finished_at=t0 + timedelta(seconds=1))
    assert names_and_meta(done) == [("completed", {"attempt": 2})]


def test_a_retry_publishes_failed_then_retrying_with_the_delay():
    t0 = now()
    failed = transition_for(
        message(), JobStatus.FAILED, attempts=1, finished_at=t0, error_type="builtins.OSError", error_message="x" * 900
    )
    assert names_and_meta(failed) == [("failed", {"attempt": 1, "error_type": "builtins.OSError", "error": "x" * 500})]
    retry = retrying(failed, 2000)
    assert retry.next_retry_at == t0 + timedelta(seconds=2)
    [(first, first_meta), (second, second_meta)] = names_and_meta(retry)
    assert (first, second) == ("failed", "retrying")
    assert "delay_ms" not in first_meta
    assert second_meta["delay_ms"] == 2000 and second_meta["next_retry_at"] == retry.next_retry_at.isoformat()


def test_a_dead_letter_publishes_failed_then_dead_letter():
    dead = transition_for(message(), JobStatus.DEAD_LETTER, attempts=3, finished_at=now(), error_type="E")
    assert [name for name, _ in names_and_meta(dead)] == ["failed", "dead_letter"]


def test_a_named_event_and_extra_meta_replace_the_usual_ones():
    transition = Transition(
        message_id="w1", actor_name="Reindex", queue_name="long", status=JobStatus.FAILED, enqueued_at=now(),
        finished_at=now(), error_type="temporalio.exceptions.CancelledError", event="cancelled",
        meta={"run_id": "r1"}, backend="temporal",
    )  # fmt: skip
    [event] = events_for(transition)
    assert (event["event"], event["source"], json.loads(event["meta"])["run_id"]) == ("cancelled", "temporal", "r1")


def test_a_skip_says_why_when_it_knows():
    skipped = transition_for(message(), JobStatus.SKIPPED, finished_at=now(), error_message="purged from queue 'low'")
    assert names_and_meta(skipped) == [("skipped", {"reason": "purged from queue 'low'"})]
    assert names_and_meta(transition_for(message(), JobStatus.SKIPPED, finished_at=now())) == [("skipped", {})]
