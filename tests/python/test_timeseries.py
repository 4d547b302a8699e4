"""TesseraTimeSeries against chronos-forecasting's ChronosBoltPipeline (golden data)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import GOLDEN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tessera
from tessera import Tessera, TesseraTimeSeries

ROOTS = sorted(p for p in (GOLDEN / "timeseries").iterdir() if (p / "cases.json").exists())
CASES = [
    (root, case)
    for root in ROOTS
    for case in json.loads((root / "cases.json").read_text())["cases"]
    if case["method"] in ("predict", "predict_quantiles", "embed")
]


def series_of(case: dict[str, Any]) -> list[np.ndarray]:
    return [
        np.array([np.nan if v is None else v for v in s], dtype=np.float32)
        for s in case["inputs"]["series"]
    ]


def assert_scaled_close(root: Path, got: np.ndarray, want: np.ndarray, scale: np.ndarray) -> None:
    tol = json.loads((root / "cases.json").read_text())["tolerance"]
    bound = tol["atol_normalized"] * scale.reshape((-1,) + (1,) * (want.ndim - 1)) + tol[
        "rtol"
    ] * np.abs(want)
    assert got.shape == want.shape
    excess = np.abs(got - want) - bound
    assert excess.max() <= 0, (
        f"worst excess {excess.max()} at {np.unravel_index(excess.argmax(), excess.shape)}"
    )


@pytest.fixture(scope="module")
def models() -> dict[Path, TesseraTimeSeries]:
    return {root: TesseraTimeSeries(root / "model") for root in ROOTS}


@pytest.mark.parametrize("root,case", CASES, ids=[c["id"] for _, c in CASES])
def test_matches_chronos_forecasting(
    models: dict[Path, TesseraTimeSeries], root: Path, case: dict[str, Any]
) -> None:
    model = models[root]
    expected = np.load(root / "expected.npz")
    outputs = case["outputs"]
    scale = expected[outputs["scale"]["key"]]
    series = series_of(case)
    options = case["options"]
    if case["method"] == "predict":
        got = model.forecast_quantiles(series, prediction_length=options.get("prediction_length"))
        want = expected[outputs["forecast"]["key"]]  # (batch, quantiles, horizon)
        assert_scaled_close(root, got.transpose(0, 2, 1), want, scale)
        median = model.forecast(series, prediction_length=options.get("prediction_length"))
        assert_scaled_close(root, median, expected[outputs["median"]["key"]], scale)
        objects = model.forecast(
            series, prediction_length=options.get("prediction_length"), output="object"
        )
        assert len(objects) == len(series)
        assert_scaled_close(
            root, np.stack([o.median for o in objects]), expected[outputs["median"]["key"]], scale
        )
        assert_scaled_close(root, np.stack([o.quantiles.T for o in objects]), want, scale)
        assert objects[0].quantile_levels == pytest.approx(model.quantiles())
    elif case["method"] == "predict_quantiles":
        got = model.forecast_quantiles(
            series,
            prediction_length=options.get("prediction_length"),
            quantile_levels=options["quantile_levels"],
        )
        assert_scaled_close(root, got, expected[outputs["quantiles"]["key"]], scale)
        objects = model.forecast_quantiles(
            series,
            prediction_length=options.get("prediction_length"),
            quantile_levels=options["quantile_levels"],
            output="object",
        )
        assert_scaled_close(
            root,
            np.stack([o.quantiles for o in objects]),
            expected[outputs["quantiles"]["key"]],
            scale,
        )
        assert objects[0].quantile_levels == pytest.approx(options["quantile_levels"])
        if "mean" in outputs:
            mean = model.forecast(series, prediction_length=options.get("prediction_length"))
            assert_scaled_close(root, mean, expected[outputs["mean"]["key"]], scale)
    else:
        embeddings, loc, got_scale = model.embed(series)
        want = expected[outputs["embeddings"]["key"]]
        np.testing.assert_allclose(embeddings, want, atol=1e-4, rtol=1e-5)
        np.testing.assert_allclose(loc, expected[outputs["loc"]["key"]], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_scale, scale, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def tiny() -> TesseraTimeSeries:
    return TesseraTimeSeries(ROOTS[0] / "model")


def seasonal(n: int, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    return 50 + 10 * np.sin(2 * np.pi * t / 12 + phase) + 0.1 * t


def test_input_forms_agree(tiny: TesseraTimeSeries) -> None:
    a, b = seasonal(100), seasonal(100, 1.0)
    as_2d = tiny.forecast(np.stack([a, b]))
    as_list = tiny.forecast([a, b])
    as_f32 = tiny.forecast(np.stack([a, b]).astype(np.float32))
    one = tiny.forecast(a)
    assert as_2d.shape == (2, tiny.prediction_length()) and as_2d.dtype == np.float32
    np.testing.assert_array_equal(as_2d, as_list)
    np.testing.assert_array_equal(as_2d, as_f32)  # float64 is rounded to float32 first
    np.testing.assert_allclose(one[0], as_2d[0], atol=1e-5)
    np.testing.assert_array_equal(tiny.forecast(list(a)), one)


def test_forecast_objects(tiny: TesseraTimeSeries) -> None:
    a, b = seasonal(100), seasonal(70, 1.0)
    objects = tiny.forecast([a, b], prediction_length=20, output="object")
    assert [type(o) for o in objects] == [tessera.Forecast, tessera.Forecast]
    first = objects[0]
    assert first.prediction_length == len(first) == 20
    assert first.quantiles.shape == (20, len(tiny.quantiles()))
    assert np.shares_memory(np.asarray(first), first.median)
    assert not first.median.flags.writeable and not first.quantiles.flags.writeable
    # The median is the 0.5 quantile of the same run, and the array form's row.
    np.testing.assert_array_equal(first.median, first.quantiles[:, tiny.quantiles().index(0.5)])
    np.testing.assert_array_equal(
        np.stack([o.median for o in objects]), tiny.forecast([a, b], prediction_length=20)
    )
    assert pickle.loads(pickle.dumps(first)) == first and first != objects[1]
    assert repr(first).startswith("Forecast(prediction_length=20, quantile_levels=[0.1, 0.2")
    assert "<table" in first._repr_html_()
    rebuilt = tessera.Forecast(first.median, first.quantiles, first.quantile_levels)
    assert rebuilt == first
    with pytest.raises(ValueError, match="quantiles must be"):
        tessera.Forecast(first.median, first.quantiles[:5], first.quantile_levels)
    with pytest.raises(ValueError, match="output must be"):
        tiny.forecast(a, output="dict")
    with pytest.raises(tessera.ConfigError):
        tiny.forecast_quantiles(a, quantile_levels=[1.5], output="object")


def test_accessors_and_factory(tiny: TesseraTimeSeries) -> None:
    assert tiny.context_length() == 128 and tiny.prediction_length() == 16
    assert tiny.quantiles() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert isinstance(Tessera(ROOTS[0] / "model"), TesseraTimeSeries)
    built = TesseraTimeSeries.builder().model(ROOTS[0] / "model").prediction_length(24).build()
    assert built.prediction_length() == 24 and built.forecast(seasonal(64)).shape == (1, 24)
    assert "TesseraTimeSeries" in repr(tiny)


@pytest.mark.parametrize(
    "bad,error",
    [
        (np.array([], dtype=np.float32), tessera.EncodingError),
        (np.zeros((2, 3, 4)), ValueError),
        (np.array(["a", "b"]), TypeError),
        ([], ValueError),
        ([np.zeros((2, 2))], ValueError),
        ("not numbers", TypeError),
    ],
)
def test_bad_context(tiny: TesseraTimeSeries, bad: object, error: type) -> None:
    with pytest.raises(error):
        tiny.forecast(bad)  # type: ignore[arg-type]


def test_bad_options(tiny: TesseraTimeSeries) -> None:
    for horizon in (0, -3):
        with pytest.raises(tessera.ConfigError, match="prediction_length"):
            tiny.forecast(seasonal(40), prediction_length=horizon)
        with pytest.raises(tessera.ConfigError):
            tiny.forecast_quantiles(seasonal(40), prediction_length=horizon)
        with pytest.raises(tessera.ConfigError):
            TesseraTimeSeries(ROOTS[0] / "model", prediction_length=horizon)
    for levels in ([0.0, 0.5], [0.5, 1.0], [1.5], [float("nan")], []):
        with pytest.raises(tessera.ConfigError):
            tiny.forecast_quantiles(seasonal(40), quantile_levels=levels)
    with pytest.raises(tessera.ConfigError):
        TesseraTimeSeries.builder().prediction_length(0)


def test_all_nan_series_is_forecast_like_the_reference(tiny: TesseraTimeSeries) -> None:
    out = tiny.forecast([np.full(32, np.nan), seasonal(16)])
    assert np.isfinite(out).all()


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(factor=st.floats(0.01, 1000), length=st.integers(5, 200))
def test_scaling_the_series_scales_the_forecast(
    tiny: TesseraTimeSeries, factor: float, length: int
) -> None:
    series = seasonal(length).astype(np.float32)
    base = tiny.forecast_quantiles(series)
    scaled = tiny.forecast_quantiles((series * np.float32(factor)).astype(np.float32))
    np.testing.assert_allclose(scaled, base * factor, rtol=1e-3, atol=1e-3 * factor)
    # custom levels are interpolated over the sorted quantiles, so they come out ordered
    # (the model's own levels are returned unsorted, as the reference does)
    custom = tiny.forecast_quantiles(series, quantile_levels=[0.05, 0.25, 0.5, 0.75, 0.95])
    assert (np.diff(custom, axis=-1) >= -1e-6 * (1 + np.abs(custom[..., 1:]))).all()


def test_batch_rows_equal_single_series(tiny: TesseraTimeSeries) -> None:
    batch = [seasonal(n, n / 10) for n in (128, 75, 33, 16, 9)]
    together = tiny.forecast_quantiles(batch, prediction_length=20)
    for row, series in zip(together, batch):
        np.testing.assert_allclose(
            tiny.forecast_quantiles(series, prediction_length=20)[0], row, atol=1e-4
        )


def test_a_long_forecast_shows_its_progress_through_tqdm() -> None:
    import subprocess
    import sys

    model_dir = ROOTS[0] / "model"
    code = f"""
import numpy as np, tessera
model = tessera.TesseraTimeSeries({str(model_dir)!r}, batch_size=4)
series = [np.sin(np.arange(40.0) + i) for i in range(12)]
model.forecast(series, show_progress=True)
model.forecast_quantiles(series, show_progress=True)
model.forecast(series)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.replace("\r", "\n").splitlines()
    finished = [line for line in lines if "forecasting" in line and "12/12" in line]
    assert len({line.split("|")[0] for line in finished}) >= 1 and done.stderr.endswith("\n")
    assert sum("100%" in line and "forecasting" in line for line in lines) >= 2
