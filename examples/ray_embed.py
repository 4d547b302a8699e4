"""Embed a Parquet dataset on Ray: one Tessera model per actor, batches as NumPy arrays.

    python examples/ray_embed.py --model all-minilm-l6-v2 --input corpus.parquet --output out/

Without --input it writes a small Parquet corpus first, so the example runs anywhere.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import ray  # type: ignore[import-not-found, unused-ignore]  # pyright: ignore[reportMissingImports]
from tessera.ray import TesseraEmbedder

CORPUS = [
    "Ray Data streams batches through actors.",
    "Tessera runs embedding models without PyTorch.",
    "Each actor loads its own copy of the model once.",
    "Parquet keeps the text and its vector side by side.",
    "Late interaction scores every token.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--input", type=Path, default=None, help="Parquet with a 'text' column")
    parser.add_argument("--output", type=Path, default=None, help="folder for the result")
    parser.add_argument("--actors", type=int, default=1)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp())
    source = args.input
    if source is None:
        source = workdir / "corpus.parquet"
        pq.write_table(pa.table({"text": CORPUS}), source)
    output = args.output or workdir / "embedded"

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        dataset = ray.data.read_parquet(str(source)).map_batches(
            TesseraEmbedder,
            fn_constructor_kwargs={"model": args.model},
            concurrency=args.actors,
            batch_size=64,
        )
        dataset.write_parquet(str(output))
        rows = dataset.take_all()
    finally:
        ray.shutdown()
    vectors = np.stack([np.asarray(row["embedding"]) for row in rows])
    print(f"embedded {len(rows)} texts into {vectors.shape[1]}-d vectors under {output}")


if __name__ == "__main__":
    main()
