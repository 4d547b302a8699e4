"""Forecast a synthetic seasonal series with Chronos-Bolt: the median and the 10-90 % band.

Plots to a PNG when matplotlib is installed, else prints a table.

    python examples/forecast.py                                    # chronos-bolt-small
    python examples/forecast.py --model ./chronos-bolt-tiny --output forecast.png
"""

from __future__ import annotations

import argparse

import numpy as np

from tessera import TesseraTimeSeries


def seasonal_series(length: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    noise: np.ndarray = rng.normal(0, 1.5, length)
    series: np.ndarray = 100 + 0.05 * t + 12 * np.sin(2 * np.pi * t / 24) + noise
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="chronos-bolt-small")
    parser.add_argument("--horizon", type=int, default=48)
    parser.add_argument(
        "--output", default="forecast.png", help="PNG to write when matplotlib exists"
    )
    args = parser.parse_args()

    model = TesseraTimeSeries(args.model)
    history = seasonal_series(240)
    bands = model.forecast_quantiles(
        history, prediction_length=args.horizon, quantile_levels=[0.1, 0.5, 0.9]
    )[0]
    low, median, high = bands[:, 0], bands[:, 1], bands[:, 2]

    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]  # pyright: ignore[reportMissingImports]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]  # pyright: ignore[reportMissingImports]
    except ImportError:
        print(f"{'step':>4}  {'q10':>9}  {'median':>9}  {'q90':>9}")
        for step, (lo, mid, hi) in enumerate(zip(low, median, high), start=1):
            print(f"{step:>4}  {lo:9.2f}  {mid:9.2f}  {hi:9.2f}")
        return
    future = np.arange(len(history), len(history) + args.horizon)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(np.arange(len(history)), history, color="black", linewidth=1, label="history")
    ax.plot(future, median, color="tab:blue", label="median")
    ax.fill_between(future, low, high, color="tab:blue", alpha=0.25, label="10-90 %")
    ax.set_title(f"{model.model()}: {args.horizon}-step forecast")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
