"""The knowledge base's Temporal activities; ``manage.py runtemporal`` finds them here (``<app>.activities``)."""

from apps.knowbase.reindex.activities import (
    count_documents,
    drop_backups,
    list_documents,
    reindex_batch,
    restore_backups,
)

__all__ = ["count_documents", "drop_backups", "list_documents", "reindex_batch", "restore_backups"]
