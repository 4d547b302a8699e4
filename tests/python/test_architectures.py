"""Every encoder family (BERT, XLM-RoBERTa, NomicBERT, GTE, ModernBERT) through the
Python API: the model's own prompts, factory detection, and properties per family."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import GoldenCase, golden_cases, tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

from tessera import Tessera, TesseraDense, TesseraMultiVector

FAMILIES = [c for c in golden_cases("dense") if c.name != "minilm_real"]
PROMPTED = [c for c in FAMILIES if c.check("query_embeddings")]


@functools.cache
def dense(name: str) -> TesseraDense:
    case = next(c for c in FAMILIES if c.name == name)
    return TesseraDense(case.model_dir)


@pytest.mark.parametrize("case", PROMPTED, ids=lambda c: c.name)
def test_query_and_document_sides_use_the_models_prompts(case: GoldenCase) -> None:
    model = dense(case.name)
    expected = case.expected()
    queries, documents = case.texts("queries"), case.texts("documents")
    q, d = model.encode_query(queries), model.encode_document(documents)
    np.testing.assert_allclose(
        q, expected["query_embeddings"], **tolerance(case.check("query_embeddings") or {})
    )
    np.testing.assert_allclose(
        d, expected["document_embeddings"], **tolerance(case.check("document_embeddings") or {})
    )
    cosine = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
        d / np.linalg.norm(d, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(cosine, expected["query_document_similarity"], atol=1e-4)
    # One text gives the row of the batch.
    np.testing.assert_allclose(model.encode_query(queries[0]), q[0], atol=1e-5)


@pytest.mark.parametrize("case", FAMILIES, ids=lambda c: c.name)
def test_the_factory_detects_every_family(case: GoldenCase) -> None:
    model = Tessera(case.model_dir)
    assert isinstance(model, TesseraDense)
    want = case.expected()["embeddings"]
    np.testing.assert_allclose(
        model.encode_batch(case.texts("texts")), want, **tolerance(case.check("embeddings") or {})
    )


def test_the_factory_detects_a_modernbert_colbert() -> None:
    case = next(c for c in golden_cases("multivector") if c.name == "tiny_modernbert_colbert")
    model = Tessera(case.model_dir)
    assert isinstance(model, TesseraMultiVector)
    query = model.encode_query(case.texts("texts")[0])
    assert query.shape == (16, 16)


@pytest.mark.parametrize("name", [c.name for c in FAMILIES])
@settings(max_examples=12, deadline=None)
@given(
    texts=st.lists(st.text(max_size=80), min_size=1, max_size=8),
    batch_size=st.integers(1, 5),
)
def test_a_text_is_the_same_alone_and_in_any_batch(
    name: str, texts: list[str], batch_size: int
) -> None:
    model = dense(name)
    batch = model.encode_batch(texts, batch_size=batch_size)
    for text, row in zip(texts, batch):
        assert np.abs(model.encode(text) - row).max() <= 1e-5


@pytest.mark.parametrize("name", [c.name for c in FAMILIES])
@settings(max_examples=25, deadline=None)
@given(text=st.text(max_size=300))
def test_any_unicode_string_encodes_to_finite_values(name: str, text: str) -> None:
    vector = dense(name).encode(text)
    assert vector.shape == (dense(name).dimension(),)
    assert np.isfinite(vector).all()
