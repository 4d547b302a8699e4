"""``await model.aencode(...)`` and the other async calls.

Each call runs on a bounded thread pool, so the event loop keeps serving while the
engine (which releases the GIL) works. Calls of the same method with the same options
that arrive while another is running, or within ``WINDOW`` seconds of each other, are
encoded as one batch, the way text-embeddings-inference batches requests; each caller
gets its own slice of the result. If a merged call fails, its requests are run one by one,
so an error reaches only the caller whose input caused it.
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Seconds a call waits for others to join its batch.
WINDOW = 0.002
#: The most requests merged into one call.
MAX_REQUESTS = 64
#: Outputs that come back as one object for the whole batch cannot be split per caller.
_UNSPLITTABLE = ("flat", "arrow")

_EXECUTOR = ThreadPoolExecutor(
    max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="tessera-async"
)


@dataclass
class _Lane:
    """Requests waiting for one (loop, model, method, options)."""

    requests: list[tuple[Any, asyncio.Future[Any]]] = field(default_factory=list)
    busy: bool = False


_lanes: dict[tuple[int, int, str, str], _Lane] = {}
_tasks: set[asyncio.Task[None]] = set()


async def submit(
    model: Any, method: str, inputs: Any, kwargs: dict[str, Any], merge: bool = True
) -> Any:
    """``model.<method>(inputs, **kwargs)`` on the pool; merged with concurrent calls when
    ``merge`` and the inputs are a str or a list (one item per input)."""
    call = getattr(model, method)
    loop = asyncio.get_running_loop()
    if not (merge and _mergeable(inputs, kwargs)):
        return await loop.run_in_executor(_EXECUTOR, functools.partial(call, inputs, **kwargs))
    key = (id(loop), id(model), method, repr(sorted(kwargs.items())))
    lane = _lanes.setdefault(key, _Lane())
    future: asyncio.Future[Any] = loop.create_future()
    lane.requests.append((inputs, future))
    if not lane.busy:
        lane.busy = True
        task = loop.create_task(_drain(key, lane, call, kwargs))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
    return await future


async def run(call: Any, *args: Any, **kwargs: Any) -> Any:
    """A call on the pool, not merged with others."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, functools.partial(call, *args, **kwargs))


def _mergeable(inputs: Any, kwargs: dict[str, Any]) -> bool:
    return kwargs.get("output") not in _UNSPLITTABLE and (isinstance(inputs, (str, list, tuple)))


async def _drain(key: tuple[int, int, str, str], lane: _Lane, call: Any, kwargs: Any) -> None:
    try:
        while lane.requests:
            await asyncio.sleep(WINDOW)
            batch = lane.requests[:MAX_REQUESTS]
            del lane.requests[:MAX_REQUESTS]
            await _run_batch(batch, call, kwargs)
    finally:
        lane.busy = False
        if not lane.requests:
            _lanes.pop(key, None)


async def _run_batch(
    batch: list[tuple[Any, asyncio.Future[Any]]], call: Any, kwargs: dict[str, Any]
) -> None:
    items: list[Any] = []
    spans: list[tuple[int, int, bool]] = []
    for inputs, _ in batch:
        single = not isinstance(inputs, (list, tuple))
        start = len(items)
        items.extend([inputs] if single else inputs)
        spans.append((start, len(items), single))
    try:
        result = await run(call, items, **kwargs)
    except Exception as error:
        if len(batch) == 1:
            _settle(batch[0][1], error=error)
            return
        # Find whose input failed: each request on its own.
        for inputs, future in batch:
            try:
                _settle(future, value=await run(call, inputs, **kwargs))
            except Exception as own:
                _settle(future, error=own)
        return
    for (start, end, single), (_, future) in zip(spans, batch):
        _settle(future, value=_take(result, start, end, single))


def _take(result: Any, start: int, end: int, single: bool) -> Any:
    if isinstance(result, np.ndarray):
        # A copy: callers must not share (or keep alive) each other's rows.
        return result[start].copy() if single else result[start:end].copy()
    return result[start] if single else result[start:end]


def _settle(
    future: asyncio.Future[Any], value: Any = None, error: BaseException | None = None
) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
