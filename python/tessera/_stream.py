"""``encode_stream``: results batch by batch from any iterable, at flat memory.

The iterable is read one batch at a time, so a generator over a file of any size is
never materialised; each batch's result is yielded before the next batch is read.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_ARROW_BATCHES = ("RecordBatch", "Table")
_ARROW_ARRAYS = ("Array", "ChunkedArray", "StringArray", "LargeStringArray")


def stream(
    encode: Callable[..., Any],
    items: Iterable[Any],
    batch_size: int,
    column: str | None,
    kwargs: dict[str, Any],
) -> Iterator[Any]:
    """Calls ``encode(batch, **kwargs)`` on consecutive batches of ``items`` and yields each
    result. An exception raised by ``items`` surfaces after the inputs read before it are
    encoded and yielded."""
    if isinstance(items, (str, bytes)):
        raise TypeError("encode_stream takes an iterable of inputs, not a single str")
    iterator = iter(items)  # a TypeError now, not at the first next()
    return _batches(encode, iterator, isinstance(items, io.TextIOBase), batch_size, column, kwargs)


def _batches(
    encode: Callable[..., Any],
    iterator: Iterator[Any],
    lines: bool,
    batch_size: int,
    column: str | None,
    kwargs: dict[str, Any],
) -> Iterator[Any]:
    batch: list[Any] = []
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            break
        except Exception:
            # What was read still counts: encode it, then let the caller see the error.
            if batch:
                yield encode(batch, **kwargs)
            raise
        if _is_arrow(item):
            if batch:
                yield encode(batch, **kwargs)
                batch = []
            texts = _arrow_texts(item, column)
            for start in range(0, len(texts), batch_size):
                yield encode(texts[start : start + batch_size], **kwargs)
            continue
        if lines and isinstance(item, str):
            item = item.rstrip("\r\n")
        batch.append(item)
        if len(batch) == batch_size:
            yield encode(batch, **kwargs)
            batch = []
    if batch:
        yield encode(batch, **kwargs)


def _is_arrow(item: Any) -> bool:
    kind = type(item)
    return kind.__module__.startswith("pyarrow") and (
        kind.__name__ in _ARROW_BATCHES or kind.__name__ in _ARROW_ARRAYS
    )


def _arrow_texts(item: Any, column: str | None) -> list[Any]:
    """The inputs of an Arrow record batch / table (the named column, else its only one)
    or of an Arrow array."""
    if type(item).__name__ in _ARROW_BATCHES:
        names = list(item.schema.names)
        if column is None:
            if len(names) != 1:
                raise ValueError(
                    f"an Arrow batch with columns {names} needs column= to say which to encode"
                )
            column = names[0]
        if column not in names:
            raise KeyError(f"column {column!r} is not in the Arrow batch (it has {names})")
        item = item.column(column)
    values = item.to_pylist()
    if any(v is None for v in values):
        raise ValueError("the Arrow column has nulls; fill or drop them before encoding")
    return list(values)
