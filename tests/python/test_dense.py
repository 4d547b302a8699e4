"""TesseraDense against sentence-transformers' outputs (golden data), plus properties."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import GoldenCase, golden_cases, tolerance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tessera
from tessera import Tessera, TesseraDense

DENSE = golden_cases("dense")
TINY_FOR_PROGRESS = Path(__file__).resolve().parents[1] / "fixtures/golden/dense/tiny_bge_cls/model"


@pytest.fixture(scope="module", params=DENSE, ids=lambda c: c.name)
def case(request: pytest.FixtureRequest) -> GoldenCase:
    return request.param


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path) -> TesseraDense:
    return TesseraDense(minilm_dir)


def test_embeddings_match_reference(case: GoldenCase) -> None:
    model = TesseraDense(case.model_dir)
    check = case.check("embeddings")
    assert check is not None
    got = model.encode_batch(case.texts(check["inputs"]))
    want = case.expected()["embeddings"]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, **tolerance(check))
    if "row cosine" in str(check["compare"].get("and", "")):
        cos = np.sum(got * want, axis=1) / (
            np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
        )
        assert cos.min() >= 0.99999


def test_single_encode_matches_reference(case: GoldenCase) -> None:
    model = TesseraDense(case.model_dir)
    want = case.expected()["embeddings"]
    for i, text in enumerate(case.texts("texts")):
        got = model.encode(text)
        assert got.shape == (want.shape[1],)
        np.testing.assert_allclose(got, want[i], atol=1e-4, rtol=1e-4)


def test_token_ids_match_reference(case: GoldenCase) -> None:
    model = TesseraDense(case.model_dir)
    for text, ids in zip(case.texts("texts"), case.ragged("tokens.input_ids")):
        assert model.tokenize(text) == ids.tolist()


def test_similarity_matches_reference(case: GoldenCase) -> None:
    check = case.check("similarity")
    assert check is not None
    inputs = check["inputs"]
    model = TesseraDense(case.model_dir)
    a, b = (inputs, inputs) if isinstance(inputs, str) else inputs
    left, right = case.texts(a), case.texts(b)
    want = case.expected()["similarity"]
    got = np.array([[model.similarity(x, y) for y in right] for x in left], dtype=np.float32)
    np.testing.assert_allclose(got, want, **tolerance(check))
    # vectors work as well as texts
    va, vb = model.encode(left[0]), model.encode(right[-1])
    assert model.similarity(va, vb) == pytest.approx(float(want[0, -1]), abs=1e-4)


@pytest.mark.parametrize(
    "case", [c for c in DENSE if c.check("truncate_16_normalized")], ids=lambda c: c.name
)
def test_matryoshka_dimension_renormalises(case: GoldenCase) -> None:
    check = case.check("truncate_16_normalized")
    assert check is not None
    dim = check["options"]["truncate_dim"]
    model = TesseraDense(case.model_dir, dimension=dim)
    assert model.dimension() == dim
    got = model.encode_batch(case.texts(check["inputs"]))
    np.testing.assert_allclose(got, case.expected()["truncate_16_normalized"], **tolerance(check))
    sim = case.check("similarity_truncate_16")
    if sim is not None:
        a, b = sim["inputs"]
        ea, eb = model.encode_batch(case.texts(a)), model.encode_batch(case.texts(b))
        np.testing.assert_allclose(
            ea @ eb.T, case.expected()["similarity_truncate_16"], **tolerance(sim)
        )


@pytest.mark.parametrize(
    "case", [c for c in DENSE if c.check("embeddings_normalized")], ids=lambda c: c.name
)
def test_normalize_option_on_a_model_without_normalize(case: GoldenCase) -> None:
    check = case.check("embeddings_normalized")
    assert check is not None
    model = TesseraDense(case.model_dir, normalize=True)
    got = model.encode_batch(case.texts(check["inputs"]))
    np.testing.assert_allclose(got, case.expected()["embeddings_normalized"], **tolerance(check))


def test_builder_is_the_same_as_keywords(tiny_dense_dir: Path) -> None:
    built = (
        TesseraDense.builder()
        .model(tiny_dense_dir)
        .device("cpu")
        .dtype("f32")
        .max_length(16)
        .batch_size(2)
        .dimension(16)
        .build()
    )
    direct = TesseraDense(tiny_dense_dir, device="cpu", max_length=16, batch_size=2, dimension=16)
    texts = ["alpha beta gamma " * 10, "short", ""]
    np.testing.assert_array_equal(built.encode_batch(texts), direct.encode_batch(texts))
    assert built.max_length() == 16 and built.dimension() == 16


def test_factory_returns_dense(tiny_dense_dir: Path) -> None:
    model = Tessera(str(tiny_dense_dir), dimension=16)
    assert isinstance(model, TesseraDense)
    assert model.dimension() == 16
    assert model.model() == str(tiny_dense_dir)
    assert "TesseraDense" in repr(model)


def test_prefixes_are_applied(tiny_dense_dir: Path) -> None:
    model = TesseraDense(tiny_dense_dir, query_prefix="query: ", document_prefix="passage: ")
    plain = TesseraDense(tiny_dense_dir)
    np.testing.assert_allclose(
        model.encode_query("sourdough"), plain.encode("query: sourdough"), atol=1e-6
    )
    np.testing.assert_allclose(
        model.encode_document(["sourdough", "rye"]),
        plain.encode_batch(["passage: sourdough", "passage: rye"]),
        atol=1e-6,
    )


def test_empty_inputs(minilm: TesseraDense) -> None:
    empty = minilm.encode_batch([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    assert np.isfinite(minilm.encode("")).all()


def test_huge_string_is_truncated(minilm: TesseraDense) -> None:
    huge = "tessera " * 131_072  # 1 MiB
    vector = minilm.encode(huge)
    head = minilm.encode("tessera " * 300)
    np.testing.assert_allclose(vector, head, atol=1e-5)  # both cut to the first 254 pieces


def test_rows_iterate_like_vectors(minilm: TesseraDense) -> None:
    rows = list(minilm.encode_batch(("one", "two", "three")))
    assert len(rows) == 3 and all(r.shape == (384,) for r in rows)


def test_batch_size_and_progress_do_not_change_results(minilm: TesseraDense) -> None:
    texts = [f"sentence number {i} " * (i % 7 + 1) for i in range(40)]
    base = minilm.encode_batch(texts)
    other = minilm.encode_batch(texts, batch_size=3, show_progress=True)
    np.testing.assert_allclose(base, other, atol=1e-5)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_any_unicode_string_gives_a_finite_unit_vector(minilm: TesseraDense, text: str) -> None:
    vector = minilm.encode(text)
    assert np.isfinite(vector).all()
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert minilm.similarity(text, text) == pytest.approx(1.0, abs=1e-5)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(st.text(max_size=120), min_size=1, max_size=12),
    batch_size=st.integers(1, 8),
)
def test_a_text_is_the_same_alone_and_in_any_batch(
    minilm: TesseraDense, texts: list[str], batch_size: int
) -> None:
    batch = minilm.encode_batch(texts, batch_size=batch_size)
    for text, row in zip(texts, batch):
        assert np.abs(minilm.encode(text) - row).max() <= 1e-5


def test_threads_overlap_and_agree(minilm: TesseraDense) -> None:
    texts = [f"a moderately long sentence about topic {i} and its details" for i in range(96)]
    expected = minilm.encode_batch(texts)
    spans: list[tuple[float, float]] = []
    results: list[np.ndarray] = []
    lock = threading.Lock()

    def work() -> None:
        start = time.perf_counter()
        out = minilm.encode_batch(texts)
        end = time.perf_counter()
        with lock:
            spans.append((start, end))
            results.append(out)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (s1, e1), (s2, e2) = spans
    assert min(e1, e2) > max(s1, s2), "the two encodes did not overlap: is the GIL held?"
    for out in results:
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_gil_is_released_while_encoding(minilm: TesseraDense) -> None:
    texts = ["a sentence long enough to keep the encoder busy for a while"] * 128
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        minilm.encode_batch(texts)
    finally:
        done.set()
        counter.join()
    assert ticks > 100, "pure-Python thread starved while encoding"


def test_list_models_registry() -> None:
    dense = tessera.list_models("dense")
    ids = {m["id"] for m in dense}
    assert {"bge-small-en-v1.5", "all-minilm-l6-v2", "nomic-embed-text-v1.5"} <= ids
    assert all(m["paradigm"] == "dense" for m in dense)
    everything = tessera.list_models()
    assert len(everything) >= 23
    assert {m["paradigm"] for m in everything} == {
        "dense",
        "multivector",
        "sparse",
        "vision",
        "timeseries",
    }


def test_progress_goes_through_tqdm_and_ends_the_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = f"""
import tessera
model = tessera.TesseraDense({str(TINY_FOR_PROGRESS)!r})
model.encode_batch(["a text"] * 50, batch_size=10, show_progress=True)
model.encode(["a text"] * 20, batch_size=5, show_progress_bar=True)
model.encode_batch(["quiet"] * 20, batch_size=5)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.replace("\r", "\n").splitlines()
    assert any("encoding" in line and "100%" in line and "50/50" in line for line in lines)
    assert any("20/20" in line for line in lines)
    assert done.stderr.endswith("\n")
    # tqdm drew them: its "it/s" style rate, and nothing for the call without progress
    assert "item/s" in done.stderr and "quiet" not in done.stderr
