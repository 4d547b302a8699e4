"""What compressed multi-vectors cost in retrieval quality, measured against exact MaxSim.

A small retrieval set: the first ``--documents`` sentences of the benchmark corpus are the
documents; each query is a handful of words drawn from one document. Every document is
encoded once with ColBERT; the reference ranking is exact MaxSim over the full token
matrices. Then, for each compression:

* token pooling (``pool_factor`` 2, 3, 4; PyLate's hierarchical pooling): MaxSim over the
  pooled matrices;
* MUVERA (fastembed's default parameters): the dot product of fixed-size encodings, alone
  and as a first stage whose top 100 are re-ranked with exact MaxSim;

it reports recall@10 against exact MaxSim's top 10, how often the query's source
document comes first (exact MaxSim's own rate is the ceiling), the index size relative to
the full token matrices, and the time spent compressing.

Token vectors come from a trained encoder: the real all-MiniLM-L6-v2's last hidden states
(transformers, every token L2-normalised, 384-d) stand in for a ColBERT model, which cannot
be downloaded here. ``--model tiny-colbert`` uses the golden tiny ColBERT through Tessera
instead (random weights: it measures fidelity to MaxSim on a meaningless space). Runs with
the bench environment (see ``benches/README.md``)::

    .venv-bench/bin/python benches/python/bench_compression.py [--documents 2000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

import tessera

TINY_COLBERT = common.ROOT / "tests/fixtures/golden/multivector/tiny_colbert_pylate/model"
MINILM = common.ROOT / "tests/fixtures/real/dense/minilm_real/model"


def minilm_tokens(texts: list[str]) -> list[np.ndarray]:
    """Unit-length last hidden states of every token (padding dropped)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    encoder = AutoModel.from_pretrained(MINILM).eval()
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                texts[start : start + 64],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = encoder(**batch).last_hidden_state
            hidden = torch.nn.functional.normalize(hidden, dim=-1).numpy()
            for row, mask in zip(hidden, batch["attention_mask"].numpy()):
                out.append(np.ascontiguousarray(row[mask.astype(bool)], dtype=np.float32))
    return out


def maxsim_scores(query: np.ndarray, documents: list[np.ndarray]) -> np.ndarray:
    flat = np.concatenate(documents)
    owner = np.repeat(np.arange(len(documents)), [d.shape[0] for d in documents])
    best = np.full((len(documents), query.shape[0]), -np.inf, dtype=np.float32)
    np.maximum.at(best, owner, flat @ query.T)
    return best.sum(axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return len(set(found.tolist()) & set(truth.tolist())) / len(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=None, help="default 2,000")
    parser.add_argument("--queries", type=int, default=None, help="default 200")
    parser.add_argument("--quick", action="store_true", help="500 documents, 50 queries")
    parser.add_argument("--model", choices=["minilm", "tiny-colbert"], default="minilm")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.documents = args.documents or (500 if args.quick else 2000)
    args.queries = args.queries or (50 if args.quick else 200)

    texts = common.sentences(args.documents)
    rng = random.Random(7)
    sources = rng.sample(range(len(texts)), args.queries)
    queries = []
    for source in sources:
        words = texts[source].split()
        queries.append(" ".join(rng.sample(words, min(5, len(words)))))

    if args.model == "minilm":
        documents, query_matrices = minilm_tokens(texts), minilm_tokens(queries)
    else:
        colbert = tessera.TesseraMultiVector(TINY_COLBERT)
        documents, query_matrices = colbert.encode_document(texts), colbert.encode_query(queries)
    dim = documents[0].shape[1]
    full_rows = sum(d.shape[0] for d in documents)
    exact = [maxsim_scores(q, documents) for q in query_matrices]
    truth = [np.argsort(-s, kind="stable")[:10] for s in exact]
    exact_first = np.mean([np.argmax(s) == src for s, src in zip(exact, sources)])

    rows: list[dict[str, Any]] = []
    for factor in (2, 3, 4):
        start = time.perf_counter()
        pooled = [tessera.pool_embeddings(d, factor) for d in documents]
        seconds = time.perf_counter() - start
        scores = [maxsim_scores(q, pooled) for q in query_matrices]
        rows.append(
            {
                "method": f"pooling, pool_factor={factor}",
                "recall@10": np.mean(
                    [recall(np.argsort(-s, kind="stable")[:10], t) for s, t in zip(scores, truth)]
                ),
                "source first": np.mean([np.argmax(s) == src for s, src in zip(scores, sources)]),
                "index size": sum(p.shape[0] for p in pooled) / full_rows,
                "ms / document": 1000 * seconds / len(documents),
            }
        )

    muvera = tessera.Muvera(dim)
    start = time.perf_counter()
    encoded = muvera.encode_document(documents)
    seconds = time.perf_counter() - start
    fde_scores = muvera.similarity(muvera.encode_query(query_matrices), encoded)
    reranked = []
    for q, s in zip(query_matrices, fde_scores):
        candidates = np.argsort(-s, kind="stable")[:100]
        exact_candidates = maxsim_scores(q, [documents[i] for i in candidates])
        reranked.append(candidates[np.argsort(-exact_candidates, kind="stable")])
    size = muvera.embedding_size / (full_rows / len(documents) * dim)
    rows.append(
        {
            "method": "MUVERA (k_sim 5, dim_proj 16, r_reps 20)",
            "recall@10": np.mean(
                [recall(np.argsort(-s, kind="stable")[:10], t) for s, t in zip(fde_scores, truth)]
            ),
            "source first": np.mean([np.argmax(s) == src for s, src in zip(fde_scores, sources)]),
            "index size": size,
            "ms / document": 1000 * seconds / len(documents),
        }
    )
    rows.append(
        {
            "method": "MUVERA top 100, re-ranked by MaxSim",
            "recall@10": np.mean([recall(r[:10], t) for r, t in zip(reranked, truth)]),
            "source first": np.mean([r[0] == src for r, src in zip(reranked, sources)]),
            "index size": size,
            "ms / document": 1000 * seconds / len(documents),
        }
    )

    print(
        f"{len(documents)} documents ({full_rows / len(documents):.1f} token rows each, "
        f"dim {dim}, {args.model}), {len(queries)} queries; exact MaxSim puts the source "
        f"document first for {exact_first:.1%} of them"
    )
    print("| method | recall@10 vs exact | source first | index size | ms / document |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['method']} | {row['recall@10']:.3f} | {row['source first']:.1%} | "
            f"{row['index size']:.1%} | {row['ms / document']:.2f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"exact source first": exact_first, "rows": rows}, indent=2, default=float)
        )


if __name__ == "__main__":
    main()
