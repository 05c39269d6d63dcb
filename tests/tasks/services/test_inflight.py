"""The in-flight slot file: what a worker process notes before each message, read back after its death."""

from __future__ import annotations

import threading

from apps.tasks.services.inflight import InFlightSlots, _read

ENTRY = {
    "redis_id": "r-1",
    "message_id": "m-1",
    "queue": "default",
    "actor": 'odd "actor" \\ naïve',
    "retries": 2,
    "prior_attempts": 1,
    "enqueued_ms": 1_764_633_600_000,
    "alone": True,
}


def test_a_started_message_reads_back_as_it_was_noted_and_finishing_clears_it(tmp_path):
    slots = InFlightSlots(tmp_path, "worker-1", slots=4)
    try:
        slots.start(**ENTRY)
        assert _read(slots.path) == [ENTRY]
        slots.finish()
        assert _read(slots.path) == []
    finally:
        slots.close()
    assert not slots.path.exists()


def test_each_thread_has_its_own_slot(tmp_path):
    slots = InFlightSlots(tmp_path, "worker-2", slots=4)
    try:
        slots.start(**ENTRY)
        other = threading.Thread(target=lambda: slots.start(**{**ENTRY, "message_id": "m-2"}))
        other.start()
        other.join(timeout=5)
        assert sorted(entry["message_id"] for entry in _read(slots.path)) == ["m-1", "m-2"]
    finally:
        slots.close()
