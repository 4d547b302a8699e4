"""Encoder families at their real base shapes: Tessera against sentence-transformers.

One random-weight model per family, laid out exactly as the real checkpoint (hub
``config.json``, safetensors key names, sentence-transformers module files), with the
tokenizer of the family's golden tiny case (``tests/fixtures/golden/dense``):

* ``xlmr``: XLM-RoBERTa base, 12 x 768, 250,002-row embedding table (CLS + Normalize)
* ``nomic``: NomicBERT, 12 x 768, rotary, SwiGLU (nomic-embed-text-v1.5's shape)
* ``gte``: GTE "new" base, 12 x 768, NTK rotary, gated GELU
* ``modernbert``: ModernBERT-base, 22 x 768, global / local attention
* ``qwen3``: Qwen3-Embedding-0.6B, 28 x 1024, 16 / 8 heads of 128, last-token pooling
* ``gemma``: EmbeddingGemma-300m, 24 x 768, 3 / 1 heads of 256, two Dense modules

Each family is measured at 1 and 2 threads (one child process per thread count, since
Rayon's pool is sized once), at batch 32 and one text per call, interleaved with
sentence-transformers on PyTorch over the same corpus. A third child per family reports
Tessera's peak RSS against the size of the weights. The XLM-R, ModernBERT, Qwen3 and
Gemma tokenizers are the golden cases' small trained ones, so texts are longer in tokens
than with the real vocabularies: both sides see the same ids.

    .venv-bench/bin/python benches/python/bench_families.py [--quick] [--families xlmr,gte]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import common
import numpy as np

GOLDEN = common.ROOT / "tests/fixtures/golden/dense"
CACHE = common.ROOT / ".cache/bench-models"
FAMILIES = ("xlmr", "nomic", "gte", "modernbert", "qwen3", "gemma")
TINY = {
    "xlmr": "tiny_xlmr_cls",
    "nomic": "tiny_nomic_mean",
    "gte": "tiny_gte_cls",
    "modernbert": "tiny_modernbert_mean",
    "qwen3": "tiny_qwen3_last",
    "gemma": "tiny_embeddinggemma",
}
MAX_SEQ_LENGTH = 256


def _write_st_files(tiny: Path, out: Path) -> None:
    """Tokenizer and sentence-transformers files of the tiny case, with a realistic length."""
    for item in tiny.iterdir():
        if item.name in ("config.json", "model.safetensors") or item.name.endswith("_Dense"):
            continue
        if item.is_dir():
            shutil.copytree(item, out / item.name)
        else:
            shutil.copy(item, out / item.name)
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    )


def _save(tensors: dict[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, path)


def _random_hub_weights(family: str, cfg: dict[str, Any], rng: np.random.Generator) -> dict:
    """Hub-layout weights of the remote-code families (NomicBERT, GTE)."""
    w: dict[str, np.ndarray] = {}

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    if family == "nomic":
        h, i, layers = cfg["n_embd"], cfg["n_inner"], cfg["n_layer"]
        w["embeddings.word_embeddings.weight"] = normal(cfg["vocab_size"], h)
        w["embeddings.token_type_embeddings.weight"] = normal(2, h)
        w["emb_ln.weight"], w["emb_ln.bias"] = np.ones(h), np.zeros(h)
        for n in range(layers):
            p = f"encoder.layers.{n}."
            w[p + "attn.Wqkv.weight"] = normal(3 * h, h)
            w[p + "attn.out_proj.weight"] = normal(h, h)
            w[p + "mlp.fc11.weight"] = normal(i, h)
            w[p + "mlp.fc12.weight"] = normal(i, h)
            w[p + "mlp.fc2.weight"] = normal(h, i)
            for norm in ("norm1", "norm2"):
                w[p + norm + ".weight"], w[p + norm + ".bias"] = np.ones(h), np.zeros(h)
    else:
        h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
        w["embeddings.word_embeddings.weight"] = normal(cfg["vocab_size"], h)
        w["embeddings.token_type_embeddings.weight"] = normal(2, h)
        w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"] = np.ones(h), np.zeros(h)
        for n in range(layers):
            p = f"encoder.layer.{n}."
            w[p + "attention.qkv_proj.weight"] = normal(3 * h, h)
            w[p + "attention.qkv_proj.bias"] = np.zeros(3 * h)
            w[p + "attention.o_proj.weight"] = normal(h, h)
            w[p + "attention.o_proj.bias"] = np.zeros(h)
            w[p + "mlp.up_gate_proj.weight"] = normal(2 * i, h)
            w[p + "mlp.down_proj.weight"] = normal(h, i)
            w[p + "mlp.down_proj.bias"] = np.zeros(h)
            for norm in ("attn_ln", "mlp_ln"):
                w[p + norm + ".weight"], w[p + norm + ".bias"] = np.ones(h), np.zeros(h)
    return w


def build(family: str) -> Path:
    """The family's random real-shape model directory (generated once)."""
    out = CACHE / f"family_{family}"
    if (out / "model.safetensors").exists():
        return out
    print(f"==> generating {out}", file=sys.stderr, flush=True)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tiny = GOLDEN / TINY[family] / "model"
    cfg = json.loads((tiny / "config.json").read_text())
    rng = np.random.default_rng(0)
    if family in ("nomic", "gte"):
        if family == "nomic":
            cfg.update(n_embd=768, n_head=12, n_layer=12, n_inner=3072, n_positions=8192)
        else:
            cfg.update(
                hidden_size=768,
                num_attention_heads=12,
                num_hidden_layers=12,
                intermediate_size=3072,
                max_position_embeddings=8192,
            )
        _save(_random_hub_weights(family, cfg, rng), out / "model.safetensors")
        (out / "config.json").write_text(json.dumps(cfg, indent=2))
    else:
        import torch
        import transformers

        shapes: dict[str, dict[str, Any]] = {
            "xlmr": dict(
                hidden_size=768,
                num_hidden_layers=12,
                num_attention_heads=12,
                intermediate_size=3072,
                vocab_size=250002,
                max_position_embeddings=514,
            ),
            "modernbert": dict(
                hidden_size=768,
                num_hidden_layers=22,
                num_attention_heads=12,
                intermediate_size=1152,
                vocab_size=50368,
                local_attention=128,
                max_position_embeddings=8192,
            ),
            "qwen3": dict(
                hidden_size=1024,
                num_hidden_layers=28,
                num_attention_heads=16,
                num_key_value_heads=8,
                head_dim=128,
                intermediate_size=3072,
                vocab_size=151669,
                max_position_embeddings=32768,
            ),
            "gemma": dict(
                hidden_size=768,
                num_hidden_layers=24,
                num_attention_heads=3,
                num_key_value_heads=1,
                head_dim=256,
                intermediate_size=1152,
                vocab_size=262144,
                sliding_window=512,
                query_pre_attn_scalar=256,
                max_position_embeddings=2048,
                layer_types=[
                    "full_attention" if (n + 1) % 6 == 0 else "sliding_attention" for n in range(24)
                ],
            ),
        }
        cfg.update(shapes[family])
        cfg.pop("transformers_version", None)
        config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config).eval()
        model.save_pretrained(out, safe_serialization=True)
        if family == "gemma":
            for index, (size_in, size_out) in ((2, (768, 3072)), (3, (3072, 768))):
                dense = out / f"{index}_Dense"
                dense.mkdir()
                weight = rng.normal(0.0, 0.02, size=(size_out, size_in))
                _save({"linear.weight": weight}, dense / "model.safetensors")
                (dense / "config.json").write_text(
                    json.dumps(
                        {
                            "in_features": size_in,
                            "out_features": size_out,
                            "bias": False,
                            "activation_function": "torch.nn.modules.linear.Identity",
                        }
                    )
                )
    _write_st_files(tiny, out)
    return out


