"""Latency and throughput against ONNX Runtime's fused graph, the fastest CPU peer.

For all-MiniLM-L6-v2 (real) and a BERT-base shape (random weights, the MiniLM vocabulary),
each model is exported the way users do it: ``torch.onnx.export`` of the transformer, then
``onnxruntime.transformers.optimizer.optimize_model`` (attention, LayerNorm and GELU
fusion), run by an ``InferenceSession`` with the same thread count, tokenized by the
``tokenizers`` library with per-batch padding, mean-pooled and normalised in NumPy (what
fastembed and sentence-transformers' ONNX backend do). Tessera runs the same texts.

Reported, at 1 and 2 threads (each thread count in its own process, since thread pools
are sized at start):

* one text per call: p50 and p99 latency over the first ``--texts`` corpus sentences;
* batch 32: sentences per second over the first ``--sentences`` corpus sentences, sorted
  by length first (as sentence-transformers batches, which keeps ORT's padding small);
* the cosine between the two sides' embeddings (they must agree).

Run with the bench environment (see ``benches/README.md``)::

    .venv-bench/bin/python benches/python/bench_latency.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import common
import numpy as np

MINILM = common.ROOT / "tests/fixtures/real/dense/minilm_real/model"
CACHE = common.ROOT / ".cache/bench-models"
BERT_BASE = CACHE / "bert_base_random_dense"


def build_bert_base(out: Path) -> Path:
    """A BERT-base-sized random sentence-transformers model with MiniLM's tokenizer."""
    if (out / "model.safetensors").exists():
        return out
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512)
    BertModel(config, add_pooling_layer=False).save_pretrained(out, safe_serialization=True)
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
    ):
        if (MINILM / name).exists():
            shutil.copy(MINILM / name, out / name)
    pooling = out / "1_Pooling"
    pooling.mkdir(exist_ok=True)
    shutil.copy(MINILM / "1_Pooling" / "config.json", pooling / "config.json")
    config = (pooling / "config.json").read_text()
    (pooling / "config.json").write_text(config.replace(": 384", ": 768"))
    return out


