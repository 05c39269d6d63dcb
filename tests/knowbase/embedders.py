"""A test embedding backend: the default one, with marker words that make it fail or slow down."""

from __future__ import annotations

import re
import time

from apps.knowbase.services.embeddings import HashingEmbedder

EXPLODES = "EMBEDDER-EXPLODES"
SLOW = "EMBEDDER-SLOW"
SLOW_SECONDS = 2.0
FLAKY = re.compile(r"EMBEDDER-FLAKY-(\w+)")
HANGS_ONCE = re.compile(r"EMBEDDER-HANGS-ONCE-(\w+)")
HANG_SECONDS = 120.0


def flaky_key(token: str) -> str:
    import dramatiq

    return f"{dramatiq.get_broker().namespace}:test:flaky-embedder:{token}"


def hang_key(token: str) -> str:
    import dramatiq

    return f"{dramatiq.get_broker().namespace}:test:hanging-embedder:{token}"


class ScriptedEmbedder(HashingEmbedder):
    """``EMBEDDER-EXPLODES`` raises RuntimeError; ``EMBEDDER-SLOW`` takes 2 s; ``EMBEDDER-FLAKY-<token>``
    raises ConnectionError (transient) the first time per token; ``EMBEDDER-HANGS-ONCE-<token>`` hangs
    for 120 s the first time per token (a worker to kill mid-document). Vectors are the default backend's."""

    def embed(self, texts):
        joined = "\n".join(texts)
        if EXPLODES in joined:
            raise RuntimeError("scripted backend failure")
        if SLOW in joined:
            time.sleep(SLOW_SECONDS)
        from apps.tasks.broker import get_redis

        match = FLAKY.search(joined)
        if match and get_redis().incr(flaky_key(match.group(1))) == 1:
            raise ConnectionError("scripted transient failure")
        match = HANGS_ONCE.search(joined)
        if match and get_redis().incr(hang_key(match.group(1))) == 1:
            time.sleep(HANG_SECONDS)
        return super().embed(texts)
