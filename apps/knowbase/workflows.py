"""The knowledge base's Temporal workflows; ``manage.py runtemporal`` finds them here (``<app>.workflows``)."""

from apps.knowbase.reindex.workflow import ReindexKnowledgeWorkflow

__all__ = ["ReindexKnowledgeWorkflow"]