def reference_model(family: str, path: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    if family in ("nomic", "gte"):
        sys.path.insert(0, str(common.ROOT / "tests/fixtures/golden/text_tools"))
        from hubcompat import patched_st

        with patched_st():
            return SentenceTransformer(str(path), device="cpu")
    return SentenceTransformer(str(path), device="cpu")


def measure_family(family: str, args: Any) -> list[common.Result]:
    import torch

    import tessera

    path = build(family)
    batch_texts = common.sentences(32 if args.quick else 64)
    single_texts = common.sentences(8 if args.quick else 16)
    tess = tessera.TesseraDense(str(path), device="cpu")
    ref = reference_model(family, path)
    ref.eval()
    with torch.inference_mode():
        got = tess.encode_batch(batch_texts[:8])
        want = ref.encode(batch_texts[:8], batch_size=32)
    agreement = float(np.abs(got - want).max())
    print(f"{family}: max |tessera - reference| on 8 texts = {agreement:.2e}", file=sys.stderr)
    repeats = common.repeats_for(args)

    def tess_batch() -> object:
        return tess.encode_batch(batch_texts, batch_size=32)

    def ref_batch() -> object:
        with torch.inference_mode():
            return ref.encode(batch_texts, batch_size=32)

    def tess_single() -> object:
        return [tess.encode(t) for t in single_texts]

    def ref_single() -> object:
        with torch.inference_mode():
            return [ref.encode(t) for t in single_texts]

    notes = {"agreement_max_abs": agreement, "threads": args.threads}
    return [
        common.measure(
            f"{family} batch 32, {args.threads} thr",
            "texts",
            len(batch_texts),
            tess_batch,
            ref_batch,
            "sentence-transformers",
            repeats,
            notes=notes,
        ),
        common.measure(
            f"{family} one text, {args.threads} thr",
            "texts",
            len(single_texts),
            tess_single,
            ref_single,
            "sentence-transformers",
            repeats,
            notes=notes,
        ),
    ]


def rss_report(family: str) -> dict[str, float]:
    """Peak RSS of loading and encoding with Tessera alone, against the weights' size."""
    import tessera

    path = build(family)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = tessera.TesseraDense(str(path), device="cpu")
    model.encode_batch(common.sentences(64), batch_size=32)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    weights = sum(p.stat().st_size for p in path.rglob("*.safetensors")) / 2**20
    return {
        "weights_mb": weights,
        "peak_rss_mb": peak - base,
        "over_weights_mb": peak - base - weights,
    }


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--thread-counts", default="1,2")
    parser.add_argument("--child", default=None, help=argparse_hidden())
    parser.add_argument("--rss", default=None, help=argparse_hidden())
    args = parser.parse_args()
    if args.rss:
        print(json.dumps(rss_report(args.rss)))
        return 0
    if args.child:
        common.set_threads(args.threads)
        results = measure_family(args.child, args)
        print(json.dumps([r.to_dict() for r in results]))
        return 0
    families = [f for f in args.families.split(",") if f]
    for family in families:
        build(family)
    rows: list[dict[str, Any]] = []
    rss: dict[str, Any] = {}
    for family in families:
        for threads in (int(t) for t in args.thread_counts.split(",")):
            cmd = [sys.executable, __file__, "--child", family, "--threads", str(threads)]
            if args.quick:
                cmd.append("--quick")
            if args.repeats:
                cmd += ["--repeats", str(args.repeats)]
            env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            sys.stderr.write(out.stderr)
            rows.extend(json.loads(out.stdout.strip().splitlines()[-1]))
        out = subprocess.run(
            [sys.executable, __file__, "--rss", family], check=True, capture_output=True, text=True
        )
        rss[family] = json.loads(out.stdout.strip().splitlines()[-1])
    print()
    print("family / case                      tessera/s  st/s      tessera/st  agreement")
    for row in rows:
        print(
            f"{row['case']:<34} {row['tessera']['throughput']:>9.2f}  "
            f"{row['reference']['throughput']:>8.2f}  {row['ratio']:>9.2f}x  "
            f"{row['notes']['agreement_max_abs']:.1e}"
        )
    print()
    print("family      weights MB  peak RSS MB  over weights MB")
    for family, r in rss.items():
        print(
            f"{family:<11} {r['weights_mb']:>10.0f}  {r['peak_rss_mb']:>11.0f}  "
            f"{r['over_weights_mb']:>15.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"results": rows, "rss": rss}, indent=2))
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
