"""tessera.ray on a local Ray cluster: the column Ray Data adds equals a direct encode of
the same rows, for a dense and a ragged (ColBERT) model, from a Parquet dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import GOLDEN
from tessera.ray import TesseraEmbedder

import tessera

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DENSE = GOLDEN / "dense" / "tiny_bge_cls" / "model"
COLBERT = GOLDEN / "multivector" / "tiny_colbert_pylate" / "model"
TEXTS = [
    f"row {i}: a sentence about {w}" for i, w in enumerate("ray data parquet tessera".split() * 6)
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "corpus.parquet"
    pq.write_table(pa.table({"text": TEXTS, "id": list(range(len(TEXTS)))}), path)
    return path


def run(corpus: Path, model: Path, **kwargs: object) -> list[dict[str, object]]:
    dataset = ray.data.read_parquet(str(corpus)).map_batches(
        TesseraEmbedder,
        fn_constructor_kwargs={"model": str(model), **kwargs},
        concurrency=1,
        batch_size=7,
    )
    return sorted(dataset.take_all(), key=lambda row: row["id"])  # type: ignore[arg-type, return-value]


def test_dense_column_equals_a_direct_encode(cluster: None, corpus: Path) -> None:
    rows = run(corpus, DENSE)
    got = np.stack([np.asarray(row["embedding"]) for row in rows])
    np.testing.assert_allclose(got, tessera.TesseraDense(DENSE).encode_batch(TEXTS), atol=1e-6)
    assert [row["text"] for row in rows] == TEXTS


def test_ragged_colbert_column_equals_a_direct_encode(cluster: None, corpus: Path) -> None:
    rows = run(corpus, COLBERT)
    want = tessera.TesseraMultiVector(COLBERT).encode_batch(TEXTS)
    for row, matrix in zip(rows, want):
        np.testing.assert_allclose(np.asarray(row["embedding"]), matrix, atol=1e-6)


def test_batches_of_every_format_keep_their_type() -> None:
    import pandas as pd

    embedder = TesseraEmbedder(str(DENSE), side="query")
    want = tessera.TesseraDense(DENSE).encode_query(TEXTS[:3])
    as_numpy = embedder({"text": np.array(TEXTS[:3], dtype=object)})
    np.testing.assert_allclose(as_numpy["embedding"], want, atol=1e-6)
    frame = embedder(pd.DataFrame({"text": TEXTS[:3]}))
    np.testing.assert_allclose(np.stack(frame["embedding"]), want, atol=1e-6)
    table = embedder(pa.table({"text": TEXTS[:3]}))
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), want, atol=1e-6)
    with pytest.raises(TypeError, match="batches must be"):
        embedder(["not", "a", "batch"])
