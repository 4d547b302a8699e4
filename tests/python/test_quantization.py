"""tessera.quantize_embeddings against sentence-transformers' quantize_embeddings (golden)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import GoldenCase, golden_cases

import tessera
from tessera import TesseraDense, quantize_embeddings

CASES = [c for c in golden_cases("dense") if c.check("ubinary")]


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def case(request: pytest.FixtureRequest) -> GoldenCase:
    return request.param


def test_ubinary_and_binary(case: GoldenCase) -> None:
    expected = case.expected()
    embeddings = expected["embeddings"]
    ubinary = quantize_embeddings(embeddings, "ubinary")
    assert ubinary.dtype == np.uint8
    np.testing.assert_array_equal(ubinary, expected["ubinary"])
    binary = quantize_embeddings(embeddings, "binary")
    assert binary.dtype == np.int8
    np.testing.assert_array_equal(
        binary, (expected["ubinary"].astype(np.int16) - 128).astype(np.int8)
    )
    # end to end from our own embeddings
    ours = TesseraDense(case.model_dir).encode_batch(case.texts("texts"))
    np.testing.assert_array_equal(quantize_embeddings(ours, "ubinary"), expected["ubinary"])


def test_int8_from_the_batch_and_from_calibration(case: GoldenCase) -> None:
    expected = case.expected()
    embeddings = expected["embeddings"]
    got = quantize_embeddings(embeddings, "int8")
    assert got.dtype == np.int8
    assert np.abs(got.astype(int) - expected["int8"].astype(int)).max() <= 1
    if "calibration_embeddings" not in expected:
        return  # the architecture cases record int8 from the batch only
    calibrated = quantize_embeddings(
        embeddings, "int8", calibration_embeddings=expected["calibration_embeddings"]
    )
    assert np.abs(calibrated.astype(int) - expected["int8_calibrated"].astype(int)).max() <= 1
    with_ranges = quantize_embeddings(embeddings, "int8", ranges=expected["int8_calibrated_ranges"])
    np.testing.assert_array_equal(with_ranges, calibrated)


def test_bad_arguments() -> None:
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    with pytest.raises(tessera.QuantizationError):
        quantize_embeddings(x, "int3")
    with pytest.raises(TypeError):
        quantize_embeddings(x.astype(np.int64), "ubinary")
    with pytest.raises(ValueError):
        quantize_embeddings(x[0], "ubinary")
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(tessera.QuantizationError):
        quantize_embeddings(bad, "int8")


def test_quantize_function_round_trip() -> None:
    x = np.random.default_rng(1).normal(size=(5, 19)).astype(np.float32)
    q = tessera.quantize(x)
    assert q.shape == (5, 3) and q.original_dim == 19 and len(q) == 5
    np.testing.assert_array_equal(q.bits, np.packbits(x > 0, axis=1))
    assert np.shares_memory(np.asarray(q), q.data)
    for precision in ("int8", "int4"):
        qi = tessera.quantize(x, precision)
        assert np.abs(qi.dequantize() - x).max() <= np.abs(x).max() / (
            7 if precision == "int4" else 100
        )
