"""Whole-batch output forms: `output="flat"` (one buffer plus offsets, shared with NumPy
without a copy), `output="arrow"` (a pyarrow column over the same memory), and the array /
object forms on every class."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest
from conftest import GOLDEN

import tessera
from tessera import RaggedEmbeddings, TesseraMultiVector, TesseraSparse, TesseraVision

SPARSE = TesseraSparse(GOLDEN / "sparse" / "tiny_splade" / "model")
COLBERT = TesseraMultiVector(GOLDEN / "multivector" / "tiny_colbert_pylate" / "model")
VISION = TesseraVision(GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model")
PAGES = GOLDEN / "vision" / "colpali_tiny_img84_p14" / "inputs"
TEXTS = ["late interaction", "a", "learned sparse retrieval with many more words in it"]


def check_ragged(flat: RaggedEmbeddings, matrices: list[np.ndarray]) -> None:
    assert isinstance(flat, RaggedEmbeddings) and len(flat) == len(matrices)
    lengths = [m.shape[0] for m in matrices]
    assert flat.lengths == lengths
    np.testing.assert_array_equal(flat.offsets, np.concatenate([[0], np.cumsum(lengths)]))
    assert flat.offsets.dtype == np.int64 and flat.values.dtype == np.float32
    assert flat.values.shape == (sum(lengths), matrices[0].shape[1]) == np.asarray(flat).shape
    for i, matrix in enumerate(matrices):
        np.testing.assert_array_equal(flat[i], matrix)
        # Each document is a view of the one buffer: no per-document copy.
        assert np.shares_memory(flat[i], flat.values)
    np.testing.assert_array_equal(flat[-1], matrices[-1])
    assert np.shares_memory(np.asarray(flat), flat.values)
    assert not flat.values.flags.writeable


def test_colbert_flat_batches_are_the_list_batches_in_one_buffer() -> None:
    for is_query in (False, True):
        listed = COLBERT.encode_batch(TEXTS, is_query=is_query)
        check_ragged(COLBERT.encode_batch(TEXTS, is_query=is_query, output="flat"), listed)
    check_ragged(COLBERT.encode(TEXTS, output="flat"), COLBERT.encode(TEXTS))
    check_ragged(COLBERT.encode_query(TEXTS, output="flat"), COLBERT.encode_query(TEXTS))
    check_ragged(COLBERT.encode_document(TEXTS, output="flat"), COLBERT.encode_document(TEXTS))
    with pytest.raises(ValueError, match="take a list of inputs"):
        COLBERT.encode(TEXTS[0], output="flat")


def test_arrow_columns_share_the_buffer() -> None:
    flat = COLBERT.encode_batch(TEXTS, output="flat")
    column = flat.to_arrow()
    assert isinstance(column, pa.LargeListArray)
    assert column.type == pa.large_list(pa.list_(pa.float32(), COLBERT.dimension()))
    assert len(column) == len(TEXTS)
    for i in range(len(TEXTS)):
        np.testing.assert_array_equal(np.stack(column[i].as_py()), flat[i])
    floats = column.values.values.to_numpy(zero_copy_only=True)
    assert np.shares_memory(floats, flat.values)
    direct = COLBERT.encode_batch(TEXTS, output="arrow")
    assert direct.equals(column)
    table = pa.table({"text": TEXTS, "tokens": direct})  # usable as a column as it is
    assert table.num_rows == len(TEXTS)


def test_vision_pages_and_queries_in_every_form() -> None:
    paths = [PAGES / "doc_rgb.png", PAGES / "gray.png"]
    objects = VISION.encode_documents(paths)
    matrices = [o.embeddings for o in objects]
    for got, want in zip(VISION.encode_documents(paths, output="array"), matrices):
        np.testing.assert_array_equal(got, want)
    check_ragged(VISION.encode_batch(paths, output="flat"), matrices)
    alone = VISION.encode_document(paths[0], output="array")  # a batch of one: same math
    np.testing.assert_allclose(alone, matrices[0], atol=1e-5)
    arrow = VISION.encode_documents(paths, output="arrow")
    assert len(arrow) == 2 and len(arrow[1]) == matrices[1].shape[0]
    queries = VISION.encode_queries(TEXTS)
    check_ragged(VISION.encode_queries(TEXTS, output="flat"), queries)
    check_ragged(VISION.encode_query(TEXTS, output="flat"), queries)
    with pytest.raises(ValueError, match="output must be"):
        VISION.encode_documents(paths, output="list")


def test_sparse_batches_as_dense_rows_csr_and_arrow() -> None:
    embeddings = SPARSE.encode(TEXTS)
    dense = SPARSE.encode_batch(TEXTS, output="array")
    assert dense.shape == (len(TEXTS), SPARSE.vocab_size()) and dense.dtype == np.float32
    for row, embedding in zip(dense, embeddings):
        np.testing.assert_array_equal(row, embedding.to_dense())
    np.testing.assert_allclose(SPARSE.encode(TEXTS[0], output="array"), dense[0], atol=1e-5)
    csr = SPARSE.encode(TEXTS, output="flat")
    np.testing.assert_array_equal(csr.toarray(), dense)
    np.testing.assert_array_equal(SPARSE.encode_csr(TEXTS).toarray(), dense)
    column = SPARSE.encode_batch(TEXTS, output="arrow")
    assert [column.type.field(i).name for i in range(2)] == ["indices", "values"]
    for item, embedding in zip(column.to_pylist(), embeddings):
        assert item["indices"] == embedding.indices.tolist()
        np.testing.assert_array_equal(np.array(item["values"], dtype=np.float32), embedding.values)
    query = SPARSE.encode_query(TEXTS, output="array")
    np.testing.assert_allclose(query[1], SPARSE.encode_query(TEXTS[1]).to_dense(), atol=1e-5)


def test_ragged_embeddings_by_hand() -> None:
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    flat = RaggedEmbeddings(values, np.array([0, 1, 1, 6]))
    assert flat.lengths == [1, 0, 5] and flat[1].shape == (0, 2) and flat.dim == 2
    np.testing.assert_array_equal(flat[2], values[1:])
    assert pickle.loads(pickle.dumps(flat)) == flat
    assert repr(flat) == "RaggedEmbeddings(documents=3, rows=6, dim=2)"
    assert "<table" in flat._repr_html_()
    assert [m.shape[0] for m in flat] == [1, 0, 5]  # iterates document by document
    with pytest.raises(IndexError):
        flat[3]
    with pytest.raises(IndexError):
        flat[-4]
    for offsets in ([1, 6], [0, 4], [0, 3, 2, 6], []):
        with pytest.raises(ValueError, match="offsets must rise"):
            RaggedEmbeddings(values, np.array(offsets, dtype=np.int64))
    assert not hasattr(tessera, "RaggedEmbedding")
