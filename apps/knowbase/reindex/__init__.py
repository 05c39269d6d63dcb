"""Re-index the knowledge base as a Temporal workflow (``workflow.py``), with backups to undo it.

Knowbase's own workflow, on the workflows layer's public API (records, router, control)."""
