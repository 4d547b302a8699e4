"""Rerank passages with late interaction (ColBERT MaxSim), in float and binary form.

python examples/colbert_rerank.py                       # colbert-v2 from the hub or cache
python examples/colbert_rerank.py --model ./my-colbert  # a local directory
"""

from __future__ import annotations

import argparse

from tessera import Tessera, TesseraMultiVector

PASSAGES = [
    "ColBERT encodes every token and scores with MaxSim at query time.",
    "BM25 ranks documents by term frequency and inverse document frequency.",
    "Dense retrievers compress a passage into one vector.",
    "Late interaction keeps token-level detail while staying fast to search.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="colbert-v2")
    parser.add_argument("--query", default="how does late interaction score passages?")
    args = parser.parse_args()

    model = Tessera(args.model)
    if not isinstance(model, TesseraMultiVector):
        raise SystemExit(f"{args.model} is not a multi-vector model")
    query = model.encode_query(args.query)
    documents = model.encode_batch(PASSAGES)
    indices, scores = model.rank(query, documents, top_k=len(PASSAGES))
    print(f"query: {args.query}  ({query.shape[0]} query vectors of {query.shape[1]} dims)")
    for index, score in zip(indices, scores):
        print(f"  {score:7.3f}  {PASSAGES[index]}")

    bits = [model.quantize(d) for d in documents]
    query_bits = model.quantize(query)
    binary = [model.similarity_quantized(query_bits, b) for b in bits]
    ratio = bits[0].compression_ratio()
    print(f"binary MaxSim ({ratio:.0f}x smaller): " + ", ".join(f"{s:.3f}" for s in binary))


if __name__ == "__main__":
    main()
