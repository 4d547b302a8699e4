"""Every public name SPEC.md lists exists and each method runs once on the golden models."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import GOLDEN

import tessera

DENSE = GOLDEN / "dense" / "tiny_mean_nonorm" / "model"
COLBERT = GOLDEN / "multivector" / "tiny_colbert_stanford" / "model"
SPLADE = GOLDEN / "sparse" / "tiny_splade" / "model"
BOLT = GOLDEN / "timeseries" / "bolt_tiny_ctx128_p16" / "model"
COLPALI = GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model"

CLASSES = [
    "Tessera", "TesseraDense", "TesseraMultiVector", "TesseraSparse", "TesseraTimeSeries",
    "TesseraDenseBuilder", "TesseraMultiVectorBuilder", "TesseraSparseBuilder",
    "TesseraTimeSeriesBuilder", "TesseraVision", "TesseraVisionBuilder", "Device",
    "QuantizationConfig", "DenseEmbedding", "TokenEmbeddings", "SparseEmbedding",
    "QuantizedEmbeddings", "VisionEmbedding",
]  # fmt: skip


@pytest.mark.parametrize("name", CLASSES)
def test_public_names_exist(name: str) -> None:
    assert name in tessera.__all__ and hasattr(tessera, name)


def test_common_contract_of_every_embedder() -> None:
    for cls, path in [
        (tessera.TesseraDense, DENSE),
        (tessera.TesseraMultiVector, COLBERT),
        (tessera.TesseraSparse, SPLADE),
        (tessera.TesseraTimeSeries, BOLT),
        (tessera.TesseraVision, COLPALI),
    ]:
        model = tessera.Tessera(path)
        assert type(model) is cls
        assert model.model() == str(path) and cls.__name__ in repr(model)
        builder = cls.builder()
        assert builder.model(path) is builder  # setters return the builder
        assert type(builder.device("cpu").batch_size(4).build()) is cls
        assert cls.__text_signature__ is None or "model" in str(cls.__text_signature__)


def test_dense_surface() -> None:
    m = tessera.TesseraDense(DENSE, device=tessera.Device.Cpu)
    v = m.encode("text")
    assert v.shape == (m.dimension(),)
    assert m.encode_batch(["a", "b"], batch_size=1, show_progress=False).shape == (2, m.dimension())
    assert m.encode_query("q").shape == m.encode_document("d").shape == v.shape
    assert isinstance(m.similarity("a", "b"), float)
    assert m.max_length() == 48 and m.tokenize("hi")[0] == 101


def test_multivector_surface() -> None:
    m = tessera.TesseraMultiVector(COLBERT)
    q, d = m.encode_query("query"), m.encode_document("document text")
    assert m.encode("document text").shape == d.shape
    assert len(m.encode_batch(["x", "y"], is_query=True)) == 2
    assert isinstance(m.similarity(q, d), float)
    assert m.similarity_matrix([q], [d, d]).shape == (1, 2)
    assert m.rank(q, [d], top_k=1)[0].tolist() == [0]
    assert isinstance(m.quantize(d), tessera.QuantizedEmbeddings)
    assert isinstance(
        m.similarity_quantized(m.encode_quantized("q", is_query=True), m.encode_quantized("d")),
        float,
    )
    assert m.dimension() == 16 and m.query_length() == 12 and m.document_length() == 32
    assert m.quantization() == tessera.QuantizationConfig.None_ == tessera.QuantizationConfig.NONE


def test_sparse_surface() -> None:
    m = tessera.TesseraSparse(SPLADE)
    e = m.encode("sparse")
    assert isinstance(e, tessera.SparseEmbedding) and len(m.encode_batch(["a", "b"])) == 2
    assert isinstance(m.similarity(e, e), float) and m.vocab_size() == 30522
    assert e.to_dict() and e.tokens(top_k=2) and e.to_dense().shape == (30522,)
    assert e.to_scipy().shape == (1, 30522) and 0 < e.sparsity < 1


def test_timeseries_surface() -> None:
    m = tessera.TesseraTimeSeries(BOLT)
    ctx = np.sin(np.arange(50) / 4)
    assert m.forecast(ctx).shape == (1, m.prediction_length())
    assert m.forecast_quantiles(ctx, prediction_length=3).shape == (1, 3, len(m.quantiles()))
    assert m.context_length() == 128


def test_vision_surface() -> None:
    m = tessera.TesseraVision(COLPALI)
    page = np.full((60, 80, 3), 200, dtype=np.uint8)
    doc = m.encode_document(page)
    assert doc.num_patches == m.num_patches() == 36 and doc.embedding_dim == m.embedding_dim()
    assert len(m.encode_documents([page, page], batch_size=1)) == 2
    q = m.encode_query("chart")
    assert q.shape[1] == m.embedding_dim() and len(m.encode_queries(["a", "b"])) == 2
    assert m.search(q, doc) == pytest.approx(m.search_document("chart", page), abs=1e-5)
    assert m.similarity_matrix([q], [doc]).shape == (1, 1) and m.image_size() == 84


def test_device_and_enums() -> None:
    assert tessera.Device.cuda(2).index == 2 and str(tessera.Device.Cpu) == "cpu"
    assert tessera.Device.parse("cuda:1") == tessera.Device.cuda(1)
    assert tessera.Device.Auto != tessera.Device.Cpu
    assert "cpu" in tessera.available_devices()
    assert tessera.QuantizationConfig.parse("binary") == tessera.QuantizationConfig.Binary
    assert {tessera.QuantizationConfig.Int8, tessera.QuantizationConfig.Int4} != set()
    auto = tessera.TesseraDense(DENSE, device="auto")
    np.testing.assert_array_equal(auto.encode("x"), tessera.TesseraDense(DENSE).encode("x"))


def test_models_are_shareable_between_threads(tmp_path: Path) -> None:
    m = tessera.TesseraSparse(SPLADE)
    out: list[int] = []
    threads = [
        threading.Thread(target=lambda: out.append(len(m.encode("shared model")))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 1 and len(out) == 4
