"""What reduced precision costs on your texts: a model's bf16 or int8 outputs against
the same model's f32 outputs, as cosines and as ranking agreement.

>>> report = tessera.check_precision(Tessera("all-minilm-l6-v2", quantize="int8"), texts)
>>> report.min_cosine, report.ranking_agreement
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from tessera.exceptions import ConfigError

if TYPE_CHECKING:
    from tessera import TesseraDense, TesseraMultiVector, TesseraSparse

_TextModel = Union["TesseraDense", "TesseraSparse", "TesseraMultiVector"]

#: Varied English sentences for a first look when no texts are given: questions,
#: statements, code, numbers, lists; short and long.
SAMPLE_TEXTS: tuple[str, ...] = (
    "How do I reset my password?",
    "The password can be changed from the account settings page.",
    "What is the capital of Australia?",
    "Canberra was chosen as the capital of Australia in 1908 as a compromise.",
    "Late interaction keeps one vector per token and scores with MaxSim.",
    "ColBERT compares every query token with every document token.",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 10;",
    "The quarterly revenue rose 12.5% to $4.2 billion, beating estimates.",
    "Inflation eased to 2.4 percent in October, the lowest in three years.",
    "Mix the flour, sugar and butter, then bake at 180 °C for 25 minutes.",
    "A gentle walk after dinner helps digestion and improves sleep.",
    "The patient presented with fever, cough and shortness of breath.",
    "Antibiotics do not work against viral infections such as influenza.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Mitochondria produce most of the chemical energy a cell needs.",
    "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
    "Napoleon was defeated at Waterloo in June 1815.",
    "Quantum computers use qubits, which can hold superpositions of states.",
    "Classical bits are either zero or one.",
    "The train to Paris leaves from platform 9 at 14:35.",
    "Flights were cancelled because of the storm.",
    "Our return policy allows refunds within 30 days of purchase.",
    "Items bought on sale cannot be exchanged.",
    "GPUs run thousands of threads in parallel to speed up matrix products.",
    "Vector databases index embeddings for approximate nearest-neighbour search.",
    "Binary quantization keeps one bit per dimension.",
    "The cat sat on the mat.",
    "A dog barked at the mailman all morning.",
    "Rain is expected tomorrow afternoon, with temperatures around 14 degrees.",
    "Solar panels convert sunlight directly into electricity.",
    "Wind turbines generate power from moving air.",
    "The novel follows a family across three generations in rural Ireland.",
    "Jazz emerged in New Orleans in the early twentieth century.",
    "Regular exercise lowers the risk of heart disease.",
    "Transformers replaced recurrent networks in most language tasks.",
    "Tokenizers split text into sub-word pieces from a fixed vocabulary.",
    "Shipping is free for orders over fifty euros.",
    "The meeting has been moved to Thursday at 10 a.m.",
    "Please find attached the signed contract and the invoice for March.",
)


@dataclass(frozen=True)
class PrecisionReport:
    """How close a reduced-precision model stays to its f32 self on some texts.

    ``min_cosine`` / ``mean_cosine`` compare each output vector with its f32 twin (one
    per text for dense and sparse models, one per token for multi-vector ones).
    ``ranking_agreement`` is the mean share of the f32 top ``top_k`` that the reduced
    model also ranks in its top ``top_k``, with each text as a query against the
    others (cosine for dense, dot product for sparse, MaxSim for multi-vector).
    ``term_agreement`` (sparse only) is the mean share of each text's top ``terms``
    vocabulary terms kept.
    """

    model: str
    paradigm: str
    precision: str
    texts: int
    min_cosine: float
    mean_cosine: float
    top_k: int
    ranking_agreement: float | None
    terms: int | None = None
    term_agreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"{self.model} ({self.paradigm}), {self.precision} against f32, {self.texts} texts",
            f"  cosine to f32      min {self.min_cosine:.5f}  mean {self.mean_cosine:.5f}",
        ]
        if self.ranking_agreement is not None:
            lines.append(f"  top-{self.top_k} ranking kept  {self.ranking_agreement:.3f}")
        if self.term_agreement is not None:
            lines.append(f"  top-{self.terms} terms kept    {self.term_agreement:.3f}")
        return "\n".join(lines)


def _f32_twin(model: _TextModel, settings: dict[str, Any]) -> _TextModel:
    """The same model and options in f32, rebuilt the way unpickling rebuilds it."""
    reduced: Any = model.__reduce__()
    restore, (paradigm, _) = reduced
    full = {key: value for key, value in settings.items() if key != "quantize"}
    full["dtype"] = "f32"
    twin: _TextModel = restore(paradigm, json.dumps(full))
    return twin


def _settings(model: _TextModel) -> tuple[str, dict[str, Any]]:
    reduced: Any = model.__reduce__()
    _, (paradigm, settings) = reduced
    return paradigm, json.loads(settings)


def _precision_of(settings: dict[str, Any]) -> str:
    if settings.get("quantize"):
        return str(settings["quantize"])
    return str(settings.get("dtype", "f32"))


def _cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    dots = (a64 * b64).sum(axis=1)
    # Two zero vectors agree; one zero vector against a non-zero one does not.
    return np.where(
        norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(dots == 0, 1.0, 0.0)
    )


def _top_k_overlap(
    reference: npt.NDArray[np.float64], reduced: npt.NDArray[np.float64], k: int
) -> float:
    """Mean share of each row's top ``k`` columns (the diagonal excluded) kept."""
    n = reference.shape[0]
    kept = []
    for i in range(n):
        ref_row, red_row = reference[i].copy(), reduced[i].copy()
        ref_row[i] = red_row[i] = -np.inf
        want = set(np.argsort(-ref_row, kind="stable")[:k].tolist())
        got = set(np.argsort(-red_row, kind="stable")[:k].tolist())
        kept.append(len(want & got) / k)
    return float(np.mean(kept))


