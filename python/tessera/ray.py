"""Tessera on Ray Data: a callable class for ``Dataset.map_batches``, one model per actor.

>>> import ray
>>> from tessera.ray import TesseraEmbedder
>>> ds = ray.data.read_parquet("corpus.parquet")
>>> ds = ds.map_batches(
...     TesseraEmbedder,
...     fn_constructor_kwargs={"model": "all-minilm-l6-v2"},
...     concurrency=4,          # actors, each with its own model
...     batch_size=256,
... )

Each batch comes in as NumPy arrays (``batch_format="numpy"``, Ray's default), a pandas
DataFrame or a pyarrow Table, and goes back in the same form with one column added: the
main output of the model's paradigm, row for row:

* dense: ``(rows, dim)`` float32 vectors
* multi-vector (ColBERT) and vision (ColPali): one ``(tokens, dim)`` matrix per row
* sparse (SPLADE): ``<column>_indices`` (int32) and ``<column>_values`` (float32) per row
* time series: the ``(rows, horizon)`` median forecast of each row's series

The model loads once per actor (Ray constructs the class there), from the Hugging Face
cache or a local directory, with any keyword option of ``tessera.Tessera``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tessera

__all__ = ["TesseraEmbedder"]


class TesseraEmbedder:
    """Adds the model's output for ``input_column`` as ``output_column`` to each batch.

    ``side`` picks the query or document side of text models ("query", "document" or
    None for plain encoding); ``encode_options`` go to every encode call (e.g.
    ``batch_size``).
    """

    def __init__(
        self,
        model: str,
        *,
        input_column: str = "text",
        output_column: str = "embedding",
        side: str | None = None,
        encode_options: dict[str, Any] | None = None,
        **model_options: Any,
    ) -> None:
        if side not in (None, "query", "document"):
            raise ValueError(f"side must be 'query', 'document' or None, not {side!r}")
        self.model = tessera.Tessera(model, **model_options)
        self.input_column = input_column
        self.output_column = output_column
        self.side = side
        self.encode_options = dict(encode_options or {})

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, dict):
            outputs = self._outputs(list(batch[self.input_column]))
            return {**batch, **outputs}
        module = type(batch).__module__.split(".")[0]
        if module == "pandas":
            frame = batch.copy()
            for name, column in self._outputs(list(frame[self.input_column])).items():
                frame[name] = list(column) if column.ndim > 1 or column.dtype == object else column
            return frame
        if module == "pyarrow":
            import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

            table = batch
            outputs = self._outputs(table.column(self.input_column).to_pylist())
            for name, column in outputs.items():
                values = [np.asarray(v).tolist() for v in column]
                table = table.append_column(name, pa.array(values))
            return table
        raise TypeError(
            f"batches must be dicts of NumPy arrays, pandas DataFrames or pyarrow Tables, "
            f"not {type(batch).__name__}"
        )

    def _outputs(self, inputs: list[Any]) -> dict[str, np.ndarray]:
        model, name, options = self.model, self.output_column, self.encode_options
        if isinstance(model, tessera.TesseraDense):
            texts = [str(t) for t in inputs]
            if self.side == "query":
                return {name: np.asarray(model.encode_query(texts, **options))}
            if self.side == "document":
                return {name: np.asarray(model.encode_document(texts, **options))}
            return {name: np.asarray(model.encode_batch(texts, **options))}
        if isinstance(model, tessera.TesseraSparse):
            texts = [str(t) for t in inputs]
            vectors = model.encode_batch(texts, **options)
            return {
                f"{name}_indices": _ragged([v.indices for v in vectors]),
                f"{name}_values": _ragged([v.values for v in vectors]),
            }
        if isinstance(model, tessera.TesseraMultiVector):
            texts = [str(t) for t in inputs]
            matrices = model.encode_batch(texts, self.side == "query", **options)
            return {name: _ragged([np.asarray(m) for m in matrices])}
        if isinstance(model, tessera.TesseraVision):
            if self.side == "query":
                matrices = model.encode_queries([str(t) for t in inputs], **options)
                return {name: _ragged([np.asarray(m) for m in matrices])}
            pages = model.encode_documents(inputs, **options)
            return {name: _ragged([np.asarray(p) for p in pages])}
        if isinstance(model, tessera.TesseraTimeSeries):
            series = [np.asarray(s, dtype=np.float64) for s in inputs]
            return {name: np.asarray(model.forecast(series, **options))}
        raise TypeError(f"unsupported model type {type(model).__name__}")


def _ragged(rows: list[np.ndarray]) -> np.ndarray:
    """An object array of per-row arrays (Ray keeps them as variable-shaped tensors)."""
    out = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        out[i] = row
    return out
