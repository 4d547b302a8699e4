"""MUVERA: one fixed-size vector per multi-vector embedding, so ColBERT or ColPali output
can go into any single-vector index (then re-rank the candidates with exact MaxSim).

The encodings are fastembed's (``fastembed.postprocess.Muvera``): the same parameters
and seed draw the same random hyperplanes and projections from
``numpy.random.default_rng(seed)``, and every step uses the same NumPy operations, so a
Tessera encoding equals fastembed's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from tessera.exceptions import ConfigError, DimensionMismatchError

# The largest encoding accepted: r_reps * 2**k_sim * dim_proj floats.
_MAX_OUTPUT = 1 << 26
# The widest token vectors accepted (the random matrices grow with it).
_MAX_DIM = 1 << 16


class Muvera:
    """Fixed dimensional encodings of token matrices (``dim`` columns each).

    Each of ``r_reps`` repetitions splits the space with ``k_sim`` random hyperplanes into
    ``2**k_sim`` buckets, sums (queries) or averages (documents) the tokens of each bucket,
    and projects every bucket to ``dim_proj`` dimensions with a random ±1 matrix (skipped
    when ``dim_proj == dim``). The dot product of a query and a document encoding
    approximates their MaxSim score.
    """

    def __init__(
        self,
        dim: int,
        k_sim: int = 5,
        dim_proj: int = 16,
        r_reps: int = 20,
        random_seed: int = 42,
    ) -> None:
        for name, value in (("dim", dim), ("dim_proj", dim_proj), ("r_reps", r_reps)):
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if dim > _MAX_DIM:
            raise ConfigError(f"dim {dim} is larger than any token embedding ({_MAX_DIM} at most)")
        if not _is_int(k_sim) or not 0 <= k_sim <= 30:
            raise ConfigError(f"k_sim must be an int in 0..=30, got {k_sim!r}")
        if not _is_int(random_seed) or random_seed < 0:
            raise ConfigError(f"random_seed must be a non-negative int, got {random_seed!r}")
        if dim_proj > dim:
            raise ConfigError(
                f"dim_proj ({dim_proj}) cannot be larger than the token dimension ({dim})"
            )
        if r_reps * (1 << k_sim) * dim_proj > _MAX_OUTPUT:
            raise ConfigError(
                f"r_reps * 2**k_sim * dim_proj = {r_reps * (1 << k_sim) * dim_proj} floats per "
                f"encoding is more than {_MAX_OUTPUT}; lower k_sim, dim_proj or r_reps"
            )
        self.dim, self.k_sim, self.dim_proj, self.r_reps = dim, k_sim, dim_proj, r_reps
        self.random_seed = random_seed
        # The draws, in fastembed's order: every repetition's hyperplanes, then the signs.
        generator = np.random.default_rng(random_seed)
        self.hyperplanes = np.stack(
            [generator.normal(size=(dim, k_sim)) for _ in range(r_reps)]
        ).reshape(r_reps, dim, k_sim)
        self.projections = generator.choice([-1, 1], size=(r_reps, dim, dim_proj))
        self._bucket_bits = 1 << np.arange(k_sim)
        buckets = np.arange(1 << k_sim, dtype=np.uint64)
        self._popcounts = np.unpackbits(buckets.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)

    @classmethod
    def from_model(cls, model: Any, **parameters: Any) -> Muvera:
        """For a ``TesseraMultiVector`` or ``TesseraVision``: ``dim`` is its dimension."""
        return cls(model.dimension(), **parameters)

    @property
    def embedding_size(self) -> int:
        """Length of each encoding: ``r_reps * 2**k_sim * dim_proj``."""
        return self.r_reps * (1 << self.k_sim) * self.dim_proj

    def dimension(self) -> int:
        return self.embedding_size

    def encode_document(self, embeddings: Any) -> npt.NDArray[np.float64]:
        """The encoding of a token matrix ``(n, dim)`` (or a ``TokenEmbeddings`` /
        ``VisionEmbedding``): ``(embedding_size,)``; of a list of them (or a
        ``RaggedEmbeddings``): ``(len, embedding_size)``."""
        return self._encode_any(embeddings, document=True)

    def encode_query(self, embeddings: Any) -> npt.NDArray[np.float64]:
        """Like :meth:`encode_document`, with the query side's plain bucket sums."""
        return self._encode_any(embeddings, document=False)

    # fastembed's names, for code moving over.
    def process_document(self, vectors: Any) -> npt.NDArray[np.float64]:
        return self.encode_document(vectors)

    def process_query(self, vectors: Any) -> npt.NDArray[np.float64]:
        return self.encode_query(vectors)

    def similarity(self, query: npt.ArrayLike, document: npt.ArrayLike) -> Any:
        """Dot products of encodings: a float for two vectors, else a matrix."""
        q, d = np.asarray(query, dtype=np.float64), np.asarray(document, dtype=np.float64)
        for name, value in (("query", q), ("document", d)):
            if value.ndim not in (1, 2) or value.shape[-1] != self.embedding_size:
                raise DimensionMismatchError(
                    f"{name} must be encodings of length {self.embedding_size}, "
                    f"got shape {value.shape}"
                )
        scores = q @ d.T
        return float(scores) if scores.ndim == 0 else scores

    def __repr__(self) -> str:
        return (
            f"Muvera(dim={self.dim}, k_sim={self.k_sim}, dim_proj={self.dim_proj}, "
            f"r_reps={self.r_reps}, random_seed={self.random_seed})"
        )

    def _encode_any(self, embeddings: Any, document: bool) -> npt.NDArray[np.float64]:
        if _is_batch(embeddings):
            rows = [self._encode(_matrix(e), document) for e in embeddings]
            if not rows:
                return np.zeros((0, self.embedding_size))
            return np.stack(rows)
        return self._encode(_matrix(embeddings), document)

    def _encode(self, vectors: np.ndarray, document: bool) -> npt.NDArray[np.float64]:
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"expected a token matrix (n, {self.dim}), got shape {vectors.shape}"
            )
        if vectors.shape[0] == 0:
            raise ConfigError("cannot encode an empty token matrix")
        if not np.isfinite(vectors).all():
            raise ConfigError("the token matrix has NaN or infinite values")
        buckets = 1 << self.k_sim
        blocks = []
        for rep in range(self.r_reps):
            ids = (vectors @ self.hyperplanes[rep] > 0) @ self._bucket_bits
            centers = np.zeros((buckets, self.dim))
            np.add.at(centers, ids, vectors)  # in token order, as fastembed's loop adds
            if document:
                counts = np.bincount(ids, minlength=buckets)
                empty = counts == 0
                centers[~empty] /= counts[~empty][:, None]
                if empty.any():
                    # An empty bucket takes the first token of the nearest occupied bucket
                    # (Hamming distance of bucket ids; the lowest id on ties).
                    occupied = np.flatnonzero(~empty)
                    distance = self._popcounts[np.flatnonzero(empty)[:, None] ^ occupied[None, :]]
                    nearest = occupied[np.argmin(distance, axis=1)]
                    first = np.full(buckets, -1)
                    used, first_token = np.unique(ids, return_index=True)
                    first[used] = first_token
                    centers[empty] = vectors[first[nearest]]
            if self.dim_proj < self.dim:
                blocks.append(
                    ((1 / np.sqrt(self.dim_proj)) * (centers @ self.projections[rep])).ravel()
                )
            else:
                blocks.append(centers.ravel())
        return np.concatenate(blocks)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_batch(value: Any) -> bool:
    if type(value).__name__ == "RaggedEmbeddings":
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 3
    return isinstance(value, Iterable) and not hasattr(value, "__array__")


def _matrix(value: Any) -> np.ndarray:
    matrix = np.asarray(value)
    if not np.issubdtype(matrix.dtype, np.floating):
        raise TypeError(f"token matrices must hold floats, not {matrix.dtype}")
    return matrix
