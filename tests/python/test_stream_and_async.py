"""`encode_stream` (batch by batch from any iterable, at flat memory) and the async calls
(`aencode` & co.: a worker pool, concurrent calls merged into one batch)."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import GOLDEN, REAL

import tessera
from tessera import (
    TesseraDense,
    TesseraMultiVector,
    TesseraSparse,
    TesseraTimeSeries,
    TesseraVision,
    TokenizationError,
    _aio,
)

DENSE = TesseraDense(GOLDEN / "dense" / "tiny_bge_cls" / "model")
MINILM = TesseraDense(REAL / "dense" / "minilm_real" / "model")
SPARSE = TesseraSparse(GOLDEN / "sparse" / "tiny_splade" / "model")
COLBERT = TesseraMultiVector(GOLDEN / "multivector" / "tiny_colbert_pylate" / "model")
VISION = TesseraVision(GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model")
SERIES = TesseraTimeSeries(GOLDEN / "timeseries" / "bolt_tiny_ctx128_p16" / "model")
PAGES = GOLDEN / "vision" / "colpali_tiny_img84_p14" / "inputs"
TEXTS = [f"text {i}: " + "word " * (i % 9) for i in range(23)]


def generated(n: int) -> Iterator[str]:
    for i in range(n):
        yield TEXTS[i % len(TEXTS)]


def test_stream_yields_each_batch_as_encode_would() -> None:
    results = list(DENSE.encode_stream(generated(23), batch_size=10))
    assert [r.shape for r in results] == [(10, 32), (10, 32), (3, 32)]
    for start, result in zip(range(0, 23, 10), results):
        # The same call on the same batch: the same bits.
        np.testing.assert_array_equal(result, DENSE.encode(TEXTS[start : start + 10]))


def test_stream_passes_keywords_to_encode() -> None:
    objects = next(DENSE.encode_stream(TEXTS, batch_size=5, output="object"))
    assert [o.text for o in objects] == TEXTS[:5]
    flat = next(COLBERT.encode_stream(TEXTS, batch_size=4, output="flat"))
    assert isinstance(flat, tessera.RaggedEmbeddings) and len(flat) == 4
    with pytest.warns(tessera.TruncationWarning):
        list(DENSE.encode_stream(["hello " * 500], on_truncation="warn"))


def test_stream_reads_lazily() -> None:
    endless = (f"text {i}" for i in itertools.count())
    first = list(itertools.islice(SPARSE.encode_stream(endless, batch_size=8), 3))
    assert [len(batch) for batch in first] == [8, 8, 8]
    assert all(isinstance(e, tessera.SparseEmbedding) for e in first[0])


def test_a_failing_iterator_surfaces_after_what_was_read() -> None:
    def failing() -> Iterator[str]:
        yield from TEXTS[:7]
        raise OSError("the source broke")

    got: list[np.ndarray] = []
    with pytest.raises(OSError, match="the source broke"):
        for batch in DENSE.encode_stream(failing(), batch_size=4):
            got.append(batch)
    assert [b.shape[0] for b in got] == [4, 3]
    np.testing.assert_array_equal(got[1], DENSE.encode(TEXTS[4:7]))


def test_stream_reads_file_lines_and_arrow(tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("".join(t + "\n" for t in TEXTS[:6]))
    with path.open() as lines:
        from_file = np.concatenate(list(DENSE.encode_stream(lines, batch_size=4)))
    np.testing.assert_array_equal(from_file[:4], DENSE.encode(TEXTS[:4]))
    np.testing.assert_array_equal(from_file[4:], DENSE.encode(TEXTS[4:6]))

    batches = pa.table({"id": range(6), "text": TEXTS[:6]}).to_batches(max_chunksize=3)
    arrow = list(DENSE.encode_stream(batches, column="text", batch_size=2))
    assert [a.shape[0] for a in arrow] == [2, 1, 2, 1]  # record batches are not merged
    np.testing.assert_array_equal(arrow[0], DENSE.encode(TEXTS[:2]))
    with pytest.raises(ValueError, match="needs column="):
        list(DENSE.encode_stream(batches))
    with pytest.raises(KeyError, match="'body' is not in the Arrow batch"):
        list(DENSE.encode_stream(batches, column="body"))
    with pytest.raises(ValueError, match="nulls"):
        list(DENSE.encode_stream([pa.array(["a", None])]))


def test_stream_every_paradigm() -> None:
    pages = [PAGES / "doc_rgb.png", PAGES / "gray.png", PAGES / "rgba.png"]
    streamed = list(VISION.encode_stream(iter(pages), batch_size=2))
    assert [len(b) for b in streamed] == [2, 1]
    assert streamed[1][0].source == str(pages[2])
    series = [np.sin(np.arange(40 + i) / 3) for i in range(5)]
    forecasts = list(SERIES.forecast_stream(iter(series), batch_size=2))
    assert [f.shape for f in forecasts] == [(2, 16), (2, 16), (1, 16)]
    np.testing.assert_array_equal(forecasts[2], SERIES.forecast(series[4:]))
    tokens = list(COLBERT.encode_stream(TEXTS[:3], batch_size=2, is_query=True))
    assert [len(b) for b in tokens] == [2, 1]
    assert tokens[0][0].shape == (COLBERT.query_length(), COLBERT.dimension())


def test_stream_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="not a single str"):
        list(DENSE.encode_stream("one text"))
    with pytest.raises(tessera.ConfigError):
        DENSE.encode_stream(TEXTS, batch_size=0)
    with pytest.raises(TypeError):
        list(DENSE.encode_stream(42))  # type: ignore[arg-type]


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux /proc")
def test_streaming_200k_texts_keeps_memory_flat() -> None:
    texts = (f"document {i} says " + "word " * (i % 13) for i in range(200_000))
    checkpoints: list[int] = []
    count = 0
    for batch in DENSE.encode_stream(texts, batch_size=512):
        count += batch.shape[0]
        if count % 20_480 == 0:
            checkpoints.append(resident_bytes())
    assert count == 200_000
    # After warm-up, the process does not grow with the number of texts read.
    growth = max(checkpoints[1:]) - checkpoints[1]
    # Holding the 200,000 texts alone would take ~22 MiB, their vectors ~25 MiB.
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB: {checkpoints}"


def test_async_results_equal_direct_calls_under_50_concurrent_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine_calls: list[int] = []
    run = _aio.run

    async def counted(call: Any, *args: Any, **kwargs: Any) -> Any:
        engine_calls.append(len(args[0]) if args and isinstance(args[0], list) else 1)
        return await run(call, *args, **kwargs)

    monkeypatch.setattr(_aio, "run", counted)
    requests: list[Any] = [TEXTS[i % 23] if i % 3 else TEXTS[i % 5 : i % 5 + 3] for i in range(50)]

    async def main() -> list[Any]:
        return await asyncio.gather(*(MINILM.aencode(r) for r in requests))

    results = asyncio.run(main())
    assert len(engine_calls) < 50  # merged into fewer engine calls
    assert sum(engine_calls) == sum(1 if isinstance(r, str) else len(r) for r in requests)
    for request, result in zip(requests, results):
        direct = MINILM.encode(request)
        assert result.shape == direct.shape and result.dtype == direct.dtype
        # A merged batch runs `gemm` where a lone short text runs the panel kernel (up to
        # 48 rows): the same vector up to float rounding.
        np.testing.assert_allclose(result, direct, rtol=0, atol=2e-6)


def test_async_on_every_class() -> None:
    async def main() -> None:
        sparse = await asyncio.gather(SPARSE.aencode(TEXTS[0]), SPARSE.aencode_query(TEXTS[:2]))
        assert isinstance(sparse[0], tessera.SparseEmbedding) and len(sparse[1]) == 2
        queries = await asyncio.gather(*(COLBERT.aencode_query(t) for t in TEXTS[:4]))
        for text, got in zip(TEXTS, queries):
            np.testing.assert_allclose(got, COLBERT.encode_query(text), atol=2e-6)
        flat = await COLBERT.aencode(TEXTS[:3], output="flat")  # not split: run as it is
        assert flat == COLBERT.encode(TEXTS[:3], output="flat")
        page = await VISION.aencode_document(PAGES / "gray.png")
        assert isinstance(page, tessera.VisionEmbedding)
        history = np.sin(np.arange(60) / 4)
        forecast = await SERIES.aforecast(history, prediction_length=8)
        np.testing.assert_array_equal(forecast, SERIES.forecast(history, prediction_length=8))
        doc = await DENSE.aencode_document(["a", "b"], output="object")
        assert [d.text for d in doc] == ["a", "b"]

    asyncio.run(main())


def test_async_keeps_the_event_loop_free() -> None:
    async def main() -> tuple[int, Any]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        result = await DENSE.aencode(TEXTS * 400)
        done.set()
        await task
        return ticks, result

    ticks, result = asyncio.run(main())
    assert result.shape == (len(TEXTS) * 400, 32)
    assert ticks > 3  # the loop ran other work while the engine encoded


def test_async_errors_reach_only_their_caller() -> None:
    long_text = "word " * 500

    async def main() -> list[Any]:
        calls = [DENSE.aencode(t, on_truncation="error") for t in [*TEXTS[:5], long_text]]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, np.ndarray) for r in results[:5])
    assert isinstance(results[5], TokenizationError)
    for text, result in zip(TEXTS, results[:5]):
        np.testing.assert_allclose(result, DENSE.encode(text), atol=2e-6)


def test_cancelled_callers_do_not_disturb_the_others() -> None:
    async def main() -> Any:
        doomed = asyncio.ensure_future(DENSE.aencode(TEXTS[1]))
        kept = asyncio.ensure_future(DENSE.aencode(TEXTS[2]))
        await asyncio.sleep(0)
        doomed.cancel()
        return await kept

    np.testing.assert_allclose(asyncio.run(main()), DENSE.encode(TEXTS[2]), atol=2e-6)