def _maxsim(
    queries: list[npt.NDArray[np.float32]], docs: list[npt.NDArray[np.float32]]
) -> npt.NDArray[np.float64]:
    scores = np.zeros((len(queries), len(docs)))
    for i, q in enumerate(queries):
        for j, d in enumerate(docs):
            scores[i, j] = (q.astype(np.float64) @ d.astype(np.float64).T).max(axis=1).sum()
    return scores


_Matrix = npt.NDArray[np.float64]


def _unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    unit: npt.NDArray[np.float32] = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return unit


def _gram(x: npt.NDArray[np.float32]) -> _Matrix:
    x64 = x.astype(np.float64)
    return x64 @ x64.T


def _term_overlap(ref: npt.NDArray[np.float32], red: npt.NDArray[np.float32], terms: int) -> float:
    """Mean share of each text's top ``terms`` vocabulary terms that the reduced model keeps."""
    kept = []
    for a, b in zip(ref, red):
        count = min(terms, int(np.count_nonzero(a)))
        if count == 0:
            continue
        top_a = set(np.argsort(-a, kind="stable")[:count].tolist())
        top_b = set(np.argsort(-b, kind="stable")[:count].tolist())
        kept.append(len(top_a & top_b) / count)
    return float(np.mean(kept)) if kept else 1.0


def _compare_token_matrices(
    reference: TesseraMultiVector, model: TesseraMultiVector, texts: list[str]
) -> tuple[npt.NDArray[np.float64], _Matrix, _Matrix]:
    """Per-token cosines (documents and queries) and both MaxSim matrices."""
    ref_docs, red_docs = reference.encode_document(texts), model.encode_document(texts)
    ref_queries, red_queries = reference.encode_query(texts), model.encode_query(texts)
    cosines = np.concatenate(
        [_cosines(a, b) for a, b in zip(ref_docs + ref_queries, red_docs + red_queries)]
    )
    return cosines, _maxsim(ref_queries, ref_docs), _maxsim(red_queries, red_docs)


def check_precision(
    model: _TextModel | str,
    texts: Sequence[str] | str | None = None,
    *,
    dtype: str | None = None,
    quantize: str | None = None,
    top_k: int = 10,
    terms: int = 20,
) -> PrecisionReport:
    """Compares ``model`` (loaded with ``dtype="bf16"`` or ``quantize="int8"``) with the
    same model in f32 on ``texts`` (a built-in sample of 40 sentences when None).

    ``model`` may also be a model name, loaded with the ``dtype`` / ``quantize`` given.
    Raises ``ConfigError`` when the model already runs in f32 or is not a text model.
    """
    import tessera

    if isinstance(model, str):
        if dtype is None and quantize is None:
            raise ConfigError(
                "give dtype='bf16' (or 'auto') or quantize='int8' to compare with f32"
            )
        options: dict[str, Any] = {}
        if dtype is not None:
            options["dtype"] = dtype
        if quantize is not None:
            options["quantize"] = quantize
        try:
            loaded: Any = tessera.Tessera(model, **options)
        except TypeError as error:
            # Only the text encoders take quantize=.
            raise ConfigError(
                f"check_precision compares text models (dense, sparse, multi-vector): {error}"
            ) from error
        model = loaded
    elif dtype is not None or quantize is not None:
        raise ConfigError(
            "dtype= and quantize= apply to a model name; this model is already loaded"
        )
    if not isinstance(
        model, (tessera.TesseraDense, tessera.TesseraSparse, tessera.TesseraMultiVector)
    ):
        kind = type(model).__name__
        raise ConfigError(
            f"check_precision compares text models (dense, sparse, multi-vector), not {kind}"
        )
    # A str is one text (as in sentence-transformers), not a sequence of characters.
    texts = [texts] if isinstance(texts, str) else list(SAMPLE_TEXTS if texts is None else texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ConfigError("texts must be a non-empty list of str")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a positive int, not {top_k!r}")
    if isinstance(terms, bool) or not isinstance(terms, int) or terms < 1:
        raise ConfigError(f"terms must be a positive int, not {terms!r}")
    paradigm, settings = _settings(model)
    precision = _precision_of(settings)
    if precision in ("f32", "float32"):
        raise ConfigError(
            "this model runs in f32: load it with dtype='bf16' or quantize='int8' to check "
            "what that precision costs"
        )
    reference = _f32_twin(model, settings)
    k = min(top_k, len(texts) - 1)
    name = str(settings.get("model", "?"))

    term_agreement: float | None = None
    if isinstance(model, tessera.TesseraMultiVector) and isinstance(
        reference, tessera.TesseraMultiVector
    ):
        cosines, scores_ref, scores_red = _compare_token_matrices(reference, model, texts)
    else:
        ref = np.asarray(reference.encode(texts, output="array"), dtype=np.float32)
        red = np.asarray(model.encode(texts, output="array"), dtype=np.float32)
        cosines = _cosines(ref, red)
        if isinstance(model, tessera.TesseraSparse):
            # Dot products rank sparse vectors; their largest terms are what an index keeps.
            scores_ref, scores_red = _gram(ref), _gram(red)
            term_agreement = _term_overlap(ref, red, terms)
        else:
            scores_ref, scores_red = _gram(_unit(ref)), _gram(_unit(red))
    return PrecisionReport(
        name,
        paradigm,
        precision,
        len(texts),
        float(cosines.min()),
        float(cosines.mean()),
        k,
        _top_k_overlap(scores_ref, scores_red, k) if k >= 1 else None,
        terms if term_agreement is not None else None,
        term_agreement,
    )
