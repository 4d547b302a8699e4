"""TesseraVision against transformers' ColPaliForRetrieval (golden data), image inputs, errors."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import GOLDEN
from PIL import Image

import tessera
from tessera import Tessera, TesseraVision, TokenEmbeddings, VisionEmbedding

CASES = sorted(p for p in (GOLDEN / "vision").iterdir() if (p / "cases.json").exists())


def cases_of(root: Path) -> dict[str, Any]:
    return json.loads((root / "cases.json").read_text())


@pytest.fixture(scope="module", params=CASES, ids=lambda p: p.name)
def root(request: pytest.FixtureRequest) -> Path:
    return request.param


@pytest.fixture(scope="module")
def model(root: Path) -> TesseraVision:
    return TesseraVision(root / "model")


def row_cosines(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    g = got / np.linalg.norm(got, axis=1, keepdims=True)
    w = want / np.linalg.norm(want, axis=1, keepdims=True)
    return np.sum(g * w, axis=1)


def test_documents_match_reference(root: Path, model: TesseraVision) -> None:
    cases, expected = cases_of(root), np.load(root / "expected.npz")
    tol = cases["tolerance"]
    paths = [root / d["file"] for d in cases["documents"]]
    embeddings = model.encode_documents(paths)
    want_all = expected["doc_embeddings"]
    for doc, got, want in zip(cases["documents"], embeddings, want_all):
        assert got.embeddings.shape == (doc["embedding_rows"], model.embedding_dim())
        assert got.num_patches == model.num_patches() and got.source == str(root / doc["file"])
        if doc["file"].lower().endswith((".jpg", ".jpeg")):
            # JPEG decoders may differ from libjpeg-turbo by a level: the README's tier B
            cos = row_cosines(got.embeddings, want)
            assert cos.mean() >= tol["end_to_end_tier_B"]["per_document_mean_row_cosine_min"]
            assert cos.min() >= tol["end_to_end_tier_B"]["min_row_cosine"]
        else:
            bound = tol["end_to_end_tier_A"]["embeddings_max_abs"]
            assert np.abs(got.embeddings - want).max() <= bound, doc["file"]


def test_queries_and_scores_match_reference(root: Path, model: TesseraVision) -> None:
    cases, expected = cases_of(root), np.load(root / "expected.npz")
    bound = cases["tolerance"]["queries"]["embeddings_max_abs"]
    queries = [q["text"] for q in cases["queries"]]
    for q, got in zip(cases["queries"], model.encode_queries(queries)):
        want = expected[q["embedding_key"]]
        assert got.shape == want.shape and np.abs(got - want).max() <= bound
        assert np.abs(model.encode_query(q["text"]) - want).max() <= bound
    documents = model.encode_documents([root / d["file"] for d in cases["documents"]])
    scores = model.similarity_matrix(model.encode_queries(queries), documents)
    want = expected["scores"]
    assert scores.shape == want.shape
    np.testing.assert_allclose(
        scores, want, rtol=cases["tolerance"]["end_to_end_tier_B"]["scores_max_rel"]
    )
    png = [i for i, d in enumerate(cases["documents"]) if d["file"].endswith(".png")]
    assert (
        np.abs(scores[:, png] - want[:, png]).max()
        <= cases["tolerance"]["end_to_end_tier_A"]["scores_max_abs"]
    )
    first = model.search(queries[0], documents[png[0]])
    assert first == pytest.approx(float(want[0, png[0]]), abs=1e-3)
    assert model.search_document(
        queries[0], root / cases["documents"][png[0]]["file"]
    ) == pytest.approx(first, abs=1e-5)


def test_image_input_forms_agree(root: Path, model: TesseraVision) -> None:
    doc = next(d for d in cases_of(root)["documents"] if d["file"].endswith(".png"))
    path = root / doc["file"]
    base = model.encode_document(path).embeddings
    pil = Image.open(path)
    rgb = np.asarray(pil.convert("RGB"))
    for form in (str(path), path.read_bytes(), bytearray(path.read_bytes()), rgb, pil):
        np.testing.assert_allclose(model.encode_document(form).embeddings, base, atol=1e-6)
    gray = np.asarray(pil.convert("L"))
    assert model.encode_document(gray).embeddings.shape == base.shape
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    np.testing.assert_allclose(model.encode_document(rgba).embeddings, base, atol=1e-6)


def test_batch_invariance(root: Path, model: TesseraVision) -> None:
    paths = [root / d["file"] for d in cases_of(root)["documents"]]
    together = model.encode_documents(paths, batch_size=4)
    for path, emb in zip(paths, together):
        np.testing.assert_allclose(
            model.encode_document(path).embeddings, emb.embeddings, atol=1e-5
        )
    reordered = model.encode_documents(paths[::-1], batch_size=2)
    for a, b in zip(together, reordered[::-1]):
        np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)


def test_query_objects_carry_the_reference_tokens(root: Path, model: TesseraVision) -> None:
    cases, expected = cases_of(root), np.load(root / "expected.npz")
    bound = cases["tolerance"]["queries"]["embeddings_max_abs"]
    queries = [q["text"] for q in cases["queries"]]
    objects = model.encode_queries(queries, output="object")
    assert [o.text for o in objects] == queries
    for q, got in zip(cases["queries"], objects):
        assert isinstance(got, TokenEmbeddings)
        assert got.token_ids == q["input_ids"] and got.tokens == q["tokens"]
        assert got.num_tokens == len(q["input_ids"]) == got.embeddings.shape[0]
        assert np.abs(got.embeddings - expected[q["embedding_key"]]).max() <= bound
    one = model.encode_query(queries[1], output="object")
    assert isinstance(one, TokenEmbeddings) and one.token_ids == objects[1].token_ids
    np.testing.assert_allclose(one.embeddings, objects[1].embeddings, atol=1e-5)
    listed = model.encode_query(queries[:2], output="object")
    assert [o.token_ids for o in listed] == [o.token_ids for o in objects[:2]]
    # The object form scores like the array form.
    page = model.encode_document(root / cases["documents"][0]["file"])
    assert model.similarity(one.embeddings, page) == pytest.approx(
        model.similarity(model.encode_query(queries[1]), page), abs=1e-6
    )
    with pytest.raises(ValueError, match="output must be"):
        model.encode_query(queries[0], output="objects")


def test_output_object(root: Path, model: TesseraVision) -> None:
    emb = model.encode_document(root / cases_of(root)["documents"][0]["file"])
    assert isinstance(emb, VisionEmbedding) and len(emb) == emb.embeddings.shape[0]
    assert np.shares_memory(np.asarray(emb), emb.embeddings)
    assert pickle.loads(pickle.dumps(emb)) == emb and "VisionEmbedding" in repr(emb)
    assert isinstance(Tessera(root / "model"), TesseraVision) and "TesseraVision" in repr(model)


def truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()[:60]


def test_bad_images(root: Path, model: TesseraVision, tmp_path: Path) -> None:
    with pytest.raises(tessera.TesseraIOError):
        model.encode_document(tmp_path / "missing.png")
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    with pytest.raises(tessera.TesseraError):
        model.encode_document(not_image)
    with pytest.raises(tessera.TesseraError):
        model.encode_document(truncated_png())
    with pytest.raises(tessera.TesseraError):
        model.encode_document(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        model.encode_document(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        model.encode_document(np.zeros((1, 2, 3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="channels"):
        model.encode_document(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(TypeError):
        model.encode_document(12)


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming an enormous size, with a tiny compressed body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_enormous_image_is_refused(model: TesseraVision) -> None:
    with pytest.raises(tessera.TesseraError, match=r"(?i)large|limit|size"):
        model.encode_document(huge_png(100_000, 100_000))


def test_pdf_without_pypdfium2(model: TesseraVision, tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    try:
        import pypdfium2  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pypdfium2"):
            model.encode_pdf(pdf)
    with pytest.raises(tessera.TesseraIOError):
        model.encode_pdf(tmp_path / "absent.pdf")
