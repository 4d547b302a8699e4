"""TesseraSparse against sentence-transformers' SparseEncoder (golden data), plus properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from conftest import GoldenCase, golden_cases, tolerance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tessera
from tessera import SparseEmbedding, Tessera, TesseraSparse

SPARSE = golden_cases("sparse")


@pytest.fixture(scope="module", params=SPARSE, ids=lambda c: c.name)
def case(request: pytest.FixtureRequest) -> GoldenCase:
    return request.param


@pytest.fixture(scope="module")
def tiny() -> TesseraSparse:
    return TesseraSparse(next(c for c in SPARSE if c.name == "tiny_splade").model_dir)


def dense_rows(embeddings: list[SparseEmbedding]) -> np.ndarray:
    return np.stack([e.to_dense() for e in embeddings])


def reference_dense(case: GoldenCase, vocab: int) -> np.ndarray:
    data = case.expected()
    offsets, indices, values = data["sparse.offsets"], data["sparse.indices"], data["sparse.values"]
    out = np.zeros((len(offsets) - 1, vocab), dtype=np.float32)
    for i in range(len(offsets) - 1):
        out[i, indices[offsets[i] : offsets[i + 1]]] = values[offsets[i] : offsets[i + 1]]
    return out


def test_sparse_vectors_match_reference(case: GoldenCase) -> None:
    model = TesseraSparse(case.model_dir)
    check = case.check("sparse")
    assert check is not None
    got = model.encode_batch(case.texts(check["inputs"]))
    want = reference_dense(case, model.vocab_size())
    dense = dense_rows(got)
    np.testing.assert_allclose(dense, want, **tolerance(check))
    # an index clearly present in one must be present in the other
    assert ((want > 1e-3) <= (dense > 0)).all() and ((dense > 1e-3) <= (want > 0)).all()
    for embedding in got:
        assert embedding.indices.dtype == np.int32 and embedding.values.dtype == np.float32
        assert (np.diff(embedding.indices) > 0).all() and (embedding.values > 0).all()


def test_top_tokens_match_reference(case: GoldenCase) -> None:
    model = TesseraSparse(case.model_dir)
    texts = case.texts(case.check("topk")["inputs"])  # type: ignore[index]
    for entry in case.cases["top_tokens"]:
        got = model.encode(texts[entry["input"]]).tokens(top_k=len(entry["top"]))
        want = entry["top"]
        np.testing.assert_allclose([w for _, w in got], [w for _, w in want], atol=1e-4)
        tied = {r for pair in entry["near_ties_between_ranks"] for r in pair}
        for rank, ((token, _), (ref, _)) in enumerate(zip(got, want)):
            if rank not in tied:
                assert token == ref, f"rank {rank}: {token} != {ref}"


def test_similarity_and_pairs_match_reference(case: GoldenCase) -> None:
    model = TesseraSparse(case.model_dir)
    check = case.check("similarity")
    assert check is not None
    inputs = check["inputs"]
    assert isinstance(inputs, str) or inputs[0] == inputs[1]
    texts = case.texts(inputs if isinstance(inputs, str) else inputs[0])
    embeddings = model.encode_batch(texts)
    got = model.similarity_matrix(embeddings, embeddings)
    np.testing.assert_allclose(got, case.expected()["similarity"], **tolerance(check))
    from_texts = model.similarity_matrix(texts, texts)
    np.testing.assert_allclose(from_texts, got, atol=1e-5)
    pairs = case.check("pairs")
    assert pairs is not None
    scores = [
        model.similarity(embeddings[q], embeddings[d]) for q, d in case.cases["inputs"]["pairs"]
    ]
    np.testing.assert_allclose(scores, case.expected()["pairs.scores"], **tolerance(pairs))


def test_token_ids_match_reference(case: GoldenCase) -> None:
    model = TesseraSparse(case.model_dir)
    for text, ids in zip(case.texts("texts"), case.ragged("tokens.input_ids")):
        assert model.tokenize(text) == ids.tolist()


def test_sparse_embedding_surface(tiny: TesseraSparse) -> None:
    e = tiny.encode("sparse retrieval with learned term weights")
    assert len(e) == len(e.indices) == len(e.values) > 0
    assert e.vocab_size == tiny.vocab_size() == 30522
    assert e.sparsity == pytest.approx(1 - len(e) / e.vocab_size)
    dense = e.to_dense()
    assert dense.shape == (e.vocab_size,)
    np.testing.assert_array_equal(dense[e.indices], e.values)
    assert np.count_nonzero(dense) == len(e)
    as_dict = e.to_dict()
    assert list(as_dict) == e.indices.tolist()
    row = e.to_scipy()
    assert row.shape == (1, e.vocab_size)
    np.testing.assert_array_equal(row.toarray()[0], dense)
    tokens = e.tokens()
    assert len(tokens) == len(e) and tokens == sorted(tokens, key=lambda t: -t[1])
    assert "SparseEmbedding(nnz=" in repr(e)
    assert e == tiny.encode("sparse retrieval with learned term weights")
    with pytest.raises(ValueError):
        e.indices[0] = 5  # shared buffers are read-only


def test_csr_batch_helper(tiny: TesseraSparse) -> None:
    texts = ["first document", "a second one", ""]
    csr = tiny.encode_csr(texts)
    assert isinstance(csr, scipy.sparse.csr_matrix) and csr.shape == (3, tiny.vocab_size())
    np.testing.assert_array_equal(csr.toarray(), dense_rows(tiny.encode_batch(texts)))


def test_user_built_embedding(tiny: TesseraSparse) -> None:
    e = SparseEmbedding(
        np.array([7, 3], dtype=np.int64), np.array([0.5, 2.0], dtype=np.float32), 10
    )
    assert e.indices.tolist() == [3, 7] and e.values.tolist() == [2.0, 0.5]
    assert e.dot(e) == pytest.approx(4.25)
    with pytest.raises(tessera.DimensionMismatchError):
        SparseEmbedding(np.array([12]), np.array([1.0], dtype=np.float32), 10)
    with pytest.raises(tessera.DimensionMismatchError):
        tiny.similarity(e, tiny.encode("x"))
    with pytest.raises(ValueError, match="decode"):
        e.tokens()
    made = tiny.encode("round trip")
    assert SparseEmbedding(made.indices, made.values, made.vocab_size) == made  # int32 ids
    assert SparseEmbedding([5, 2], [1.0, 3.0], 10).indices.tolist() == [2, 5]
    with pytest.raises(TypeError, match="integers"):
        SparseEmbedding(np.array([1.5]), np.array([1.0], dtype=np.float32), 10)


def test_pruning(case: GoldenCase) -> None:
    text = case.texts("texts")[0]
    full = TesseraSparse(case.model_dir).encode(text)
    top = TesseraSparse(case.model_dir, top_k=5).encode(text)
    assert len(top) == 5
    heaviest = sorted(zip(full.values.tolist(), full.indices.tolist()), reverse=True)[:5]
    assert set(top.indices.tolist()) == {i for _, i in heaviest}
    floor = float(np.median(full.values))
    pruned = TesseraSparse.builder().model(case.model_dir).min_weight(floor).build().encode(text)
    assert (pruned.values >= floor).all()
    assert set(pruned.indices.tolist()) == set(full.indices[full.values >= floor].tolist())


def test_bad_pruning_parameters(tiny: TesseraSparse) -> None:
    with pytest.raises(tessera.ConfigError):
        TesseraSparse.builder().top_k(0)
    with pytest.raises(tessera.ConfigError):
        TesseraSparse.builder().min_weight(-1.0)
    with pytest.raises(tessera.ConfigError):
        TesseraSparse.builder().min_weight(float("nan"))


def test_factory_detects_sparse(case: GoldenCase) -> None:
    assert isinstance(Tessera(case.model_dir), TesseraSparse)


def test_not_a_splade_model(tiny_dense_dir: Path) -> None:
    with pytest.raises(tessera.ModelLoadError):
        TesseraSparse(tiny_dense_dir)


def test_bad_input_types(tiny: TesseraSparse) -> None:
    with pytest.raises(TypeError, match="must be str"):
        tiny.encode(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tiny.encode_batch("not a list")
    with pytest.raises(TypeError, match="SparseEmbedding or str"):
        tiny.similarity(1, 2)  # type: ignore[arg-type]
    assert tiny.encode_batch([]) == []


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(max_size=80), min_size=1, max_size=6), batch_size=st.integers(1, 4))
def test_batch_invariance_and_symmetry(
    tiny: TesseraSparse, texts: list[str], batch_size: int
) -> None:
    batch = tiny.encode_batch(texts, batch_size=batch_size)
    for text, e in zip(texts, batch):
        alone = tiny.encode(text)
        np.testing.assert_array_equal(alone.indices, e.indices)
        np.testing.assert_allclose(alone.values, e.values, atol=1e-5)
        assert (e.values > 0).all()
    a, b = batch[0], batch[-1]
    assert tiny.similarity(a, b) == pytest.approx(tiny.similarity(b, a), rel=1e-6)
