"""Re-index the knowledge base as a Temporal workflow (``workflow.py``), with backups to undo it."""
