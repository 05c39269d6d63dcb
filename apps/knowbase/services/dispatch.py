"""Hand documents to the knowledge queue without ever failing the save that asked for it.

The document row is the outbox: it is committed first, and only after the commit is a message sent.
A saved document is committed as ``queued`` already (``Document.save``); one sent again (sweeper,
reprocessing) is ``pending`` and becomes ``queued`` once sent. When Redis is unreachable the
document is, or goes back to, ``pending`` with the reason in ``error``, and ``services.sweeper``
sends it again later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial

from django.db import transaction

from apps.knowbase.models import Document
from apps.tasks.enqueue import EnqueueError, enqueue

logger = logging.getLogger(__name__)

#: The actor of ``apps.knowbase.tasks``, sent by name: the task module needs this one, not the reverse.
PROCESS_ACTOR = "process_document_async"


def send_processing(document_id: int, using: str = "default", marked_queued: bool = False) -> bool | None:
    """Enqueue ``process_document_async(document_id)`` now; inside a transaction, when it commits.

    Returns True when sent, False when the broker refused (the document is left, or put back,
    pending with the reason), None when deferred to the commit. Never raises for a broker failure.
    ``marked_queued``: the document was saved as queued already, so success writes nothing.
    """
    if transaction.get_connection(using).in_atomic_block:
        callback = partial(send_processing, document_id, using, marked_queued)
        transaction.on_commit(callback, using=using, robust=True)
        return None
    try:
        # The document row is the outbox, so the job record need not be written before the send.
        enqueue(PROCESS_ACTOR, args=(document_id,), using=using, record_first=False)
    except EnqueueError as exc:
        logger.error("Document %s stays pending; the sweeper will send it again: %s", document_id, exc)
        error = f"not queued yet: {exc}"
        documents = Document.objects.using(using)
        if marked_queued:
            documents.send_failed(document_id, error)
        else:
            documents.note_not_sent([document_id], error)
        return False
    if not marked_queued:
        Document.objects.using(using).mark_sent(document_id)
    return True


def schedule_processing(document_id: int, using: str = "default") -> None:
    """Send a document saved as queued once the current transaction commits (at once in autocommit);
    errors are logged and recorded on the document, not raised."""
    transaction.on_commit(partial(send_processing, document_id, using, True), using=using, robust=True)


def request_reprocessing(document_ids: Iterable[int], using: str = "default") -> tuple[int, int]:
    """Put documents back to pending (discarding any claim in progress) and send them.

    Returns (sent, not sent); with an open transaction, sending happens at commit and counts as sent.
    """
    ids = list(document_ids)
    Document.objects.using(using).request_processing(ids)
    sent = 0
    for position, document_id in enumerate(ids):
        if send_processing(document_id, using) is False:
            # The broker is down: leave the rest pending for the sweeper rather than wait on each.
            Document.objects.using(using).note_not_sent(
                ids[position + 1 :], "not queued yet: the broker refused an earlier document; the sweeper will send it"
            )
            break
        sent += 1
    return sent, len(ids) - sent
