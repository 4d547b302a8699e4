"""sentence-transformers habits on TesseraDense: `encode` with its keywords, `similarity`
on matrices with the model's similarity function, `get_sentence_embedding_dimension`,
checked against the reference outputs of the golden cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import GoldenCase, golden_cases, tolerance

import tessera
from tessera import TesseraDense

CASES = [c for c in golden_cases("dense") if c.name != "minilm_real"]
PROMPTED = [c for c in CASES if c.check("query_embeddings")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_encode_takes_a_string_or_a_list(case: GoldenCase) -> None:
    model = TesseraDense(case.model_dir)
    texts = case.texts("texts")
    want = case.expected()["embeddings"]
    batch = model.encode(texts, batch_size=4, show_progress_bar=False)
    assert batch.shape == want.shape
    np.testing.assert_allclose(batch, want, **tolerance(case.check("embeddings") or {}))
    assert model.encode(texts[0]).shape == (model.get_sentence_embedding_dimension(),)
    as_list = model.encode(texts[:3], convert_to_numpy=False)
    assert isinstance(as_list, list) and len(as_list) == 3
    # Another batch, possibly another product kernel: the same within the reference's bound.
    np.testing.assert_allclose(as_list[1], batch[1], **tolerance(case.check("embeddings") or {}))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_truncate_dim_and_normalize_embeddings_as_the_reference(case: GoldenCase) -> None:
    model = TesseraDense(case.model_dir)
    texts, expected = case.texts("texts"), case.expected()
    check = case.check("truncate_16") or {}
    np.testing.assert_allclose(
        model.encode(texts, truncate_dim=16), expected["truncate_16"], **tolerance(check)
    )
    np.testing.assert_allclose(
        model.encode(texts, truncate_dim=16, normalize_embeddings=True),
        expected["truncate_16_normalized"],
        **tolerance(check),
    )
    if "embeddings_normalized" in expected:
        np.testing.assert_allclose(
            model.encode(texts, normalize_embeddings=True),
            expected["embeddings_normalized"],
            **tolerance(check),
        )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_precision_quantizes_as_the_reference(case: GoldenCase) -> None:
    model = TesseraDense(case.model_dir)
    texts, expected = case.texts("texts"), case.expected()
    bits = model.encode(texts, precision="ubinary")
    assert bits.dtype == np.uint8
    floats = model.encode(texts)
    near_zero = np.abs(floats) < 1e-4
    unpacked = np.unpackbits(bits, axis=1)[:, : floats.shape[1]]
    want = np.unpackbits(expected["ubinary"], axis=1)[:, : floats.shape[1]]
    assert ((unpacked == want) | near_zero).all()
    int8 = model.encode(texts, precision="int8")
    assert int8.dtype == np.int8
    assert np.abs(int8.astype(int) - expected["int8"].astype(int)).max() <= 1


@pytest.mark.parametrize("case", PROMPTED, ids=lambda c: c.name)
def test_prompt_name_and_prompt_prepend_the_models_prompt(case: GoldenCase) -> None:
    model = TesseraDense(case.model_dir)
    check = case.check("query_embeddings") or {}
    options = check["options"]
    queries = case.texts("queries")
    want = case.expected()["query_embeddings"]
    by_string = model.encode(queries, prompt=options["prompt"])
    np.testing.assert_allclose(by_string, want, **tolerance(check))
    if options["prompt_name"]:
        by_name = model.encode(queries, prompt_name=options["prompt_name"])
        np.testing.assert_allclose(by_name, want, **tolerance(check))
    with pytest.raises(tessera.ConfigError, match="no prompt named"):
        model.encode(queries, prompt_name="no-such-prompt")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_similarity_of_matrices_is_the_reference_matrix(case: GoldenCase) -> None:
    check = case.check("similarity")
    assert check is not None
    model = TesseraDense(case.model_dir)
    a, b = case.texts("sim_a"), case.texts("sim_b")
    want = case.expected()["similarity"]
    from_texts = model.similarity(a, b)
    assert from_texts.shape == (len(a), len(b))
    np.testing.assert_allclose(from_texts, want, **tolerance(check))
    from_vectors = model.similarity(model.encode(a), model.encode(b))
    np.testing.assert_allclose(from_vectors, want, **tolerance(check))
    assert isinstance(model.similarity(a[0], b[0]), float)


@pytest.mark.parametrize("name", ["dot", "euclidean", "manhattan"])
def test_the_models_similarity_function_is_honoured(tmp_path: Path, name: str) -> None:
    source = next(c for c in CASES if c.name == "tiny_mean_nonorm").model_dir
    model_dir = tmp_path / "model"
    shutil.copytree(source, model_dir)
    config_path = model_dir / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text())
    config["similarity_fn_name"] = name
    config_path.write_text(json.dumps(config))
    model = TesseraDense(model_dir)
    assert model.similarity_fn_name == name
    a = model.encode(["first text", "second one"])
    b = model.encode(["a third", "and a fourth", "fifth"])
    difference = a[:, None, :] - b[None, :, :]
    want = {
        "dot": a @ b.T,
        "euclidean": -np.sqrt((difference**2).sum(-1)),
        "manhattan": -np.abs(difference).sum(-1),
    }[name]
    np.testing.assert_allclose(model.similarity(a, b), want, rtol=1e-5, atol=1e-5)
    assert model.similarity("first text", "a third") == pytest.approx(float(want[0, 0]), abs=1e-4)
