"""Chronos-Bolt forecasting throughput: Tessera against chronos-forecasting on PyTorch CPU.

The model is chronos-bolt-small-sized with random weights (d_model 512, 6 encoder + 6
decoder layers, 8 heads, d_ff 2048, context 2048, patch 16, prediction 64, 9 quantiles,
REG token), built with chronos-forecasting's own ``ChronosBoltModelForForecasting`` so the
checkpoint layout is the real one, saved with safetensors into
``.cache/bench-models/chronos_bolt_small_random`` on first use. Inputs are seeded random
walks of the full context length (2,048 points); both sides produce all 9 quantiles over
64 steps (``forecast_quantiles`` / ``ChronosBoltPipeline.predict_quantiles``).

* batch 1: one series per call, several calls per timed round;
* batch 32: one call with 32 series.

Run with the bench environment (see ``benches/README.md``)::

    .venv-bench/bin/python benches/python/bench_timeseries.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import common
import numpy as np

GOLDEN_CONFIG = (
    common.ROOT / "tests/fixtures/golden/timeseries/bolt_tiny_ctx128_p16/model/config.json"
)
CACHE = common.ROOT / ".cache/bench-models"
CONTEXT = 2048
PREDICTION = 64
QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def build_random_bolt(out: Path, seed: int = 0) -> Path:
    """Writes a chronos-bolt-small-sized random Chronos-Bolt checkpoint to ``out``."""
    if (out / "model.safetensors").exists() and (out / "bench_model.json").exists():
        return out
    import torch
    from chronos.chronos_bolt import ChronosBoltModelForForecasting
    from transformers import T5Config

    print(f"==> generating {out}", file=sys.stderr, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = json.loads(GOLDEN_CONFIG.read_text())
    raw.pop("transformers_version", None)
    raw.update(
        d_model=512,
        d_kv=64,
        num_heads=8,
        d_ff=2048,
        num_layers=6,
        num_decoder_layers=6,
    )
    raw["chronos_config"].update(
        context_length=CONTEXT,
        prediction_length=PREDICTION,
        input_patch_size=16,
        input_patch_stride=16,
        quantiles=QUANTILES,
        use_reg_token=True,
    )
    torch.manual_seed(seed)
    model = ChronosBoltModelForForecasting(T5Config.from_dict(raw)).eval()
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "bench_model.json").write_text(json.dumps({"seed": seed}))
    return out


def random_walks(n: int, length: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded random walks with drift, level and scale varying per series."""
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((n, length)) * rng.uniform(0.1, 5.0, size=(n, 1))
    level = rng.uniform(-100.0, 100.0, size=(n, 1))
    return (level + np.cumsum(steps, axis=1)).astype(np.float32)


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--single-calls", type=int, default=None, help="batch-1 calls per round (8; 4 quick)"
    )
    parser.add_argument(
        "--context", type=int, default=CONTEXT, help=f"history length (default {CONTEXT})"
    )
    args = parser.parse_args()
    common.set_threads(args.threads)

    import torch
    from chronos import BaseChronosPipeline

    import tessera

    torch.set_num_threads(args.threads)
    repeats = common.repeats_for(args)
    path = build_random_bolt(CACHE / "chronos_bolt_small_random")

    tess = tessera.TesseraTimeSeries(str(path), device="cpu", batch_size=32)
    pipe = BaseChronosPipeline.from_pretrained(str(path), device_map="cpu", dtype=torch.float32)
    pipe.model.eval()
    print(f"reference pipeline: {type(pipe).__name__}", file=sys.stderr)

    series = random_walks(32, args.context)
    series_t = torch.from_numpy(series)

    def tess_q(x: np.ndarray) -> np.ndarray:
        return np.asarray(tess.forecast_quantiles(x, PREDICTION, QUANTILES))

    def ref_q(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            q, _mean = pipe.predict_quantiles(x, PREDICTION, quantile_levels=QUANTILES)
        return np.asarray(q.numpy(), dtype=np.float32)

    a = tess_q(series[:4])
    b = ref_q(series_t[:4])
    check: dict[str, Any] = {"shape_tessera": list(a.shape), "shape_reference": list(b.shape)}
    if a.shape == b.shape:
        check["max_abs_diff"] = float(np.max(np.abs(a - b)))
        check["max_rel_diff"] = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6)))
    print(f"agreement on 4 series: {check}", file=sys.stderr)

    singles = args.single_calls or (4 if args.quick else 8)

    def tess_single() -> object:
        return [tess_q(series[i : i + 1]) for i in range(singles)]

    def ref_single() -> object:
        return [ref_q(series_t[i : i + 1]) for i in range(singles)]

    def tess_batch() -> object:
        return tess_q(series)

    def ref_batch() -> object:
        return ref_q(series_t)

    notes = {
        "model": str(path),
        "context": args.context,
        "prediction": PREDICTION,
        "agreement": check,
    }
    results = [
        common.measure(
            "chronos-bolt-small batch 1",
            "forecasts",
            singles,
            tess_single,
            ref_single,
            "chronos ChronosBoltPipeline",
            repeats,
            notes=notes,
        ),
        common.measure(
            "chronos-bolt-small batch 32",
            "forecasts",
            len(series),
            tess_batch,
            ref_batch,
            "chronos ChronosBoltPipeline",
            repeats,
            notes=notes,
        ),
    ]
    common.print_table("Chronos-Bolt forecasting (forecasts/s)", results)
    common.write_json(args.json, "timeseries", results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
