"""Learned sparse retrieval with SPLADE: inspect term weights and score documents.

python examples/sparse_search.py                      # splade-v3 from the hub or cache
python examples/sparse_search.py --model ./my-splade  # a local directory
"""

from __future__ import annotations

import argparse

import numpy as np

from tessera import Tessera, TesseraSparse

DOCUMENTS = [
    "Sparse retrieval expands queries with related vocabulary terms.",
    "The stock market fell sharply on Monday morning.",
    "Inverted indexes make lexical search fast at scale.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="splade-v3")
    parser.add_argument("--query", default="how do sparse retrievers expand terms?")
    args = parser.parse_args()

    model = Tessera(args.model)
    if not isinstance(model, TesseraSparse):
        raise SystemExit(f"{args.model} is not a sparse model")
    query = model.encode(args.query)
    print(f"query: {args.query}")
    print(f"  {len(query)} active terms of {query.vocab_size} ({query.sparsity:.2%} zero)")
    print("  heaviest: " + ", ".join(f"{t} {w:.2f}" for t, w in query.tokens(top_k=8)))
    scores = model.similarity_matrix([query], model.encode_batch(DOCUMENTS))[0]
    for index in np.argsort(-scores):
        print(f"  {scores[index]:8.3f}  {DOCUMENTS[index]}")


if __name__ == "__main__":
    main()
