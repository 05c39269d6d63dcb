"""How a chunk's embedding is stored: float32, little-endian, in a binary column."""

from __future__ import annotations

import numpy as np

DTYPE = np.dtype("<f4")


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=DTYPE).tobytes()


def bytes_to_vector(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype=DTYPE)
