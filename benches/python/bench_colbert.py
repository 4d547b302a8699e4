"""ColBERT throughput: document encoding and MaxSim scoring.

* Encoding: a BERT-base-sized random ColBERT in the colbert-ai layout (``config.json`` +
  ``model.safetensors`` with ``bert.*`` and ``linear.weight`` [128, 768] +
  ``artifact.metadata``; tokenizer of ``tests/fixtures/golden/multivector/
  tiny_colbert_stanford``), generated into ``.cache/bench-models/colbert_bert_base_random``
  on first use. Documents of the fixed corpus at batch 32, Tessera against PyLate when it is
  installed, else a plain PyTorch reference (transformers ``BertModel`` + the linear layer,
  colbert-ai's document tokenization, punctuation skip-list and normalisation).
* Scoring: ``TesseraMultiVector.similarity_matrix`` for one query (32 x 128) against 1,000
  documents (8-180 rows each, L2-normalised random rows), against NumPy MaxSim on the same
  arrays: ``einsum`` over the documents pre-padded into one array (padding done outside the
  timing, which favours NumPy) and a per-document loop.

Run with the bench environment (see ``benches/README.md``)::

    .venv-bench/bin/python benches/python/bench_colbert.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import shutil
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np

TOKENIZER_DIR = common.ROOT / "tests/fixtures/golden/multivector/tiny_colbert_stanford/model"
CACHE = common.ROOT / ".cache/bench-models"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
DIM = 128
QUERY_MAXLEN = 32
DOC_MAXLEN = 180


def build_random_colbert(out: Path, seed: int = 0) -> Path:
    """Writes a BERT-base-sized random ColBERT (colbert-ai HF_ColBERT layout) to ``out``."""
    if (out / "bench_model.json").exists():
        return out
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

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
    )
    bert = BertModel(config).eval()
    linear = torch.nn.Linear(768, DIM, bias=False)
    tensors = {f"bert.{k}": v.detach().contiguous() for k, v in bert.state_dict().items()}
    tensors["linear.weight"] = linear.weight.detach().contiguous()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})

    cfg = json.loads((TOKENIZER_DIR / "config.json").read_text())
    cfg.update(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        initializer_range=0.02,
    )
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    meta = json.loads((TOKENIZER_DIR / "artifact.metadata").read_text())
    meta.update(
        dim=DIM, query_maxlen=QUERY_MAXLEN, doc_maxlen=DOC_MAXLEN, name="bench-bert-base-random"
    )
    (out / "artifact.metadata").write_text(json.dumps(meta, indent=4))
    for name in TOKENIZER_FILES:
        shutil.copy(TOKENIZER_DIR / name, out / name)
    (out / "bench_model.json").write_text(json.dumps({"seed": seed}))
    return out


class TorchColbert:
    """colbert-ai's document encoder re-stated with transformers: BertModel + linear."""

    def __init__(self, path: Path) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoTokenizer, BertConfig, BertModel

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        weights = load_file(str(path / "model.safetensors"))
        self.bert = BertModel(BertConfig.from_pretrained(str(path)), add_pooling_layer=False)
        self.bert.load_state_dict(
            {k[5:]: v for k, v in weights.items() if k.startswith("bert.") and "pooler" not in k}
        )
        self.bert.eval()
        self.linear = weights["linear.weight"]
        self.marker = self.tokenizer.convert_tokens_to_ids("[unused1]")
        self.skip = {
            self.tokenizer.encode(s, add_special_tokens=False)[0] for s in string.punctuation
        }

    def encode(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        torch = self.torch
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                # colbert-ai DocTokenizer: ". " + text, then the "." becomes the marker.
                enc = self.tokenizer(
                    [". " + t for t in texts[start : start + batch_size]],
                    padding="longest",
                    truncation="longest_first",
                    max_length=DOC_MAXLEN,
                    return_tensors="pt",
                )
                ids = enc["input_ids"]
                ids[:, 1] = self.marker
                hidden = self.bert(input_ids=ids, attention_mask=enc["attention_mask"])[0]
                emb = torch.nn.functional.normalize(hidden @ self.linear.T, p=2, dim=2)
                keep = enc["attention_mask"].bool()
                for tok in self.skip:
                    keep &= ids != tok
                out.extend(e[k].numpy() for e, k in zip(emb, keep))
        return out


def make_reference(path: Path, choice: str) -> tuple[str, Callable[[list[str], int], Any]]:
    """PyLate when available (or asked for), else the PyTorch re-statement."""
    if choice in ("auto", "pylate"):
        try:
            from pylate import models

            model = models.ColBERT(model_name_or_path=str(path), device="cpu")
            model.eval()

            def run_pylate(texts: list[str], batch: int) -> Any:
                return model.encode(
                    texts, is_query=False, batch_size=batch, show_progress_bar=False
                )

            return "pylate", run_pylate
        except ImportError:
            if choice == "pylate":
                raise
    ref = TorchColbert(path)
    return "torch BertModel+linear", ref.encode


def padded(docs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Documents zero-padded into (n, max_rows, dim), and the padding mask (True = real)."""
    rows = max(d.shape[0] for d in docs)
    out = np.zeros((len(docs), rows, docs[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(docs), rows), dtype=bool)
    for i, d in enumerate(docs):
        out[i, : d.shape[0]] = d
        mask[i, : d.shape[0]] = True
    return out, mask


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reference", choices=("auto", "pylate", "torch"), default="auto")
    parser.add_argument("--documents", type=int, default=None, help="documents to encode")
    parser.add_argument("--score-documents", type=int, default=1000)
    args = parser.parse_args()
    common.set_threads(args.threads)

    import torch

    import tessera

    torch.set_num_threads(args.threads)
    repeats = common.repeats_for(args)
    batch = args.batch_size
    path = build_random_colbert(CACHE / "colbert_bert_base_random")
    count = args.documents or (64 if args.quick else 256)
    texts = common.sentences(count)

    tess = tessera.TesseraMultiVector(str(path), device="cpu")
    ref_name, ref_encode = make_reference(path, args.reference)
    a = tess.encode_batch(texts[:16], is_query=False, batch_size=batch)
    with torch.inference_mode():
        b = [np.asarray(x) for x in ref_encode(texts[:16], batch)]
    rows_equal = [x.shape for x in a] == [x.shape for x in b]
    check: dict[str, Any] = {"rows_equal": rows_equal}
    if rows_equal:
        check["max_abs_diff"] = float(max(np.max(np.abs(x - y)) for x, y in zip(a, b)))
    else:
        check["rows"] = [[x.shape[0] for x in a], [x.shape[0] for x in b]]
    print(f"agreement on 16 documents ({ref_name}): {check}", file=sys.stderr)

    def run_tessera() -> object:
        return tess.encode_batch(texts, is_query=False, batch_size=batch)

    def run_ref() -> object:
        with torch.inference_mode():
            return ref_encode(texts, batch)

    results = [
        common.measure(
            f"colbert bert-base encode batch {batch}",
            "documents",
            count,
            run_tessera,
            run_ref,
            ref_name,
            repeats,
            notes={"model": str(path), "agreement": check},
        )
    ]

    # MaxSim: one query against many documents, on the same float32 arrays.
    rng = np.random.default_rng(0)

    def unit_rows(n: int) -> np.ndarray:
        x = rng.standard_normal((n, DIM)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    n_docs = args.score_documents
    query = unit_rows(QUERY_MAXLEN)
    docs = [unit_rows(int(r)) for r in rng.integers(8, DOC_MAXLEN + 1, size=n_docs)]
    stack, mask = padded(docs)
    neg_inf = np.float32(-np.inf)

    def maxsim_tessera() -> np.ndarray:
        return np.asarray(tess.similarity_matrix([query], docs), dtype=np.float32)

    def maxsim_einsum() -> np.ndarray:
        sims = np.einsum("qh,nlh->nql", query, stack)
        sims = np.where(mask[:, None, :], sims, neg_inf)
        return np.asarray(sims.max(axis=2).sum(axis=1)[None, :], dtype=np.float32)

    def maxsim_loop() -> np.ndarray:
        scores = [float((query @ d.T).max(axis=1).sum()) for d in docs]
        return np.array([scores], dtype=np.float32)

    score_check = float(np.max(np.abs(maxsim_tessera() - maxsim_einsum())))
    print(f"MaxSim agreement (tessera vs einsum): max abs diff {score_check:.2e}", file=sys.stderr)
    score_repeats = repeats * 4
    baselines = (("numpy einsum (pre-padded)", maxsim_einsum), ("numpy loop", maxsim_loop))
    for ref_label, fn in baselines:
        results.append(
            common.measure(
                f"maxsim 1 x {n_docs} docs",
                "documents",
                n_docs,
                maxsim_tessera,
                fn,
                ref_label,
                score_repeats,
                warmup=2,
                notes={"max_abs_diff": score_check, "query_rows": QUERY_MAXLEN},
            )
        )

    common.print_table("ColBERT (documents/s)", results)
    common.write_json(args.json, "colbert", results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
