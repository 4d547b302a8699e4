"""Semantic search over a small corpus with a dense embedding model.

python examples/semantic_search.py                       # registry id (hub or cache)
python examples/semantic_search.py --model ./my-minilm   # a local directory
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tessera import Tessera, TesseraDense

CORPUS = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "A sourdough starter is a culture of wild yeast and lactic acid bacteria.",
    "The Rust borrow checker enforces ownership rules at compile time.",
    "Jupiter is the largest planet in the solar system.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "The French Revolution began in 1789 with the storming of the Bastille.",
    "Neural networks learn by adjusting weights to reduce a loss function.",
    "Marathon runners rely on glycogen stores and steady pacing.",
    "Python's list comprehensions build lists from iterables in one expression.",
    "The Great Barrier Reef is the world's largest coral reef system.",
    "Late interaction models like ColBERT compare every query token with every document token.",
]

QUERIES = [
    "How do plants make food from sunlight?",
    "famous landmark in Paris",
    "baking bread with natural yeast",
    "memory safety in systems programming",
    "how do retrieval models score passages?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--model", default="all-minilm-l6-v2", help="registry id, repo id or directory"
    )
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()

    model = Tessera(args.model)
    if not isinstance(model, TesseraDense):
        raise SystemExit(f"{args.model} is not a dense embedding model")
    print(f"model: {model!r}")

    start = time.perf_counter()
    documents = model.encode_batch(CORPUS)
    elapsed = time.perf_counter() - start
    print(f"encoded {len(CORPUS)} documents into {documents.shape} in {elapsed * 1000:.1f} ms\n")

    queries = model.encode_batch(QUERIES)
    scores = queries @ documents.T  # unit vectors: dot product = cosine similarity
    for query, row in zip(QUERIES, scores):
        print(f"query: {query}")
        for rank, index in enumerate(np.argsort(-row)[: args.top_k], start=1):
            print(f"  {rank}. {row[index]:.3f}  {CORPUS[index]}")
        print()


if __name__ == "__main__":
    main()
