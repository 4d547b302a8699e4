"""No input may crash the process: the bad-input matrix over all five paradigms, Ctrl-C,
fork, and a hub that misbehaves. Everything that could abort or hang runs in a child
process, so a crash fails one test instead of killing the suite."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GOLDEN
from hub_server import HubServer

ROOT = Path(__file__).resolve().parents[2]
TINY = GOLDEN / "dense" / "tiny_bge_cls" / "model"
SPLADE = GOLDEN / "sparse" / "tiny_splade" / "model"
COLBERT = GOLDEN / "multivector" / "tiny_colbert_pylate" / "model"
VIS = GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model"
TS = GOLDEN / "timeseries" / "bolt_tiny_ctx128_p16" / "model"
COMMIT = "c" * 40


def run_child(code: str, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """Runs `code` in a fresh interpreter and returns its stdout; fails on a crash."""
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        # A runner started in the background (`nohup ... &`) ignores SIGINT, and a child
        # would inherit that: give it the default, so Python installs its own handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.returncode == 0, f"child exited {child.returncode}:\n{child.stderr[-3000:]}"
    return child.stdout


# The bad-input matrix: (paradigm, label, expression) -> the exception class expected.
# The expression runs with `dense`, `sparse`, `colbert`, `vision`, `ts` loaded and `np`.
MATRIX: list[tuple[str, str, str, str]] = [
    # integers out of range are ConfigError (a ValueError), never OverflowError
    ("dense", "batch_size=-1", "TesseraDense(TINY, batch_size=-1)", "ConfigError"),
    ("dense", "max_length=-1", "TesseraDense(TINY, max_length=-1)", "ConfigError"),
    ("dense", "dimension=-5", "TesseraDense(TINY, dimension=-5)", "ConfigError"),
    ("dense", "batch_size=2**70", "TesseraDense(TINY, batch_size=2**70)", "ConfigError"),
    ("dense", "batch_size=0 per call", "dense.encode_batch(['a'], batch_size=0)", "ConfigError"),
    ("dense", "builder max_length(-2)", "TesseraDense.builder().max_length(-2)", "ConfigError"),
    ("dense", "batch_size float", "TesseraDense(TINY, batch_size=2.5)", "TypeError"),
    ("dense", "batch_size bool", "TesseraDense(TINY, batch_size=True)", "TypeError"),
    ("dense", "dimension beyond", "TesseraDense(TINY, dimension=64)", "UnsupportedDimensionError"),
    ("dense", "None text", "dense.encode(None)", "TypeError"),
    ("dense", "bytes text", "dense.encode(b'abc')", "TypeError"),
    ("dense", "int in batch", "dense.encode_batch(['a', 3])", "TypeError"),
    ("dense", "lone surrogate", "dense.encode('ab\\ud800cd')", "TokenizationError"),
    ("dense", "surrogate in batch", "dense.encode_batch(['ok', '\\udfff'])", "TokenizationError"),
    (
        "dense",
        "empty vectors",
        "dense.similarity(np.zeros(0, 'f4'), np.zeros(0, 'f4'))",
        "ConfigError",
    ),
    (
        "dense",
        "vectors of two sizes",
        "dense.similarity(np.ones(3, 'f4'), np.ones(4, 'f4'))",
        "DimensionMismatchError",
    ),
    ("dense", "unknown id", "TesseraDense('no-such-model-anywhere')", "ModelNotFoundError"),
    ("dense", "missing directory", "TesseraDense('./no/such/dir')", "ModelNotFoundError"),
    ("dense", "cuda(-1)", "Device.cuda(-1)", "ConfigError"),
    ("dense", "bad device", "TesseraDense(TINY, device='tpu')", "DeviceError"),
    ("dense", "bad revision", "TesseraDense('org/model', revision='/any/dir')", "ConfigError"),
    ("dense", "dotdot revision", "TesseraDense('org/model', revision='main/../..')", "ConfigError"),
    ("sparse", "top_k=-1", "TesseraSparse(SPLADE, top_k=-1)", "ConfigError"),
    ("sparse", "tokens(top_k=-1)", "sparse.encode('a').tokens(top_k=-1)", "ConfigError"),
    ("sparse", "vocab 2**33", "SparseEmbedding([1], [1.0], 2**33).to_dense()", "ConfigError"),
    (
        "sparse",
        "vocab 2**31",
        "SparseEmbedding([1], [1.0], 2**31).to_dense()",
        "OK|OutOfMemoryError",
    ),
    ("sparse", "negative id", "SparseEmbedding([-1], [1.0], 10)", "ValueError"),
    ("sparse", "id beyond vocab", "SparseEmbedding([12], [1.0], 10)", "DimensionMismatchError"),
    ("sparse", "None text", "sparse.encode(None)", "TypeError"),
    ("sparse", "surrogate", "sparse.encode('\\ud800')", "TokenizationError"),
    (
        "multivector",
        "query_length=-1",
        "TesseraMultiVector(COLBERT, query_length=-1)",
        "ConfigError",
    ),
    (
        "multivector",
        "rank top_k=-1",
        "colbert.rank(colbert.encode_query('a'), [colbert.encode('b')], top_k=-1)",
        "ConfigError",
    ),
    ("multivector", "None text", "colbert.encode_query(None)", "TypeError"),
    ("multivector", "surrogate", "colbert.encode('\\ud800x')", "TokenizationError"),
    (
        "multivector",
        "1-D query",
        "colbert.similarity(np.ones(16, 'f4'), np.ones((2, 16), 'f4'))",
        "ValueError",
    ),
    ("vision", "None image", "vision.encode_document(None)", "TypeError"),
    ("vision", "int image", "vision.encode_document(3)", "TypeError"),
    ("vision", "None pdf", "vision.encode_pdf(None)", "TypeError"),
    ("vision", "dpi=-1", "vision.encode_pdf('x.pdf', dpi=-1)", "ConfigError"),
    ("vision", "missing image", "vision.encode_document('/no/such/image.png')", "TesseraIOError"),
    (
        "vision",
        "garbage bytes",
        "vision.encode_document(b'not an image')",
        "EncodingError|ConfigError",
    ),
    ("vision", "huge query", "vision.encode_query('word ' * 200000).shape[0] < 600 or 1/0", "OK"),
    ("vision", "surrogate query", "vision.encode_query('\\ud800')", "TokenizationError"),
    (
        "vision",
        "float image",
        "vision.encode_document(np.zeros((8, 8, 3), 'f4'))",
        "TypeError|ValueError",
    ),
    (
        "timeseries",
        "prediction_length=2**31",
        "ts.forecast(np.arange(50.), prediction_length=2**31)",
        "ConfigError",
    ),
    (
        "timeseries",
        "prediction_length=2**62",
        "ts.forecast(np.arange(50.), prediction_length=2**62)",
        "ConfigError",
    ),
    (
        "timeseries",
        "prediction_length=-3",
        "ts.forecast(np.arange(50.), prediction_length=-3)",
        "ConfigError",
    ),
    (
        "timeseries",
        "builder -3",
        "TesseraTimeSeries.builder().prediction_length(-3)",
        "ConfigError",
    ),
    ("timeseries", "mixed list", "ts.forecast([1.0, 'a'])", "TypeError"),
    (
        "timeseries",
        "levels str",
        "ts.forecast_quantiles(np.arange(50.), quantile_levels='0.5')",
        "TypeError",
    ),
    (
        "timeseries",
        "levels outside",
        "ts.forecast_quantiles(np.arange(50.), quantile_levels=[1.5])",
        "ConfigError",
    ),
    ("timeseries", "empty", "ts.forecast([])", "ValueError"),
    ("timeseries", "inf", "ts.forecast(np.array([1.0, np.inf, 2.0]))", "EncodingError"),
    (
        "timeseries",
        "values 3e19",
        "bool(np.isfinite(ts.forecast(np.full(50, 3e19))).all()) or 1/0",
        "OK",
    ),
    (
        "timeseries",
        "values 1e38",
        "ts.forecast(np.full(50, 1e38) * np.arange(50))",
        "OK|EncodingError",
    ),
    ("timeseries", "strings", "ts.forecast(np.array(['a', 'b']))", "TypeError"),
    # The surface added for truncation, streaming, flat batches, async and compression.
    ("dense", "count_tokens None", "dense.count_tokens(None)", "TypeError"),
    ("dense", "count_tokens int in list", "dense.count_tokens(['a', 1])", "TypeError"),
    ("dense", "on_truncation unknown", "dense.encode('a', on_truncation='raise')", "ConfigError"),
    ("dense", "output unknown", "dense.encode('a', output='list')", "ValueError"),
    ("dense", "stream a str", "dense.encode_stream('one text')", "TypeError"),
    ("dense", "stream an int", "dense.encode_stream(3)", "TypeError"),
    ("dense", "stream batch_size=0", "dense.encode_stream(['a'], batch_size=0)", "ConfigError"),
    ("dense", "stream None item", "list(dense.encode_stream(['a', None]))", "TypeError"),
    ("dense", "aencode None", "__import__('asyncio').run(dense.aencode(None))", "TypeError"),
    ("sparse", "flat for one text", "sparse.encode('a', output='flat')", "ValueError"),
    (
        "multivector",
        "pool_factor=0",
        "colbert.encode_document('a b c', pool_factor=0)",
        "ConfigError",
    ),
    (
        "multivector",
        "pool a query",
        "colbert.encode('a', is_query=True, pool_factor=2)",
        "ConfigError",
    ),
    ("multivector", "pool 1-D", "pool_embeddings(np.ones(4, 'f4'), 2)", "ValueError"),
    ("multivector", "pool NaN", "pool_embeddings(np.full((4, 4), np.nan, 'f4'), 2)", "ConfigError"),
    (
        "multivector",
        "pool style",
        "pool_embeddings(np.ones((4, 4), 'f4'), 2, style='x')",
        "ConfigError",
    ),
    (
        "multivector",
        "ragged bad offsets",
        "RaggedEmbeddings(np.ones((3, 2), 'f4'), np.array([0, 2]))",
        "ValueError",
    ),
    ("multivector", "muvera dim_proj > dim", "Muvera(8, dim_proj=16)", "ConfigError"),
    (
        "multivector",
        "muvera width 10**9",
        "Muvera(10**9, k_sim=1, dim_proj=1, r_reps=1)",
        "ConfigError",
    ),
    (
        "multivector",
        "muvera empty",
        "Muvera(8, dim_proj=4).encode_query(np.ones((0, 8)))",
        "ConfigError",
    ),
    (
        "vision",
        "pool_factor=-1",
        "vision.encode_document(np.zeros((8, 8, 3), 'u1'), pool_factor=-1)",
        "ConfigError",
    ),
    ("timeseries", "output flat", "ts.forecast(np.arange(50.), output='flat')", "ValueError"),
]

MATRIX_CHILD = """
import json, sys, traceback
import numpy as np
from tessera import *
TINY, SPLADE, COLBERT, VIS, TS = {paths}
dense, sparse = TesseraDense(TINY), TesseraSparse(SPLADE)
colbert, vision, ts = TesseraMultiVector(COLBERT), TesseraVision(VIS), TesseraTimeSeries(TS)
results = {{}}
for key, expression in json.loads(sys.argv[1]).items():
    try:
        eval(expression)
        results[key] = ["OK", ""]
    except BaseException as e:
        results[key] = [type(e).__name__, str(e)]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def matrix_results() -> dict[str, list[str]]:
    rows = {f"{p}: {label}": expression for p, label, expression, _ in MATRIX}
    paths = repr(tuple(str(p) for p in (TINY, SPLADE, COLBERT, VIS, TS)))
    child = subprocess.run(
        [sys.executable, "-c", MATRIX_CHILD.format(paths=paths), json.dumps(rows)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert child.returncode == 0, f"the matrix child crashed:\n{child.stderr[-3000:]}"
    return json.loads(child.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "paradigm,label,expression,expected", MATRIX, ids=[f"{p}: {label}" for p, label, _, _ in MATRIX]
)
def test_bad_input_gets_the_right_class(
    matrix_results: dict[str, list[str]],
    paradigm: str,
    label: str,
    expression: str,
    expected: str,
) -> None:
    got, message = matrix_results[f"{paradigm}: {label}"]
    assert got in expected.split("|"), f"{expression!r} raised {got}: {message}"
    assert "internal error" not in message and "PanicException" not in got
    if got != "OK":
        assert message, "every error says what happened"


def test_error_classes_are_declared_once_with_their_builtins() -> None:
    import tessera

    assert issubclass(tessera.ConfigError, ValueError)
    assert issubclass(tessera.OutOfMemoryError, MemoryError)
    assert tessera.exceptions.ConfigError is tessera.ConfigError
    assert tessera.ConfigError.__module__ == "tessera.exceptions"
    import pickle

    err = pickle.loads(pickle.dumps(tessera.ConfigError("x")))
    assert isinstance(err, tessera.ConfigError)


def test_ctrl_c_stops_a_long_batch_quickly(minilm_dir: Path) -> None:
    out = run_child(
        f"""
        import os, signal, threading, time
        import tessera
        model = tessera.TesseraDense({str(minilm_dir)!r})
        texts = [f"sentence {{i}} about retrieval and its many details" for i in range(20000)]
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        start = time.time()
        try:
            model.encode_batch(texts)
            print("finished", time.time() - start)
        except KeyboardInterrupt:
            print("interrupted", time.time() - start)
        """
    )
    state, seconds = out.split()
    assert state == "interrupted"
    assert float(seconds) < 1.0 + 3.0


def test_ctrl_c_in_a_fresh_process_is_a_keyboard_interrupt() -> None:
    # The signal arrives before the first call converts anything to NumPy.
    out = run_child(
        f"""
        import os, signal
        import tessera
        model = tessera.TesseraDense({str(TINY)!r})
        try:
            os.kill(os.getpid(), signal.SIGINT)
            model.encode_batch(["a"] * 50000)
            print("finished")
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    assert out.split() == ["interrupted"]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_forked_child_encodes(threads: str) -> None:
    out = run_child(
        f"""
        import multiprocessing as mp
        import tessera
        model = tessera.TesseraDense({str(TINY)!r})
        parent = model.encode_batch(["warm the pools up"] * 64)
        def child(queue):
            queue.put(model.encode_batch(["warm the pools up"] * 64).tolist())
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        process = ctx.Process(target=child, args=(queue,))
        process.start()
        process.join(30)
        print(process.exitcode, queue.get(timeout=5) == parent.tolist())
        """,
        timeout=90,
        env={"RAYON_NUM_THREADS": threads},
    )
    assert out.split() == ["0", "True"]


# --- the hub misbehaving ---------------------------------------------------------------


@pytest.fixture()
def hub_cache(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "hub-cache"


def load_from(endpoint: str, cache: Path, timeout: float = 90, **env: str) -> str:
    """Loads tiny/bge through the hub in a child; prints OK or the exception class."""
    return run_child(
        """
        import sys, time
        import tessera
        start = time.time()
        try:
            tessera.TesseraDense("tiny/bge").encode("hub")
            print("OK", round(time.time() - start, 2))
        except Exception as e:
            print(type(e).__name__, round(time.time() - start, 2), str(e).replace("\\n", " "))
        """,
        timeout=timeout,
        env={
            "HF_ENDPOINT": endpoint,
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_OFFLINE": "",
            "HF_TOKEN": "",
            **env,
        },
    )


def blob_files(cache: Path) -> list[Path]:
    blobs = cache / "models--tiny--bge" / "blobs"
    return sorted(blobs.iterdir()) if blobs.exists() else []


def test_a_server_that_never_answers_times_out(hub_cache: Path) -> None:
    with HubServer({("tiny/bge", "main"): (COMMIT, TINY)}, {"config.json": "stall"}) as server:
        out = load_from(server.endpoint, hub_cache, HF_HUB_DOWNLOAD_TIMEOUT="1")
    kind, seconds, *_ = out.split()
    assert kind == "ModelLoadError", out
    assert float(seconds) < 10


@pytest.mark.parametrize("fault", ["truncate", "html", "stall-body"])
def test_a_bad_download_never_poisons_the_cache(hub_cache: Path, fault: str) -> None:
    repos = {("tiny/bge", "main"): (COMMIT, TINY)}
    bad_file = "config.json" if fault == "html" else "model.safetensors"
    with HubServer(repos, {bad_file: fault}) as server:
        out = load_from(server.endpoint, hub_cache, HF_HUB_DOWNLOAD_TIMEOUT="1")
    assert out.split()[0] == "ModelLoadError", out
    snapshot = hub_cache / "models--tiny--bge" / "snapshots" / COMMIT
    assert not (snapshot / bad_file).exists()
    assert not any(p.name.endswith(".incomplete") for p in blob_files(hub_cache))
    # The next load, from a server that behaves, works online and then offline.
    with HubServer(repos) as server:
        assert load_from(server.endpoint, hub_cache).split()[0] == "OK"
    assert load_from("http://127.0.0.1:9", hub_cache, HF_HUB_OFFLINE="1").split()[0] == "OK"


def test_a_missing_file_is_asked_for_again(hub_cache: Path) -> None:
    repos = {("tiny/bge", "main"): (COMMIT, TINY)}
    with HubServer(repos, {"model.safetensors": "404-once"}) as server:
        first = load_from(server.endpoint, hub_cache)
        second = load_from(server.endpoint, hub_cache)
    assert first.split()[0] == "ModelLoadError" and "model.safetensors" in first
    assert second.split()[0] == "OK", second


def test_a_redirect_without_location_is_a_load_error(hub_cache: Path) -> None:
    repos = {("tiny/bge", "main"): (COMMIT, TINY)}
    with HubServer(repos, {"model.safetensors": "redirect-no-location"}) as server:
        out = load_from(server.endpoint, hub_cache)
    assert out.split()[0] == "ModelLoadError" and "Location" in out, out
    assert "internal error" not in out


def test_ctrl_c_during_a_stalled_download(hub_cache: Path) -> None:
    repos = {("tiny/bge", "main"): (COMMIT, TINY)}
    with HubServer(repos, {"model.safetensors": "stall-body"}) as server:
        out = run_child(
            """
            import os, signal, threading, time
            import tessera
            threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            start = time.time()
            try:
                tessera.TesseraDense("tiny/bge")
                print("loaded", time.time() - start)
            except KeyboardInterrupt:
                print("interrupted", time.time() - start)
            except Exception as e:
                print(type(e).__name__, time.time() - start)
            """,
            env={
                "HF_ENDPOINT": server.endpoint,
                "HF_HUB_CACHE": str(hub_cache),
                "HF_HUB_DOWNLOAD_TIMEOUT": "60",
            },
        )
    state, seconds = out.split()
    assert state == "interrupted" and float(seconds) < 1.5 + 3.0, out


def test_an_unreachable_hub_falls_back_to_a_complete_cache(hub_cache: Path) -> None:
    snapshot = hub_cache / "models--tiny--bge" / "snapshots" / COMMIT
    shutil.copytree(TINY, snapshot)
    (hub_cache / "models--tiny--bge" / "refs").mkdir()
    (hub_cache / "models--tiny--bge" / "refs" / "main").write_text(COMMIT)
    start = time.time()
    out = load_from("http://127.0.0.1:9", hub_cache)
    assert out.split()[0] == "OK", out
    assert time.time() - start < 60


def test_an_image_std_of_zero_is_refused_at_load(tmp_path: Path) -> None:
    import tessera

    model_dir = tmp_path / "vision"
    shutil.copytree(VIS, model_dir)
    config_path = model_dir / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    config["image_std"] = [0, 0, 0]
    config_path.write_text(json.dumps(config))
    with pytest.raises(tessera.ModelLoadError, match="image_std"):
        tessera.TesseraVision(model_dir)