def export_onnx(model_dir: Path) -> Path:
    """``torch.onnx.export`` of the transformer, then ORT's transformer optimizer (into
    ``.cache/bench-models/onnx/<model>``, never into the model's own directory)."""
    out = CACHE / "onnx" / model_dir.parent.name / model_dir.name
    optimized = out / "model.optimized.onnx"
    if optimized.exists():
        return optimized
    out.mkdir(parents=True, exist_ok=True)
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel

    # Eager attention: the pattern ORT's optimizer recognises and fuses (it leaves SDPA alone).
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()

    class Transformer(torch.nn.Module):
        """Keyword arguments in, last hidden state out (what the graph exports)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).last_hidden_state

    raw = out / "model.onnx"
    ids = torch.ones((1, 8), dtype=torch.int64)
    with torch.inference_mode():
        torch.onnx.export(
            Transformer(),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            raw,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
            },
            opset_version=17,
            dynamo=False,
        )
    config = model.config
    fused = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    )
    fused.save_model_to_file(str(optimized))
    return optimized


class OrtEncoder:
    def __init__(self, model_dir: Path, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(export_onnx(model_dir)), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(256)
        self.tokenizer.enable_padding()

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (hidden,) = self.session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )
        summed = (hidden * mask[..., None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.array(seconds) * 1e3, q))


def run_one(model_dir: Path, threads: int, texts: int, sentences: int) -> dict[str, Any]:
    """One thread count, in this process (called in a fresh child per thread count)."""
    common.set_threads(threads)
    import tessera

    corpus = common.sentences(max(texts, sentences))
    ours = tessera.TesseraDense(model_dir, max_length=256)
    theirs = OrtEncoder(model_dir, threads)
    singles = corpus[:texts]
    for text in singles[:10]:  # warm both
        ours.encode(text)
        theirs.encode([text])
    times: dict[str, list[float]] = {"tessera": [], "ort": []}
    # Interleaved in blocks: ORT's threads spin for a while after each run, which would
    # take the cores from a call made right after it.
    block = 25
    for start in range(0, len(singles), block):
        for name, encode in (("tessera", ours.encode), ("ort", lambda t: theirs.encode([t]))):
            for text in singles[start : start + block]:
                begin = time.perf_counter()
                encode(text)
                times[name].append(time.perf_counter() - begin)
    # Batches of texts of similar length, as sentence-transformers forms them (and so
    # padding costs ORT little); Tessera packs without padding in any order.
    batch = sorted(corpus[:sentences], key=len)

    def batched(encode: Any) -> float:
        start = time.perf_counter()
        for i in range(0, len(batch), 32):
            encode(batch[i : i + 32])
        return len(batch) / (time.perf_counter() - start)

    rates: dict[str, list[float]] = {"tessera": [], "ort": []}
    for _ in range(3):
        rates["tessera"].append(batched(ours.encode))
        rates["ort"].append(batched(theirs.encode))
    a, b = ours.encode(batch[:64]), theirs.encode(batch[:64])
    return {
        "threads": threads,
        "one_text_ms": {
            name: {"p50": percentile_ms(t, 50), "p99": percentile_ms(t, 99)}
            for name, t in times.items()
        },
        "batch32_per_s": {name: float(np.median(r)) for name, r in rates.items()},
        "min_cosine": float((a * b).sum(axis=1).min()),
    }


def run_models(
    script: str,
    description: str,
    run_one: Callable[[Path, int, int, int], dict[str, Any]],
    texts_default: int,
    prepare: Callable[[Path], Any],
) -> tuple[argparse.Namespace, list[dict[str, Any]]] | None:
    """The shared driver of the side-by-side ORT benchmarks: parses the arguments, and
    either runs ``run_one`` as a child (printing its JSON, returning None) or prepares
    MiniLM and the BERT-base shape and runs a child per model and thread count."""
    parser = common.base_parser(description)
    parser.add_argument(
        "--texts", type=int, default=None, help=f"one-text calls (default {texts_default})"
    )
    parser.add_argument("--sentences", type=int, default=None, help="batch corpus (default 512)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    texts = args.texts or (min(100, texts_default) if args.quick else texts_default)
    sentences = args.sentences or (128 if args.quick else 512)
    if args.child:
        model, threads = args.child.split(":")
        print(json.dumps(run_one(Path(model), int(threads), texts, sentences)))
        return None
    models = {"all-MiniLM-L6-v2": MINILM, "BERT-base shape": build_bert_base(BERT_BASE)}
    for model_dir in models.values():
        prepare(model_dir)
    return args, run_children(script, models, texts, sentences)


def write_report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    if args.json:
        report = {"environment": common.environment(), "results": results}
        args.json.write_text(json.dumps(report, indent=2))


def main() -> None:
    ran = run_models(__file__, __doc__.split("\n")[0], run_one, 300, export_onnx)
    if ran is None:
        return
    args, results = ran
    print(
        "| model | threads | one text p50 / p99, Tessera | ORT | p50 ORT / Tessera "
        "| batch 32 /s, Tessera | ORT | ratio | min cos |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        one, rate = r["one_text_ms"], r["batch32_per_s"]
        print(
            f"| {r['model']} | {r['threads']} "
            f"| {one['tessera']['p50']:.2f} / {one['tessera']['p99']:.2f} ms "
            f"| {one['ort']['p50']:.2f} / {one['ort']['p99']:.2f} ms "
            f"| {one['ort']['p50'] / one['tessera']['p50']:.2f}x "
            f"| {rate['tessera']:.0f} | {rate['ort']:.0f} | {rate['tessera'] / rate['ort']:.2f}x "
            f"| {r['min_cosine']:.5f} |"
        )
    write_report(args, results)


def run_children(
    script: str, models: dict[str, Path], texts: int, sentences: int
) -> list[dict[str, Any]]:
    """Runs ``script --child MODEL:THREADS`` for every model at 1 and 2 threads, each in
    a fresh process (thread pools are sized at start), and collects their JSON lines."""
    results = []
    for name, model_dir in models.items():
        for threads in (1, 2):
            child = subprocess.run(
                [
                    sys.executable,
                    script,
                    "--child",
                    f"{model_dir}:{threads}",
                    "--texts",
                    str(texts),
                    "--sentences",
                    str(sentences),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "RAYON_NUM_THREADS": str(threads)},
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            result["model"] = name
            results.append(result)
    return results


if __name__ == "__main__":
    main()
