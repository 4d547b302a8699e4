"""Reduced precision on the CPU: Tessera bf16 and int8 against ONNX Runtime's dynamic int8.

For all-MiniLM-L6-v2 (real) and a BERT-base shape (random weights), ONNX Runtime runs the
fused graph of ``bench_latency.py`` and that graph quantized the way users quantize it:
``onnxruntime.quantization.quantize_dynamic`` with int8 weights (per-tensor activations,
computed at run time). Tessera runs the same texts in f32, ``dtype="bf16"`` (where the
CPU has AVX512_BF16) and ``quantize="int8"``.

Reported, at 1 and 2 threads (each in its own process):

* batch 32: sentences per second over the corpus, sorted by length (as in
  ``bench_latency.py``), median of interleaved repeats;
* one text per call: p50 latency;
* accuracy: min and mean cosine of each variant's embeddings to its own f32 side
  (Tessera's to Tessera f32, ORT int8's to ORT f32), on the same mixed-length corpus.

    .venv-bench/bin/python benches/python/bench_precision.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import bench_latency
import common
import numpy as np

Encoder = Callable[[list[str]], np.ndarray]


def quantized_onnx(model_dir: Path) -> Path:
    """The fused graph after ``quantize_dynamic`` (int8 weights), cached beside it."""
    fused = bench_latency.export_onnx(model_dir)
    out = fused.with_name("model.optimized.int8.onnx")
    if not out.exists():
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # The fused graph's custom operators carry no shape information: say their
        # outputs are f32, as the quantizer's message advises.
        quantize_dynamic(
            str(fused),
            str(out),
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return out


class OrtInt8(bench_latency.OrtEncoder):
    def __init__(self, model_dir: Path, threads: int) -> None:
        import onnxruntime as ort

        super().__init__(model_dir, threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(quantized_onnx(model_dir)), options, providers=["CPUExecutionProvider"]
        )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def run_one(model_dir: Path, threads: int, texts: int, sentences: int) -> dict[str, Any]:
    common.set_threads(threads)
    import tessera

    def tessera_encoder(**options: str) -> Encoder | None:
        try:
            model = tessera.TesseraDense(model_dir, max_length=256, **options)  # type: ignore[arg-type]
        except tessera.DeviceError:
            return None
        return lambda batch: model.encode(batch)

    ort_f32 = bench_latency.OrtEncoder(model_dir, threads)
    ort_int8 = OrtInt8(model_dir, threads)
    candidates: dict[str, Encoder | None] = {
        "tessera f32": tessera_encoder(),
        "tessera bf16": tessera_encoder(dtype="bf16"),
        "tessera int8": tessera_encoder(quantize="int8"),
        "ort f32": ort_f32.encode,
        "ort int8": ort_int8.encode,
    }
    encoders = {name: e for name, e in candidates.items() if e is not None}
    corpus = common.sentences(max(texts, sentences))
    batch = sorted(corpus[:sentences], key=len)
    singles = corpus[:texts]
    for encode in encoders.values():  # warm
        encode(batch[:32])
        for text in singles[:5]:
            encode([text])

    rates: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(3):
        for name, encode in encoders.items():
            start = time.perf_counter()
            for i in range(0, len(batch), 32):
                encode(batch[i : i + 32])
            rates[name].append(len(batch) / (time.perf_counter() - start))
    times: dict[str, list[float]] = {name: [] for name in encoders}
    block = 20
    for first in range(0, len(singles), block):
        for name, encode in encoders.items():
            for text in singles[first : first + block]:
                begin = time.perf_counter()
                encode([text])
                times[name].append(time.perf_counter() - begin)

    outputs = {name: np.asarray(encode(batch)) for name, encode in encoders.items()}
    results = {}
    for name in encoders:
        reference = outputs["ort f32" if name.startswith("ort") else "tessera f32"]
        cos = cosines(outputs[name], reference)
        results[name] = {
            "batch32_per_s": float(np.median(rates[name])),
            "one_text_p50_ms": float(np.percentile(np.array(times[name]) * 1e3, 50)),
            "min_cosine_to_f32": float(cos.min()),
            "mean_cosine_to_f32": float(cos.mean()),
        }
    return {"threads": threads, "variants": results}


def main() -> None:
    ran = bench_latency.run_models(__file__, __doc__.split("\n")[0], run_one, 200, quantized_onnx)
    if ran is None:
        return
    args, results = ran
    print(
        "| model | threads | variant | batch 32 /s | vs ORT int8 | vs Tessera f32 "
        "| one text p50 | min / mean cos to f32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        variants = r["variants"]
        ort_int8 = variants["ort int8"]["batch32_per_s"]
        ours_f32 = variants["tessera f32"]["batch32_per_s"]
        for name, v in variants.items():
            rate = v["batch32_per_s"]
            print(
                f"| {r['model']} | {r['threads']} | {name} | {rate:.0f} "
                f"| {rate / ort_int8:.2f}x | {rate / ours_f32:.2f}x "
                f"| {v['one_text_p50_ms']:.2f} ms "
                f"| {v['min_cosine_to_f32']:.4f} / {v['mean_cosine_to_f32']:.5f} |"
            )
    bench_latency.write_report(args, results)


if __name__ == "__main__":
    main()
