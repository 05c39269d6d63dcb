"""Abort a running job: dramatiq-abort's ``Abortable`` on the broker's Redis.

A worker thread keeps a blocking pop on the abort keys of the jobs it is running; an abort request
(``services.control.abort_job``) raises ``dramatiq_abort.Abort`` in the job's thread, the way
dramatiq's TimeLimit raises its exception: at the job's next Python bytecode, so a job inside one
long C call (a ``time.sleep(60)``, a blocking socket read) stops when that call returns. A job that
asked for a grace period sees ``abort_requested()`` and may stop itself at a check point first.
The lifecycle records the job ``cancelled`` ("aborted by ..."); it is not retried.
"""

from __future__ import annotations

import dramatiq
from dramatiq_abort import Abortable, Event
from dramatiq_abort.backends import RedisBackend
from dramatiq_abort.middleware import AbortMode

from apps.tasks import keys
from apps.tasks.broker import get_redis


class AbortMiddleware(Abortable):
    """``Abortable`` with its backend on the broker's Redis client, made when first used (the
    broker and its client do not exist yet when dramatiq builds its middleware)."""

    def __init__(self) -> None:
        super().__init__(backend=None)  # type: ignore[arg-type]

    @property
    def backend(self) -> RedisBackend:
        if self._backend is None:
            self._backend = RedisBackend(client=get_redis(), namespace=keys.aborts(dramatiq.get_broker().namespace))
        return self._backend

    @backend.setter
    def backend(self, value: RedisBackend | None) -> None:
        self._backend = value

    def before_process_message(self, broker, message) -> None:
        # dramatiq-abort's "cancel" mode polls Redis once per message; cancelling a waiting job is
        # services.control.cancel_job's (the message leaves its queue), so only register the job.
        if self.is_abortable(broker.get_actor(message.actor_name), message):
            self.manager.add_abortable(message.message_id)

    def abort(
        self, message_id: str, abort_ttl: int | None = None, mode: AbortMode = AbortMode.ABORT, abort_timeout: int = 0
    ) -> None:
        # Only the "abort" event: no worker polls the "cancel" one (see before_process_message).
        key = self.id_to_key(message_id, AbortMode.ABORT)
        self.backend.notify([Event(key, {"abort_timeout": abort_timeout})], ttl=abort_ttl or self.abort_ttl)
