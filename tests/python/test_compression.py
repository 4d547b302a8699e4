"""Compressed multi-vectors against their references: hierarchical token pooling against
PyLate (>= 1.5) and colpali-engine, MUVERA against fastembed (fixtures made by
tests/fixtures/compression/make_fixtures.py with those libraries)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES, GOLDEN

import tessera
from tessera import Muvera, TesseraMultiVector, TesseraVision

ROOT = FIXTURES / "compression"
POOLING = np.load(ROOT / "pooling.npz")
POOLING_CASES = json.loads((ROOT / "pooling.json").read_text())["results"]
MUVERA = np.load(ROOT / "muvera.npz")
MUVERA_SETS = json.loads((ROOT / "muvera.json").read_text())["parameter_sets"]
STYLES = {"pylate": ("pylate", 1), "pylate_p0": ("pylate", 0), "colpali": ("colpali", 0)}
COLBERT = TesseraMultiVector(GOLDEN / "multivector" / "tiny_colbert_pylate" / "model")
VISION = TesseraVision(GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model")
PAGES = GOLDEN / "vision" / "colpali_tiny_img84_p14" / "inputs"
DOCS = [
    "ColBERT scores every query token against every document token.",
    "Hierarchical pooling merges similar token vectors into their mean.",
    "short",
]

REFERENCE_OK = [
    key
    for key, result in POOLING_CASES.items()
    if key.split("/")[0] in STYLES and result["status"] == "ok"
]
REFERENCE_ERRORS = [
    key
    for key, result in POOLING_CASES.items()
    if key.split("/")[0] in STYLES and result["status"] != "ok"
]


def pooled(key: str) -> np.ndarray:
    method, case, factor = key.split("/")
    style, protected = STYLES[method]
    return tessera.pool_embeddings(
        POOLING[f"input/{case}"], int(factor[2:]), style=style, protected_tokens=protected
    )


@pytest.mark.parametrize("key", REFERENCE_OK)
def test_pooling_matches_the_reference(key: str) -> None:
    result = POOLING_CASES[key]
    case = key.split("/")[1]
    want = POOLING[f"input/{case}"] if result["passthrough"] else POOLING[f"out/{key}"]
    got = pooled(key)
    assert got.shape == want.shape == tuple(result["shape"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("key", REFERENCE_ERRORS)
def test_pooling_where_the_reference_refuses(key: str) -> None:
    # PyLate rejects duplicate tokens (float32 1 - cos of equal rows is -1.2e-7) and
    # colpali-engine a one-token page; Tessera pools the first and returns the second as is.
    method, case, factor = key.split("/")
    x = POOLING[f"input/{case}"]
    got = pooled(key)
    if method == "colpali":
        np.testing.assert_array_equal(got, x)
        return
    protected = STYLES[method][1]
    k = max((x.shape[0] - protected) // int(factor[2:]), 1)
    assert protected < got.shape[0] <= protected + k or protected == 0 < got.shape[0] <= k
    np.testing.assert_array_equal(got[:protected], x[:protected])
    # Equal rows always land in one cluster, so each pooled row is the mean of a union of
    # groups of equal rows: it is a convex combination of the distinct rows.
    distinct = np.unique(x[protected:], axis=0)
    weights, *_ = np.linalg.lstsq(distinct.T, got[protected:].T, rcond=None)
    np.testing.assert_allclose(distinct.T @ weights, got[protected:].T, atol=1e-5)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-4)


def test_pooling_arguments_are_checked() -> None:
    x = POOLING["input/rand_d32_n16"]
    with pytest.raises(tessera.ConfigError, match="pool_factor"):
        tessera.pool_embeddings(x, 0)
    with pytest.raises(tessera.ConfigError, match="style"):
        tessera.pool_embeddings(x, 2, style="mean")
    with pytest.raises(TypeError):
        tessera.pool_embeddings("text", 2)  # type: ignore[arg-type]
    with pytest.raises(tessera.ConfigError, match="NaN"):
        tessera.pool_embeddings(np.full((4, 8), np.nan, dtype=np.float32), 2)
    empty = np.zeros((0, 8), dtype=np.float32)
    assert tessera.pool_embeddings(empty, 2).shape == (0, 8)
    assert tessera.pool_embeddings(empty, 2, style="colpali").shape == (0, 8)


def test_colbert_documents_pool_on_encode() -> None:
    plain = COLBERT.encode_document(DOCS)
    for factor in (2, 3):
        encoded = COLBERT.encode_document(DOCS, pool_factor=factor)
        for got, matrix in zip(encoded, plain):
            np.testing.assert_array_equal(got, tessera.pool_embeddings(matrix, factor))
            assert got.shape[0] <= 1 + max((matrix.shape[0] - 1) // factor, 1)
    unprotected = COLBERT.encode_batch(DOCS, pool_factor=2, protected_tokens=0)
    np.testing.assert_array_equal(
        unprotected[0], tessera.pool_embeddings(plain[0], 2, protected_tokens=0)
    )
    flat = COLBERT.encode(DOCS, pool_factor=2, output="flat")
    assert flat.lengths == [m.shape[0] for m in COLBERT.encode_document(DOCS, pool_factor=2)]
    obj = COLBERT.encode_document(DOCS[0], pool_factor=2, output="object")
    assert obj.tokens == [] and obj.num_tokens == obj.embeddings.shape[0]  # rows are clusters
    np.testing.assert_array_equal(COLBERT.encode_document(DOCS, pool_factor=1)[0], plain[0])
    with pytest.raises(tessera.ConfigError, match="a query keeps every token"):
        COLBERT.encode(DOCS, is_query=True, pool_factor=2)
    with pytest.raises(tessera.ConfigError, match="pool_factor"):
        COLBERT.encode_document(DOCS, pool_factor=0)


def test_colpali_pages_pool_on_encode() -> None:
    paths = [PAGES / "doc_rgb.png", PAGES / "gray.png"]
    plain = VISION.encode_documents(paths)
    encoded = VISION.encode_documents(paths, pool_factor=3)
    for got, page in zip(encoded, plain):
        want = tessera.pool_embeddings(page.embeddings, 3, style="colpali")
        np.testing.assert_array_equal(got.embeddings, want)
        np.testing.assert_allclose(np.linalg.norm(got.embeddings, axis=1), 1.0, atol=1e-5)
    one = VISION.encode_document(paths[1], pool_factor=3, output="array")
    np.testing.assert_allclose(one, encoded[1].embeddings, atol=1e-5)


@pytest.mark.parametrize("params", MUVERA_SETS, ids=[p["id"] for p in MUVERA_SETS])
def test_muvera_is_fastembeds(params: dict[str, Any]) -> None:
    muvera = Muvera(**params["params"])
    name = params["id"]
    np.testing.assert_array_equal(muvera.hyperplanes, MUVERA[f"matrices/{name}/simhash"])
    np.testing.assert_array_equal(muvera.projections, MUVERA[f"matrices/{name}/proj"])
    assert muvera.embedding_size == params["output_dim"] == muvera.dimension()
    keys = [k for k in MUVERA.keys() if k.startswith(f"fde/{name}/")]
    assert keys
    for key in keys:
        case = key.rsplit("/", 1)[1]
        vectors = MUVERA[f"input/d{params['params']['dim']}/{case}"]
        encode = muvera.encode_document if case.startswith("doc") else muvera.encode_query
        got = encode(vectors)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, MUVERA[key])


def test_muvera_in_one_bucket_is_mean_and_sum() -> None:
    # With no hyperplane there is one bucket: documents encode to the mean of their tokens,
    # queries to the sum, so the score is the mean of the query-document token products.
    muvera = Muvera(dim=8, k_sim=0, dim_proj=8, r_reps=2)
    rng = np.random.default_rng(3)
    q, d = rng.normal(size=(3, 8)), rng.normal(size=(5, 8))
    np.testing.assert_allclose(muvera.encode_document(d), np.tile(d.mean(axis=0), 2))
    np.testing.assert_allclose(muvera.encode_query(q), np.tile(q.sum(axis=0), 2))
    score = muvera.similarity(muvera.encode_query(q), muvera.encode_document(d))
    assert score == pytest.approx(2 * (q @ d.T).mean() * 3, rel=1e-12)


def test_muvera_on_model_outputs() -> None:
    muvera = Muvera.from_model(COLBERT, k_sim=3, dim_proj=8, r_reps=4, random_seed=7)
    docs = COLBERT.encode_document(DOCS, output="object")
    batch = muvera.encode_document(docs)
    assert batch.shape == (3, muvera.embedding_size)
    np.testing.assert_array_equal(batch[1], muvera.encode_document(docs[1].embeddings))
    ragged = muvera.encode_document(COLBERT.encode_document(DOCS, output="flat"))
    np.testing.assert_array_equal(ragged, batch)
    queries = muvera.encode_query(COLBERT.encode_query(DOCS[:2]))
    scores = muvera.similarity(queries, batch)
    assert scores.shape == (2, 3)
    assert muvera.similarity(queries[0], batch[2]) == pytest.approx(scores[0, 2])
    pages = Muvera.from_model(VISION, k_sim=2, dim_proj=4, r_reps=2)
    assert pages.encode_document(VISION.encode_document(PAGES / "gray.png")).shape == (32,)
    assert (
        repr(muvera)
        == f"Muvera(dim={COLBERT.dimension()}, k_sim=3, dim_proj=8, r_reps=4, random_seed=7)"
    )


def test_muvera_rejects_bad_input() -> None:
    with pytest.raises(tessera.ConfigError, match="dim_proj"):
        Muvera(dim=8, dim_proj=16)
    with pytest.raises(tessera.ConfigError, match="k_sim"):
        Muvera(dim=8, k_sim=-1, dim_proj=8)
    with pytest.raises(tessera.ConfigError, match="floats per encoding"):
        Muvera(dim=128, k_sim=30, dim_proj=16)
    with pytest.raises(tessera.ConfigError, match="larger than any token embedding"):
        Muvera(dim=10**9, k_sim=1, dim_proj=1, r_reps=1)
    muvera = Muvera(dim=8, k_sim=2, dim_proj=4, r_reps=2)
    with pytest.raises(tessera.DimensionMismatchError):
        muvera.encode_document(np.ones((3, 7)))
    with pytest.raises(tessera.ConfigError, match="empty"):
        muvera.encode_query(np.ones((0, 8)))
    with pytest.raises(tessera.ConfigError, match="NaN"):
        muvera.encode_document(np.full((2, 8), np.nan))
    with pytest.raises(TypeError):
        muvera.encode_document(np.ones((2, 8), dtype=np.int64))
    with pytest.raises(tessera.DimensionMismatchError):
        muvera.similarity(np.ones(5), np.ones(muvera.embedding_size))
