"""Truncation made visible: `count_tokens`, `num_tokens` / `truncated` on the objects, and
`on_truncation="warn" | "error" | "ignore"` on every text encode of every class."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import GOLDEN

import tessera
from tessera import (
    TesseraDense,
    TesseraMultiVector,
    TesseraSparse,
    TesseraVision,
    TokenizationError,
    TruncationWarning,
)

DENSE = TesseraDense(GOLDEN / "dense" / "tiny_bge_cls" / "model")
SPARSE = TesseraSparse(GOLDEN / "sparse" / "tiny_splade" / "model")
COLBERT = TesseraMultiVector(GOLDEN / "multivector" / "tiny_colbert_pylate" / "model")
VISION = TesseraVision(GOLDEN / "vision" / "colpali_tiny_img84_p14" / "model")


def words(n: int) -> str:
    # "hello" is one WordPiece token of the BERT vocabularies, so the text is n tokens.
    return " ".join(["hello"] * n)


def test_count_tokens_counts_the_whole_text_with_special_tokens() -> None:
    # [CLS] + n pieces + [SEP], whatever the model's limit (64 here).
    assert DENSE.count_tokens(words(5)) == 7
    assert DENSE.count_tokens([words(1), words(100), ""]) == [3, 102, 2]
    assert SPARSE.count_tokens([words(200)]) == [202]
    # ColBERT adds its [Q] / [D] marker after [CLS].
    assert COLBERT.count_tokens(words(50)) == 53
    # ColPali's limit is on the query text itself, so no prompt tokens are counted.
    with_word = VISION.encode_query("hello", output="object").tokens
    prompt_only = VISION.encode_query("", output="object").tokens
    assert VISION.count_tokens(["hello"]) == [len(with_word) - len(prompt_only)]
    with pytest.raises(TypeError):
        DENSE.count_tokens(3)  # type: ignore[call-overload]


@pytest.mark.parametrize("n", [1, 61, 62, 63, 500])
def test_dense_objects_report_what_the_model_read(n: int) -> None:
    limit = DENSE.max_length()
    obj = DENSE.encode(words(n), output="object")
    total = DENSE.count_tokens(words(n))
    assert obj.truncated == (total > limit)
    assert obj.num_tokens == min(total, limit) == len(DENSE.tokenize(words(n)))


def test_every_text_object_carries_the_flags() -> None:
    texts = ["short text", words(1000)]
    dense = DENSE.encode_batch(texts, output="object")
    assert [o.truncated for o in dense] == [False, True]
    assert [o.num_tokens for o in dense] == [4, DENSE.max_length()]
    for encode in (DENSE.encode_query, DENSE.encode_document):
        assert [o.truncated for o in encode(texts, output="object")] == [False, True]
    sparse = SPARSE.encode(texts)
    assert [s.truncated for s in sparse] == [False, True]
    assert [s.num_tokens for s in sparse] == [4, SPARSE.max_length()]
    assert SPARSE.encode_query(texts[1]).truncated
    queries = COLBERT.encode_batch(texts, is_query=True, output="object")
    assert [q.truncated for q in queries] == [False, True]
    docs = COLBERT.encode_document(["a " + words(37), "a " + words(36)], output="object")
    # At most 40 tokens: [CLS] [D] "a" + 36 words + [SEP]; the first text needs 41.
    assert COLBERT.document_length() == 40
    assert COLBERT.count_tokens(["a " + words(37), "a " + words(36)]) == [41, 40]
    assert [d.truncated for d in docs] == [True, False]
    long_query = "word " * 600
    assert VISION.encode_query(long_query, output="object").truncated
    assert not VISION.encode_query("word", output="object").truncated
    # Objects built by hand are not truncated and know no count.
    made = tessera.SparseEmbedding([1], [0.5], 10)
    assert made.num_tokens is None and not made.truncated


def calls() -> list[tuple[str, Callable[..., Any]]]:
    return [
        ("dense.encode", DENSE.encode),
        ("dense.encode_batch", DENSE.encode_batch),
        ("dense.encode_query", DENSE.encode_query),
        ("dense.encode_document", DENSE.encode_document),
        ("sparse.encode", SPARSE.encode),
        ("sparse.encode_batch", SPARSE.encode_batch),
        ("sparse.encode_query", SPARSE.encode_query),
        ("sparse.encode_document", SPARSE.encode_document),
        ("sparse.encode_csr", SPARSE.encode_csr),
        ("colbert.encode", COLBERT.encode),
        ("colbert.encode_batch", COLBERT.encode_batch),
        ("colbert.encode_query", COLBERT.encode_query),
        ("colbert.encode_document", COLBERT.encode_document),
        ("vision.encode_query", VISION.encode_query),
        ("vision.encode_queries", VISION.encode_queries),
    ]


@pytest.mark.parametrize("name,call", calls(), ids=[n for n, _ in calls()])
def test_on_truncation_policies(name: str, call: Callable[..., Any]) -> None:
    texts = ["fits", "word " * 3000, "fits too", "word " * 4000]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default says nothing, as sentence-transformers
        quiet = call(texts)
        call(texts, on_truncation="ignore")
    with pytest.warns(
        TruncationWarning, match=r"2 of 4 inputs were longer than the model's limit of \d+ tokens"
    ) as caught:
        warned = call(texts, on_truncation="warn")
    assert caught[0].filename == __file__  # points at the caller's line
    assert_same(quiet, warned)
    with pytest.raises(TokenizationError, match=r"inputs 1, 3: 2 of 4 are longer") as error:
        call(texts, on_truncation="error")
    assert isinstance(error.value, ValueError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call([texts[0], texts[2]], on_truncation="warn")  # nothing cut, nothing said
        call([texts[0], texts[2]], on_truncation="error")
    with pytest.raises(tessera.ConfigError, match="on_truncation must be"):
        call(texts, on_truncation="raise")


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif hasattr(a, "toarray"):
        np.testing.assert_array_equal(a.toarray(), b.toarray())
    elif isinstance(a, tessera.SparseEmbedding):
        assert a == b
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_one_cut_input_is_named_in_the_singular() -> None:
    with pytest.warns(TruncationWarning, match="1 of 1 inputs was longer"):
        DENSE.encode(words(500), on_truncation="warn")
    with pytest.raises(TokenizationError, match="input 0: 1 of 1 is longer"):
        DENSE.encode(words(500), on_truncation="error")
    many = [words(500)] * 12
    with pytest.raises(TokenizationError, match=r"0, 1, 2, 3, 4, 5, 6, 7, \.\.\. \(12 in all\)"):
        DENSE.encode(many, on_truncation="error")
