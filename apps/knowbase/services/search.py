"""Semantic search: rank chunks by cosine similarity to the query, in numpy.

Vectors are read as float32 bytes in blocks and scored with one matrix product per block, keeping
only the best ``top`` of each, so memory stays bounded by the block size however large the corpus.
Only chunks of completed documents embedded by the configured backend are compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.knowbase.models import DocumentChunk, DocumentStatus
from apps.knowbase.vectors import DTYPE

from .embeddings import Embedder, embed_texts, get_embedder

BLOCK_SIZE = 5_000
MAX_TOP = 100


@dataclass(frozen=True)
class SearchHit:
    score: float
    chunk_id: int
    document_id: int
    document_title: str
    position: int
    text: str
    start_offset: int
    end_offset: int


def _top(ids: np.ndarray, scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    if len(scores) > top:
        keep = np.argpartition(-scores, top - 1)[:top]
        ids, scores = ids[keep], scores[keep]
    return ids, scores


def _score_block(ids: list[int], blobs: list[bytes], query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = query.shape[0] * DTYPE.itemsize
    keep = [index for index, blob in enumerate(blobs) if len(blob) == width]
    if not keep:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    matrix = np.frombuffer(b"".join(bytes(blobs[index]) for index in keep), dtype=DTYPE).reshape(len(keep), -1)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
    scores = np.divide(matrix @ query, norms, out=np.zeros(len(keep), dtype=np.float32), where=norms > 0)
    return np.asarray([ids[index] for index in keep], dtype=np.int64), scores


def search(
    query: str, top: int = 5, *, document_ids: list[int] | None = None, embedder: Embedder | None = None
) -> list[SearchHit]:
    """The ``top`` chunks most similar to ``query``, best first (an empty query finds nothing)."""
    if not query.strip():
        return []
    top = max(1, min(int(top), MAX_TOP))
    embedder = embedder or get_embedder()
    vector = embed_texts([query], embedder)[0].astype(np.float32)
    chunks = DocumentChunk.objects.filter(document__status=DocumentStatus.COMPLETED, document__embedder=embedder.name)
    if document_ids is not None:
        chunks = chunks.filter(document_id__in=document_ids)
    best_ids = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float32)
    ids: list[int] = []
    blobs: list[bytes] = []

    def flush() -> None:
        nonlocal best_ids, best_scores
        block_ids, block_scores = _score_block(ids, blobs, vector)
        best_ids, best_scores = _top(
            np.concatenate([best_ids, block_ids]), np.concatenate([best_scores, block_scores]), top
        )
        ids.clear()
        blobs.clear()

    for chunk_id, blob in chunks.values_list("id", "embedding").iterator(chunk_size=BLOCK_SIZE):
        ids.append(chunk_id)
        blobs.append(blob)
        if len(ids) >= BLOCK_SIZE:
            flush()
    flush()
    # Best first; equal scores by chunk id, so results are stable.
    order = np.lexsort((best_ids, -best_scores))
    ranked = [(int(best_ids[index]), float(best_scores[index])) for index in order]
    found = DocumentChunk.objects.select_related("document").in_bulk([chunk_id for chunk_id, _ in ranked])
    return [
        SearchHit(
            score=score,
            chunk_id=chunk_id,
            document_id=found[chunk_id].document_id,
            document_title=found[chunk_id].document.title,
            position=found[chunk_id].position,
            text=found[chunk_id].text,
            start_offset=found[chunk_id].start_offset,
            end_offset=found[chunk_id].end_offset,
        )
        for chunk_id, score in ranked
        if chunk_id in found
    ]
