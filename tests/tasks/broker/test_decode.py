"""What the consumer accepts as a message (no Redis)."""

from __future__ import annotations

import json

import dramatiq
import pytest

from apps.tasks.broker.consumer import decode
from apps.tasks.errors import MalformedMessage

GOOD = dramatiq.Message(
    queue_name="default", actor_name="add", args=(1,), kwargs={}, options={}, message_id="m1",
    message_timestamp=1_700_000_000_000,
)  # fmt: skip


def fields(**changes) -> bytes:
    return json.dumps({**GOOD.asdict(), **changes}).encode()


def test_a_good_message_decodes():
    assert decode(GOOD.encode()) == GOOD


@pytest.mark.parametrize(
    ("data", "reason", "message_id"),
    [
        (None, "has no body", None),
        (b"\xff\xfe garbage", "UnicodeDecodeError", None),
        (b'{"message_id": "m1", "actor_na', "JSONDecodeError", None),
        (b"[1, 2]", "TypeError", None),
        (json.dumps({"message_id": "m1", "actor_name": "add"}).encode(), "KeyError", "m1"),
        (fields(message_timestamp="soon"), "field 'message_timestamp' is str, not int or float", "m1"),
        (fields(kwargs=[1]), "field 'kwargs' is list, not dict", "m1"),
        (fields(message_timestamp=True), "field 'message_timestamp' is bool", "m1"),
    ],
)
def test_what_is_no_message_says_why_and_names_its_job_when_it_can(data, reason, message_id):
    with pytest.raises(MalformedMessage, match=reason) as raised:
        decode(data)
    assert raised.value.message_id == message_id
    if data:
        assert data.decode(errors="replace")[:8] not in str(raised.value)  # never the body: it may hold secrets
