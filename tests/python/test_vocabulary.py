"""One vocabulary across the five classes: the same verb for the same act, list inputs
wherever a batch makes sense, and each shared name agreeing with the paradigm's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import GOLDEN

from tessera import (
    TesseraDense,
    TesseraMultiVector,
    TesseraSparse,
    TesseraTimeSeries,
    TesseraVision,
)

DENSE = TesseraDense(GOLDEN / "dense" / "tiny_bge_cls" / "model")
SPARSE = TesseraSparse(GOLDEN / "sparse" / "tiny_splade" / "model")
COLBERT = TesseraMultiVector(GOLDEN / "multivector" / "tiny_colbert_pylate" / "model")
VISION = TesseraVision(GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model")
SERIES = TesseraTimeSeries(GOLDEN / "timeseries" / "bolt_tiny_ctx128_p16" / "model")
PAGES = GOLDEN / "vision" / "colpali_tiny_img84_p14" / "inputs"
TEXTS = ["late interaction", "learned sparse retrieval", "one more text"]


@pytest.mark.parametrize("model", [DENSE, SPARSE, COLBERT, VISION, SERIES], ids=type)
def test_every_class_speaks_the_shared_verbs(model: object) -> None:
    for name in ("encode", "dimension" if model is not SERIES else "model", "max_length"):
        assert callable(getattr(model, name)), name
    if model is not SERIES:
        for name in ("encode_batch", "encode_query", "encode_document", "similarity"):
            assert callable(getattr(model, name)), name


def test_shared_names_agree_with_the_paradigms_own() -> None:
    assert SPARSE.dimension() == SPARSE.vocab_size() == SPARSE.get_sentence_embedding_dimension()
    assert COLBERT.get_sentence_embedding_dimension() == COLBERT.dimension()
    assert COLBERT.max_length() == COLBERT.document_length()
    assert VISION.dimension() == VISION.encode_query("q").shape[1]
    assert SERIES.max_length() == SERIES.context_length()
    series = np.sin(np.arange(60.0))
    for got, want in zip(SERIES.encode(series), SERIES.embed(series)):
        np.testing.assert_array_equal(got, want)


def test_text_classes_take_a_list_wherever_they_take_a_text() -> None:
    listed = SPARSE.encode(TEXTS)
    assert isinstance(listed, list) and len(listed) == len(TEXTS)
    alone = SPARSE.encode(TEXTS[1])
    np.testing.assert_allclose(listed[1].to_dense(), alone.to_dense(), atol=1e-5)
    for method in (COLBERT.encode, COLBERT.encode_query, COLBERT.encode_document):
        matrices = method(TEXTS)
        assert isinstance(matrices, list) and len(matrices) == len(TEXTS)
        np.testing.assert_allclose(matrices[2], method(TEXTS[2]), atol=1e-6)
    queries = VISION.encode_query(TEXTS)
    assert isinstance(queries, list)
    np.testing.assert_allclose(queries[0], VISION.encode_query(TEXTS[0]), atol=1e-6)


def test_vision_encodes_pages_with_the_shared_verbs() -> None:
    paths = [str(PAGES / "doc_rgb.png"), str(PAGES / "gray.png")]
    pages = VISION.encode(paths)
    assert isinstance(pages, list) and len(pages) == 2
    one = VISION.encode(paths[0])
    np.testing.assert_allclose(np.asarray(one), np.asarray(pages[0]), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(VISION.encode_batch(paths)[1]), np.asarray(pages[1]), atol=1e-6
    )
    query = VISION.encode_query("a document page")
    assert VISION.similarity(query, one) == pytest.approx(VISION.search(query, one))


def test_sparse_and_colbert_take_their_references_keywords() -> None:
    # SparseEncoder.encode(..., prompt=...): the prompt string before every text.
    prompted = SPARSE.encode(TEXTS, prompt="query: ", show_progress_bar=False)
    by_hand = SPARSE.encode_batch([f"query: {t}" for t in TEXTS])
    for got, want in zip(prompted, by_hand):
        np.testing.assert_allclose(got.to_dense(), want.to_dense(), atol=1e-5)
    # PyLate's ColBERT.encode(..., is_query=...): the query side with its expansion.
    queries = COLBERT.encode(TEXTS, is_query=True, batch_size=2)
    for got, text in zip(queries, TEXTS):
        np.testing.assert_allclose(got, COLBERT.encode_query(text), atol=1e-6)
    assert COLBERT.encode(TEXTS[0], is_query=True).shape == COLBERT.encode_query(TEXTS[0]).shape


def test_sparse_prompt_name_reads_the_models_prompts(tmp_path: Path) -> None:
    import json
    import shutil

    import tessera

    model_dir = tmp_path / "splade"
    shutil.copytree(GOLDEN / "sparse" / "tiny_splade" / "model", model_dir)
    config_path = model_dir / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text())
    config["prompts"] = {"query": "query: ", "document": ""}
    config_path.write_text(json.dumps(config))
    model = TesseraSparse(model_dir)
    by_name = model.encode(TEXTS, prompt_name="query")
    by_string = model.encode(TEXTS, prompt="query: ")
    for got, want in zip(by_name, by_string):
        np.testing.assert_array_equal(got.to_dense(), want.to_dense())
    with pytest.raises(tessera.ConfigError, match="no prompt named 'passage'"):
        model.encode(TEXTS, prompt_name="passage")
