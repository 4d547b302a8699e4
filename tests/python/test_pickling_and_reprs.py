"""Embedders, enums and outputs as Python expects them: pickling (so multiprocessing, Ray
and Spark can ship them), reprs in Python syntax, and HTML cards for notebooks."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import GOLDEN

from tessera import (
    Device,
    QuantizationConfig,
    Tessera,
    TesseraDense,
    TesseraMultiVector,
    TesseraSparse,
    TesseraTimeSeries,
    TesseraVision,
)

TINY = GOLDEN / "dense" / "tiny_bge_cls" / "model"
MODELS: dict[str, tuple[Any, Path, dict[str, Any]]] = {
    "dense": (TesseraDense, TINY, {"max_length": 16, "normalize": False}),
    "sparse": (TesseraSparse, GOLDEN / "sparse" / "tiny_splade" / "model", {"top_k": 7}),
    "multivector": (
        TesseraMultiVector,
        GOLDEN / "multivector" / "tiny_colbert_pylate" / "model",
        {"query_length": 8, "quantization": "int8"},
    ),
    "vision": (TesseraVision, GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model", {}),
    "timeseries": (
        TesseraTimeSeries,
        GOLDEN / "timeseries" / "bolt_tiny_ctx128_p16" / "model",
        {"prediction_length": 5},
    ),
}


def output_of(kind: str, model: Any) -> np.ndarray:
    if kind == "dense":
        return np.asarray(model.encode("pickled text"))
    if kind == "sparse":
        return np.asarray(model.encode("pickled text").to_dense())
    if kind in ("multivector", "vision"):
        return np.asarray(model.encode_query("pickled text"))
    return np.asarray(model.forecast(np.sin(np.arange(60.0))))


@pytest.mark.parametrize("kind", list(MODELS))
def test_an_embedder_pickles_with_its_options(kind: str) -> None:
    cls, path, options = MODELS[kind]
    model = cls(path, **options)
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is cls
    assert repr(copy) == repr(model)
    np.testing.assert_array_equal(output_of(kind, copy), output_of(kind, model))


def _encode_in_worker(model: TesseraDense) -> list[float]:
    return model.encode("sent to another process").tolist()


def test_an_embedder_travels_to_a_spawned_worker() -> None:
    model = TesseraDense(TINY)
    with mp.get_context("spawn").Pool(1) as pool:
        (got,) = pool.map(_encode_in_worker, [model])
    np.testing.assert_allclose(got, model.encode("sent to another process"), atol=1e-6)


def test_enums_pickle() -> None:
    for device in (Device.Cpu, Device.cuda(3), Device.Auto, Device.Metal):
        assert pickle.loads(pickle.dumps(device)) == device
    for config in (
        QuantizationConfig.Int8,
        QuantizationConfig.Binary,
        QuantizationConfig.Int4,
        QuantizationConfig.None_,
    ):
        assert pickle.loads(pickle.dumps(config)) == config


def keyword_values(text: str) -> dict[str, Any]:
    """The keywords of a `Name(k=v, ...)` repr, evaluated as Python literals."""
    inner = re.fullmatch(r"\w+\((.*)\)", text, re.S)
    assert inner, text
    return eval(f"dict({inner.group(1)})")


def test_builder_reprs_are_python() -> None:
    builder = TesseraSparse.builder().model("org/m").top_k(5).min_weight(0.1).revision("v2")
    values = keyword_values(repr(builder))
    assert values["model"] == "org/m" and values["top_k"] == 5
    assert values["min_weight"] == 0.1 and values["revision"] == "v2"
    dense = TesseraDense.builder().normalize(True).query_prefix('it\'s "quoted"\n')
    values = keyword_values(repr(dense))
    assert values["normalize"] is True and values["query_prefix"] == 'it\'s "quoted"\n'
    for text in (repr(builder), repr(dense)):
        assert "Some(" not in text and "true" not in text


@pytest.mark.parametrize("kind", list(MODELS))
def test_embedder_reprs_are_python(kind: str) -> None:
    cls, path, options = MODELS[kind]
    values = keyword_values(repr(cls(path, **options)))
    assert values["model"] == str(path)
    if kind == "dense":
        assert values["normalize"] is False and values["device"] == "cpu"


def test_output_reprs_and_html_cards() -> None:
    model = Tessera(TINY)
    assert isinstance(model, TesseraDense)
    embedding = model.encode("a <b> text", output="object")
    assert keyword_values(repr(embedding))["text"] == "a <b> text"
    html = embedding._repr_html_()
    assert "<table>" in html and "a &lt;b&gt; text" in html
    sparse = TesseraSparse(MODELS["sparse"][1]).encode("learned sparse retrieval")
    top = keyword_values(repr(sparse))["top"]
    assert isinstance(top, dict) and len(top) == 3
    assert "vocab_size" in sparse._repr_html_()
    colbert = TesseraMultiVector(MODELS["multivector"][1])
    tokens = colbert.encode_batch(["late interaction"], output="object")[0]
    assert keyword_values(repr(tokens))["text"] == "late interaction"
    assert "tokens" in tokens._repr_html_()
