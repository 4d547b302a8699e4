"""Output objects: attributes, NumPy views without copies, len, repr, equality, pickling."""

from __future__ import annotations

import pickle

import numpy as np
from conftest import GOLDEN

import tessera
from tessera import DenseEmbedding, QuantizedEmbeddings, SparseEmbedding, TokenEmbeddings

DENSE = GOLDEN / "dense" / "tiny_bge_cls" / "model"
COLBERT = GOLDEN / "multivector" / "tiny_colbert_pylate" / "model"
SPLADE = GOLDEN / "sparse" / "tiny_splade" / "model"


def round_trip(obj: object) -> object:
    return pickle.loads(pickle.dumps(obj))


def test_dense_embedding_object() -> None:
    model = tessera.TesseraDense(DENSE)
    obj = model.encode("Hello world", output="object")
    assert isinstance(obj, DenseEmbedding)
    assert obj.dim == len(obj) == model.dimension()
    assert obj.text == "Hello world" and obj.tokens == ["[CLS]", "hello", "world", "[SEP]"]
    np.testing.assert_array_equal(obj.embedding, model.encode("Hello world"))
    assert np.shares_memory(np.asarray(obj), obj.embedding)
    assert round_trip(obj) == obj and "DenseEmbedding(dim=" in repr(obj)
    batch = model.encode_batch(["a", "b"], output="object")
    assert [o.text for o in batch] == ["a", "b"]


def test_sparse_embedding_pickles() -> None:
    e = tessera.TesseraSparse(SPLADE).encode("learned sparse retrieval")
    back = round_trip(e)
    assert isinstance(back, SparseEmbedding) and back == e
    np.testing.assert_array_equal(back.values, e.values)


def test_token_embeddings_pickles_and_builds() -> None:
    obj = tessera.TesseraMultiVector(COLBERT).encode("late interaction", output="object")
    back = round_trip(obj)
    assert isinstance(back, TokenEmbeddings) and back == obj and back.tokens == obj.tokens
    made = TokenEmbeddings(np.ones((2, 3), np.float32), "x", ["a", "b"])
    assert made.shape == (2, 3) and len(made) == 2


def test_quantized_embeddings_pickles() -> None:
    x = np.random.default_rng(3).normal(size=(4, 20)).astype(np.float32)
    for precision in ("binary", "int8", "int4"):
        q = tessera.quantize(x, precision)
        back = round_trip(q)
        assert isinstance(back, QuantizedEmbeddings) and back == q
        assert back.memory_bytes() == q.memory_bytes()
        assert "QuantizedEmbeddings(precision=" in repr(q)


def test_arrays_are_read_only_views() -> None:
    obj = tessera.TesseraMultiVector(COLBERT).encode("text", output="object")
    assert not obj.embeddings.flags.writeable
    assert np.asarray(obj, dtype=np.float64).dtype == np.float64
    copy = np.array(obj, copy=True)
    assert not np.shares_memory(copy, obj.embeddings)
