"""Type stubs for tessera (installed as tessera/__init__.pyi)."""

import os
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Literal, Union, final, overload

import numpy as np
import numpy.typing as npt

from tessera.exceptions import (
    ConfigError as ConfigError,
)
from tessera.exceptions import (
    DeviceError as DeviceError,
)
from tessera.exceptions import (
    DimensionMismatchError as DimensionMismatchError,
)
from tessera.exceptions import (
    EncodingError as EncodingError,
)
from tessera.exceptions import (
    MatryoshkaError as MatryoshkaError,
)
from tessera.exceptions import (
    ModelLoadError as ModelLoadError,
)
from tessera.exceptions import (
    ModelNotFoundError as ModelNotFoundError,
)
from tessera.exceptions import (
    OutOfMemoryError as OutOfMemoryError,
)
from tessera.exceptions import (
    QuantizationError as QuantizationError,
)
from tessera.exceptions import (
    TensorError as TensorError,
)
from tessera.exceptions import (
    TesseraError as TesseraError,
)
from tessera.exceptions import (
    TesseraIOError as TesseraIOError,
)
from tessera.exceptions import (
    TokenizationError as TokenizationError,
)
from tessera.exceptions import (
    TruncationWarning as TruncationWarning,
)
from tessera.exceptions import (
    UnsupportedDimensionError as UnsupportedDimensionError,
)
from tessera.muvera import Muvera as Muvera
from tessera.precision import PrecisionReport as PrecisionReport
from tessera.precision import check_precision as check_precision

__version__: str

__all__ = [
    "ConfigError",
    "DenseEmbedding",
    "Device",
    "DeviceError",
    "DimensionMismatchError",
    "EncodingError",
    "Forecast",
    "MatryoshkaError",
    "ModelLoadError",
    "ModelNotFoundError",
    "Muvera",
    "OutOfMemoryError",
    "PrecisionReport",
    "QuantizationConfig",
    "QuantizationError",
    "QuantizedEmbeddings",
    "RaggedEmbeddings",
    "SparseEmbedding",
    "TensorError",
    "Tessera",
    "TesseraDense",
    "TesseraDenseBuilder",
    "TesseraError",
    "TesseraIOError",
    "TesseraMultiVector",
    "TesseraMultiVectorBuilder",
    "TesseraSparse",
    "TesseraSparseBuilder",
    "TesseraTimeSeries",
    "TesseraTimeSeriesBuilder",
    "TesseraVision",
    "TesseraVisionBuilder",
    "TokenEmbeddings",
    "TokenizationError",
    "TruncationWarning",
    "UnsupportedDimensionError",
    "VisionEmbedding",
    "__version__",
    "available_devices",
    "check_precision",
    "list_models",
    "pool_embeddings",
    "quantize",
    "quantize_embeddings",
]

_ModelName = str | os.PathLike[str]
_DeviceLike = Union["Device", str]
_DType = Literal["f32", "f16", "bf16", "float32", "float16", "bfloat16", "auto"]
_Quantize = Literal["int8"]
_F32Vector = npt.NDArray[np.float32]
_F32Matrix = npt.NDArray[np.float32]

@final
class Device:
    """A compute device: ``Device.Cpu``, ``Device.Cuda`` (index 0), ``Device.cuda(i)``,
    ``Device.Metal`` or ``Device.Auto``."""

    Cpu: ClassVar[Device]
    Cuda: ClassVar[Device]
    Metal: ClassVar[Device]
    Auto: ClassVar[Device]
    @staticmethod
    def cuda(index: int = 0) -> Device: ...
    @staticmethod
    def parse(name: str) -> Device: ...
    @property
    def index(self) -> int | None: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def available_devices() -> list[str]:
    """Devices this build can use, in auto-selection order."""

def list_models(paradigm: str | None = None) -> list[dict[str, Any]]:
    """The model registry, optionally filtered by paradigm."""

# ids:start
_DenseId = Literal[
    "Alibaba-NLP/gte-large-en-v1.5",
    "Alibaba-NLP/gte-multilingual-base",
    "BAAI/bge-base-en-v1.5",
    "BAAI/bge-large-en-v1.5",
    "BAAI/bge-m3",
    "BAAI/bge-small-en-v1.5",
    "Qwen/Qwen3-Embedding-0.6B",
    "Snowflake/snowflake-arctic-embed-l-v2.0",
    "Snowflake/snowflake-arctic-embed-m-v2.0",
    "all-minilm-l6-v2",
    "bge-base-en-v1.5",
    "bge-large-en-v1.5",
    "bge-m3",
    "bge-small-en-v1.5",
    "embeddinggemma-300m",
    "google/embeddinggemma-300m",
    "gte-large-en-v1.5",
    "gte-multilingual-base",
    "intfloat/multilingual-e5-large",
    "jina-embeddings-v2-base-en",
    "jina-embeddings-v3",
    "jinaai/jina-embeddings-v2-base-en",
    "jinaai/jina-embeddings-v3",
    "modernbert-embed-base",
    "multilingual-e5-large",
    "nomic-ai/modernbert-embed-base",
    "nomic-ai/nomic-embed-text-v1.5",
    "nomic-embed-text-v1.5",
    "qwen3-embedding-0.6b",
    "sentence-transformers/all-MiniLM-L6-v2",
    "snowflake-arctic-embed-l-v2.0",
    "snowflake-arctic-embed-m-v2.0",
]
_SparseId = Literal[
    "naver/splade-cocondenser-ensembledistil",
    "naver/splade-v3",
    "prithivida/Splade_PP_en_v1",
    "prithivida/Splade_PP_en_v2",
    "splade-cocondenser",
    "splade-pp-en-v1",
    "splade-pp-en-v2",
    "splade-v3",
]
_MultiVectorId = Literal[
    "answerdotai/answerai-colbert-small-v1",
    "colbert-ir/colbertv2.0",
    "colbert-small",
    "colbert-v2",
    "gte-modern-colbert",
    "jina-colbert-v2",
    "jinaai/jina-colbert-v2",
    "lightonai/GTE-ModernColBERT-v1",
]
_TimeSeriesId = Literal[
    "amazon/chronos-bolt-base",
    "amazon/chronos-bolt-mini",
    "amazon/chronos-bolt-small",
    "amazon/chronos-bolt-tiny",
    "chronos-bolt-base",
    "chronos-bolt-mini",
    "chronos-bolt-small",
    "chronos-bolt-tiny",
]
_VisionId = Literal[
    "colpali-v1.2",
    "colpali-v1.3-hf",
    "vidore/colpali-v1.2-merged",
    "vidore/colpali-v1.3-hf",
]

@overload
def Tessera(model: _DenseId, **options: Any) -> TesseraDense: ...
@overload
def Tessera(model: _SparseId, **options: Any) -> TesseraSparse: ...
@overload
def Tessera(model: _MultiVectorId, **options: Any) -> TesseraMultiVector: ...
@overload
def Tessera(model: _TimeSeriesId, **options: Any) -> TesseraTimeSeries: ...
@overload
def Tessera(model: _VisionId, **options: Any) -> TesseraVision: ...

# ids:end
@overload
def Tessera(
    model: _ModelName, **options: Any
) -> TesseraDense | TesseraMultiVector | TesseraSparse | TesseraTimeSeries | TesseraVision:
    """The embedder for ``model``'s paradigm (registry id, repo id or directory)."""

_Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
_OnTruncation = Literal["ignore", "warn", "error"]

@final
class TesseraDense:
    """Dense text embeddings: one vector per text."""

    def __new__(
        cls,
        model: _ModelName,
        *,
        device: _DeviceLike | None = None,
        dtype: _DType | None = None,
        quantize: _Quantize | None = None,
        revision: str | None = None,
        max_length: int | None = None,
        batch_size: int | None = None,
        dimension: int | None = None,
        normalize: bool | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
    ) -> TesseraDense: ...
    @staticmethod
    def builder() -> TesseraDenseBuilder: ...
    @overload
    def encode(
        self,
        sentences: str,
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        normalize_embeddings: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        truncate_dim: int | None = None,
        precision: _Precision = "float32",
        convert_to_numpy: bool = True,
        on_truncation: _OnTruncation = "ignore",
    ) -> npt.NDArray[Any]: ...
    @overload
    def encode(  # type: ignore[overload-overlap]
        self,
        sentences: str,
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        normalize_embeddings: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        truncate_dim: int | None = None,
        precision: _Precision = "float32",
        convert_to_numpy: bool = True,
        on_truncation: _OnTruncation = "ignore",
    ) -> DenseEmbedding: ...
    @overload
    def encode(
        self,
        sentences: Sequence[str],
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        normalize_embeddings: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        truncate_dim: int | None = None,
        precision: _Precision = "float32",
        convert_to_numpy: bool = True,
        on_truncation: _OnTruncation = "ignore",
    ) -> npt.NDArray[Any]: ...
    @overload
    def encode(
        self,
        sentences: Sequence[str],
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        normalize_embeddings: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        truncate_dim: int | None = None,
        precision: _Precision = "float32",
        convert_to_numpy: bool = True,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[DenseEmbedding]: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @property
    def similarity_fn_name(self) -> Literal["cosine", "dot", "euclidean", "manhattan"]: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[DenseEmbedding]: ...
    @overload
    def encode_query(
        self,
        text: str,
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Vector: ...
    @overload
    def encode_query(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> DenseEmbedding: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[DenseEmbedding]: ...
    @overload
    def encode_document(
        self,
        text: str,
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Vector: ...
    @overload
    def encode_document(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> DenseEmbedding: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[DenseEmbedding]: ...
    @overload
    def similarity(  # type: ignore[overload-overlap]
        self, a: str | _F32Vector, b: str | _F32Vector
    ) -> float: ...
    @overload
    def similarity(
        self, a: Sequence[str] | npt.ArrayLike, b: Sequence[str] | npt.ArrayLike
    ) -> _F32Matrix: ...
    def dimension(self) -> int: ...
    def aencode(self, inputs: str | Sequence[str], **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def aencode_query(
        self, inputs: str | Sequence[str], **kwargs: Any
    ) -> Coroutine[Any, Any, Any]: ...
    def aencode_document(
        self, inputs: str | Sequence[str], **kwargs: Any
    ) -> Coroutine[Any, Any, Any]: ...
    def encode_stream(
        self,
        inputs: Iterable[Any],
        *,
        batch_size: int | None = None,
        column: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]: ...
    def model(self) -> str: ...
    def max_length(self) -> int: ...
    def tokenize(self, text: str) -> list[int]: ...
    @overload
    def count_tokens(self, texts: str) -> int: ...  # type: ignore[overload-overlap]
    @overload
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

@final
class TesseraDenseBuilder:
    """Fluent configuration of a :class:`TesseraDense`; each setter validates at once."""

    def __new__(cls) -> TesseraDenseBuilder: ...
    def model(self, model: _ModelName) -> TesseraDenseBuilder: ...
    def device(self, device: _DeviceLike) -> TesseraDenseBuilder: ...
    def dtype(self, dtype: _DType) -> TesseraDenseBuilder: ...
    def quantize(self, value: _Quantize) -> TesseraDenseBuilder: ...
    def revision(self, revision: str) -> TesseraDenseBuilder: ...
    def max_length(self, value: int) -> TesseraDenseBuilder: ...
    def batch_size(self, batch_size: int) -> TesseraDenseBuilder: ...
    def dimension(self, value: int) -> TesseraDenseBuilder: ...
    def normalize(self, value: bool) -> TesseraDenseBuilder: ...
    def query_prefix(self, value: str) -> TesseraDenseBuilder: ...
    def document_prefix(self, value: str) -> TesseraDenseBuilder: ...
    def build(self) -> TesseraDense: ...

@final
class SparseEmbedding:
    """A sparse vector over a vocabulary: term ids (ascending, int32) and weights (float32)."""

    def __new__(
        cls,
        indices: npt.ArrayLike,
        values: npt.ArrayLike,
        vocab_size: int,
        num_tokens: int | None = None,
        truncated: bool = False,
    ) -> SparseEmbedding: ...
    @property
    def num_tokens(self) -> int | None: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def indices(self) -> npt.NDArray[np.int32]: ...
    @property
    def values(self) -> npt.NDArray[np.float32]: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def sparsity(self) -> float: ...
    def to_dict(self) -> dict[int, float]: ...
    def tokens(self, top_k: int | None = None) -> list[tuple[str, float]]: ...
    def to_dense(self) -> npt.NDArray[np.float32]: ...
    def to_scipy(self) -> Any: ...
    def dot(self, other: SparseEmbedding) -> float: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class TesseraSparse:
    """Sparse lexical embeddings (SPLADE): one weight per vocabulary term."""

    def __new__(
        cls,
        model: _ModelName,
        *,
        device: _DeviceLike | None = None,
        dtype: _DType | None = None,
        quantize: _Quantize | None = None,
        revision: str | None = None,
        max_length: int | None = None,
        batch_size: int | None = None,
        top_k: int | None = None,
        min_weight: float | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
    ) -> TesseraSparse: ...
    @staticmethod
    def builder() -> TesseraSparseBuilder: ...
    @overload
    def encode(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        on_truncation: _OnTruncation = "ignore",
    ) -> SparseEmbedding: ...
    @overload
    def encode(
        self,
        text: str,
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Vector: ...
    @overload
    def encode(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[SparseEmbedding]: ...
    @overload
    def encode(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode(
        self,
        text: Sequence[str],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    @overload
    def encode(
        self,
        text: Sequence[str],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    def dimension(self) -> int: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[SparseEmbedding]: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    @overload
    def encode_query(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> SparseEmbedding: ...
    @overload
    def encode_query(
        self,
        text: str,
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Vector: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[SparseEmbedding]: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    @overload
    def encode_document(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> SparseEmbedding: ...
    @overload
    def encode_document(
        self,
        text: str,
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Vector: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[SparseEmbedding]: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    def encode_csr(
        self,
        texts: Iterable[str],
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    def similarity(self, a: SparseEmbedding | str, b: SparseEmbedding | str) -> float: ...
    def similarity_matrix(
        self,
        queries: Sequence[SparseEmbedding] | Sequence[str],
        documents: Sequence[SparseEmbedding] | Sequence[str],
    ) -> _F32Matrix: ...
    def decode(
        self, embedding: SparseEmbedding, top_k: int | None = None
    ) -> list[tuple[str, float]]: ...
    def vocab_size(self) -> int: ...
    def aencode(self, inputs: str | Sequence[str], **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def aencode_query(
        self, inputs: str | Sequence[str], **kwargs: Any
    ) -> Coroutine[Any, Any, Any]: ...
    def aencode_document(
        self, inputs: str | Sequence[str], **kwargs: Any
    ) -> Coroutine[Any, Any, Any]: ...
    def encode_stream(
        self,
        inputs: Iterable[Any],
        *,
        batch_size: int | None = None,
        column: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]: ...
    def model(self) -> str: ...
    def max_length(self) -> int: ...
    def tokenize(self, text: str) -> list[int]: ...
    @overload
    def count_tokens(self, texts: str) -> int: ...  # type: ignore[overload-overlap]
    @overload
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

@final
class TesseraSparseBuilder:
    """Fluent configuration of a :class:`TesseraSparse`; each setter validates at once."""

    def __new__(cls) -> TesseraSparseBuilder: ...
    def model(self, model: _ModelName) -> TesseraSparseBuilder: ...
    def device(self, device: _DeviceLike) -> TesseraSparseBuilder: ...
    def dtype(self, dtype: _DType) -> TesseraSparseBuilder: ...
    def quantize(self, value: _Quantize) -> TesseraSparseBuilder: ...
    def revision(self, revision: str) -> TesseraSparseBuilder: ...
    def max_length(self, value: int) -> TesseraSparseBuilder: ...
    def batch_size(self, batch_size: int) -> TesseraSparseBuilder: ...
    def top_k(self, value: int) -> TesseraSparseBuilder: ...
    def min_weight(self, value: float) -> TesseraSparseBuilder: ...
    def query_prefix(self, value: str) -> TesseraSparseBuilder: ...
    def document_prefix(self, value: str) -> TesseraSparseBuilder: ...
    def build(self) -> TesseraSparse: ...

_Context = npt.ArrayLike | Sequence[npt.ArrayLike]

@final
class TesseraTimeSeries:
    """Probabilistic forecasting with Chronos-Bolt."""

    def __new__(
        cls,
        model: _ModelName,
        *,
        device: _DeviceLike | None = None,
        dtype: _DType | None = None,
        revision: str | None = None,
        batch_size: int | None = None,
        prediction_length: int | None = None,
    ) -> TesseraTimeSeries: ...
    @staticmethod
    def builder() -> TesseraTimeSeriesBuilder: ...
    @overload
    def forecast(
        self,
        context: _Context,
        prediction_length: int | None = None,
        *,
        output: Literal["array"] = "array",
        show_progress: bool = False,
    ) -> _F32Matrix: ...
    @overload
    def forecast(
        self,
        context: _Context,
        prediction_length: int | None = None,
        *,
        output: Literal["object"],
        show_progress: bool = False,
    ) -> list[Forecast]: ...
    @overload
    def forecast_quantiles(
        self,
        context: _Context,
        prediction_length: int | None = None,
        quantile_levels: Sequence[float] | None = None,
        *,
        output: Literal["array"] = "array",
        show_progress: bool = False,
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def forecast_quantiles(
        self,
        context: _Context,
        prediction_length: int | None = None,
        quantile_levels: Sequence[float] | None = None,
        *,
        output: Literal["object"],
        show_progress: bool = False,
    ) -> list[Forecast]: ...
    def embed(
        self, context: _Context
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def encode(
        self, context: _Context
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def max_length(self) -> int: ...
    def prediction_length(self) -> int: ...
    def context_length(self) -> int: ...
    def quantiles(self) -> list[float]: ...
    def aforecast(self, inputs: _Context, **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def aforecast_quantiles(self, inputs: _Context, **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def aencode(self, inputs: _Context, **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def forecast_stream(
        self,
        inputs: Iterable[Any],
        *,
        batch_size: int | None = None,
        column: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]: ...
    def encode_stream(
        self,
        inputs: Iterable[Any],
        *,
        batch_size: int | None = None,
        column: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]: ...
    def model(self) -> str: ...

@final
class TesseraTimeSeriesBuilder:
    """Fluent configuration of a :class:`TesseraTimeSeries`; each setter validates at once."""

    def __new__(cls) -> TesseraTimeSeriesBuilder: ...
    def model(self, model: _ModelName) -> TesseraTimeSeriesBuilder: ...
    def device(self, device: _DeviceLike) -> TesseraTimeSeriesBuilder: ...
    def dtype(self, dtype: _DType) -> TesseraTimeSeriesBuilder: ...
    def revision(self, revision: str) -> TesseraTimeSeriesBuilder: ...
    def batch_size(self, batch_size: int) -> TesseraTimeSeriesBuilder: ...
    def prediction_length(self, value: int) -> TesseraTimeSeriesBuilder: ...
    def build(self) -> TesseraTimeSeries: ...

_Quantization = Union["QuantizationConfig", Literal["none", "binary", "int8", "int4"]]
_TokenMatrix = Union[npt.NDArray[np.float32], npt.NDArray[np.float64], "TokenEmbeddings"]

@final
class QuantizationConfig:
    """How token matrices are stored: ``None_`` (``NONE``), ``Binary``, ``Int8``, ``Int4``."""

    None_: ClassVar[QuantizationConfig]
    NONE: ClassVar[QuantizationConfig]
    Binary: ClassVar[QuantizationConfig]
    Int8: ClassVar[QuantizationConfig]
    Int4: ClassVar[QuantizationConfig]
    @staticmethod
    def parse(name: str) -> QuantizationConfig: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class QuantizedEmbeddings:
    """A quantized token matrix; ``data`` is ``(num_tokens, bytes_per_token)`` uint8."""

    def __new__(
        cls,
        data: npt.NDArray[np.uint8],
        original_dim: int,
        precision: _Quantization,
        scales: list[float] | None = None,
    ) -> QuantizedEmbeddings: ...
    @property
    def data(self) -> npt.NDArray[np.uint8]: ...
    @property
    def bits(self) -> npt.NDArray[np.uint8]: ...
    @property
    def scales(self) -> list[float]: ...
    @property
    def precision(self) -> QuantizationConfig: ...
    @property
    def original_dim(self) -> int: ...
    @property
    def num_tokens(self) -> int: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    def memory_bytes(self) -> int: ...
    def compression_ratio(self) -> float: ...
    def dequantize(self) -> _F32Matrix: ...
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class TokenEmbeddings:
    """A text's token matrix with the token each row belongs to."""

    def __new__(
        cls,
        embeddings: npt.NDArray[np.floating[Any]],
        text: str | None = None,
        tokens: list[str] | None = None,
        token_ids: list[int] | None = None,
        truncated: bool = False,
    ) -> TokenEmbeddings: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def embeddings(self) -> _F32Matrix: ...
    @property
    def text(self) -> str: ...
    @property
    def tokens(self) -> list[str]: ...
    @property
    def token_ids(self) -> list[int]: ...
    @property
    def num_tokens(self) -> int: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...

def pool_embeddings(
    embeddings: npt.NDArray[np.floating[Any]],
    pool_factor: int,
    *,
    style: Literal["pylate", "colpali"] = "pylate",
    protected_tokens: int = 1,
) -> _F32Matrix:
    """Hierarchical token pooling of one token matrix (PyLate's or colpali-engine's)."""

def quantize(
    embeddings: npt.NDArray[np.floating[Any]], quantization: _Quantization | None = None
) -> QuantizedEmbeddings:
    """Quantizes a token matrix (binary by default)."""

def quantize_embeddings(
    embeddings: npt.NDArray[np.floating[Any]],
    precision: Literal["float32", "int8", "uint8", "binary", "ubinary"],
    *,
    ranges: npt.NDArray[np.floating[Any]] | None = None,
    calibration_embeddings: npt.NDArray[np.floating[Any]] | None = None,
) -> npt.NDArray[Any]:
    """sentence-transformers' ``quantize_embeddings`` semantics."""

@final
class TesseraMultiVector:
    """Late-interaction (ColBERT) embeddings: one vector per token, scored with MaxSim."""

    def __new__(
        cls,
        model: _ModelName,
        *,
        device: _DeviceLike | None = None,
        dtype: _DType | None = None,
        quantize: _Quantize | None = None,
        revision: str | None = None,
        max_length: int | None = None,
        query_length: int | None = None,
        batch_size: int | None = None,
        dimension: int | None = None,
        quantization: _Quantization | None = None,
    ) -> TesseraMultiVector: ...
    @staticmethod
    def builder() -> TesseraMultiVectorBuilder: ...
    @overload
    def encode(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["array"] = "array",
        is_query: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> _F32Matrix: ...
    @overload
    def encode(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"],
        is_query: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> TokenEmbeddings: ...
    @overload
    def encode(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"] = "array",
        is_query: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> list[_F32Matrix]: ...
    @overload
    def encode(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"],
        is_query: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> list[TokenEmbeddings]: ...
    @overload
    def encode(
        self,
        text: Sequence[str],
        *,
        output: Literal["flat"],
        is_query: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> RaggedEmbeddings: ...
    @overload
    def encode(
        self,
        text: Sequence[str],
        *,
        output: Literal["arrow"],
        is_query: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        show_progress_bar: bool | None = None,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> Any: ...
    @overload
    def encode_query(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode_query(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> TokenEmbeddings: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[_F32Matrix]: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[TokenEmbeddings]: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> RaggedEmbeddings: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    @overload
    def encode_document(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> _F32Matrix: ...
    @overload
    def encode_document(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> TokenEmbeddings: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> list[_F32Matrix]: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> list[TokenEmbeddings]: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> RaggedEmbeddings: ...
    @overload
    def encode_document(
        self,
        text: Sequence[str],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> Any: ...
    def max_length(self) -> int: ...
    @overload
    def count_tokens(self, texts: str) -> int: ...  # type: ignore[overload-overlap]
    @overload
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        is_query: bool = False,
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> list[_F32Matrix]: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        is_query: bool = False,
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> list[TokenEmbeddings]: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        is_query: bool = False,
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> RaggedEmbeddings: ...
    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        is_query: bool = False,
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
        pool_factor: int | None = None,
        protected_tokens: int = 1,
    ) -> Any: ...
    def similarity(self, query: _TokenMatrix | str, document: _TokenMatrix | str) -> float: ...
    def similarity_matrix(
        self,
        queries: Sequence[_TokenMatrix] | Sequence[str],
        documents: Sequence[_TokenMatrix] | Sequence[str],
    ) -> _F32Matrix: ...
    def rank(
        self,
        query: _TokenMatrix | str,
        documents: Sequence[_TokenMatrix] | Sequence[str],
        top_k: int = 10,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def quantize(self, embeddings: npt.NDArray[np.floating[Any]]) -> QuantizedEmbeddings: ...
    def encode_quantized(self, text: str, is_query: bool = False) -> QuantizedEmbeddings: ...
    def similarity_quantized(
        self, query: QuantizedEmbeddings, document: QuantizedEmbeddings
    ) -> float: ...
    def dimension(self) -> int: ...
    def aencode(self, inputs: str | Sequence[str], **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def aencode_query(
        self, inputs: str | Sequence[str], **kwargs: Any
    ) -> Coroutine[Any, Any, Any]: ...
    def aencode_document(
        self, inputs: str | Sequence[str], **kwargs: Any
    ) -> Coroutine[Any, Any, Any]: ...
    def encode_stream(
        self,
        inputs: Iterable[Any],
        *,
        batch_size: int | None = None,
        column: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]: ...
    def model(self) -> str: ...
    def query_length(self) -> int: ...
    def document_length(self) -> int: ...
    def quantization(self) -> QuantizationConfig: ...

@final
class TesseraMultiVectorBuilder:
    """Fluent configuration of a :class:`TesseraMultiVector`; each setter validates at once."""

    def __new__(cls) -> TesseraMultiVectorBuilder: ...
    def model(self, model: _ModelName) -> TesseraMultiVectorBuilder: ...
    def device(self, device: _DeviceLike) -> TesseraMultiVectorBuilder: ...
    def dtype(self, dtype: _DType) -> TesseraMultiVectorBuilder: ...
    def quantize(self, value: _Quantize) -> TesseraMultiVectorBuilder: ...
    def revision(self, revision: str) -> TesseraMultiVectorBuilder: ...
    def batch_size(self, batch_size: int) -> TesseraMultiVectorBuilder: ...
    def max_length(self, value: int) -> TesseraMultiVectorBuilder: ...
    def query_length(self, value: int) -> TesseraMultiVectorBuilder: ...
    def dimension(self, value: int) -> TesseraMultiVectorBuilder: ...
    def quantization(self, value: _Quantization) -> TesseraMultiVectorBuilder: ...
    def build(self) -> TesseraMultiVector: ...

@final
class DenseEmbedding:
    """A dense vector with the text it came from and the tokens the model saw."""

    def __new__(
        cls,
        embedding: npt.NDArray[np.float32],
        text: str | None = None,
        tokens: list[str] | None = None,
        truncated: bool = False,
    ) -> DenseEmbedding: ...
    @property
    def num_tokens(self) -> int | None: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def embedding(self) -> _F32Vector: ...
    @property
    def dim(self) -> int: ...
    @property
    def text(self) -> str | None: ...
    @property
    def tokens(self) -> list[str] | None: ...
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class RaggedEmbeddings:
    """A batch of token matrices in one buffer: document ``i`` is
    ``values[offsets[i]:offsets[i + 1]]``."""

    def __new__(
        cls, values: npt.NDArray[np.floating[Any]], offsets: npt.NDArray[np.int64]
    ) -> RaggedEmbeddings: ...
    @property
    def values(self) -> _F32Matrix: ...
    @property
    def offsets(self) -> npt.NDArray[np.int64]: ...
    @property
    def lengths(self) -> list[int]: ...
    @property
    def dim(self) -> int: ...
    def __len__(self) -> int: ...
    def __getitem__(self, key: int, /) -> _F32Matrix: ...
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]: ...
    def to_arrow(self) -> Any: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Forecast:
    """One series' forecast: the median path and the quantile paths around it."""

    def __new__(
        cls,
        median: npt.NDArray[np.float32],
        quantiles: npt.NDArray[np.float32],
        quantile_levels: list[float],
    ) -> Forecast: ...
    @property
    def median(self) -> _F32Vector: ...
    @property
    def quantiles(self) -> _F32Matrix: ...
    @property
    def quantile_levels(self) -> list[float]: ...
    @property
    def prediction_length(self) -> int: ...
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...

_Image = str | os.PathLike[str] | bytes | bytearray | npt.NDArray[np.uint8] | Any

@final
class VisionEmbedding:
    """A page image's token matrix: the image patch rows, then the prompt-token rows."""

    def __new__(
        cls, embeddings: npt.NDArray[np.floating[Any]], num_patches: int, source: str | None = None
    ) -> VisionEmbedding: ...
    @property
    def embeddings(self) -> _F32Matrix: ...
    @property
    def num_patches(self) -> int: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def source(self) -> str | None: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class TesseraVision:
    """Vision-language document retrieval (ColPali)."""

    def __new__(
        cls,
        model: _ModelName,
        *,
        device: _DeviceLike | None = None,
        dtype: _DType | None = None,
        revision: str | None = None,
        batch_size: int | None = None,
    ) -> TesseraVision: ...
    @staticmethod
    def builder() -> TesseraVisionBuilder: ...
    @overload
    def encode_document(
        self,
        image: _Image,
        *,
        output: Literal["object"] = "object",
        pool_factor: int | None = None,
    ) -> VisionEmbedding: ...
    @overload
    def encode_document(
        self,
        image: _Image,
        *,
        output: Literal["array"],
        pool_factor: int | None = None,
    ) -> _F32Matrix: ...
    @overload
    def encode_documents(
        self,
        images: Iterable[_Image],
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> list[VisionEmbedding]: ...
    @overload
    def encode_documents(
        self,
        images: Iterable[_Image],
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> list[_F32Matrix]: ...
    @overload
    def encode_documents(
        self,
        images: Iterable[_Image],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> RaggedEmbeddings: ...
    @overload
    def encode_documents(
        self,
        images: Iterable[_Image],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> Any: ...
    @overload
    def encode_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        output: Literal["object"] = "object",
        dpi: int = 144,
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> list[VisionEmbedding]: ...
    @overload
    def encode_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        output: Literal["array"],
        dpi: int = 144,
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> list[_F32Matrix]: ...
    @overload
    def encode_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        output: Literal["flat"],
        dpi: int = 144,
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> RaggedEmbeddings: ...
    @overload
    def encode_pdf(
        self,
        path: str | os.PathLike[str],
        *,
        output: Literal["arrow"],
        dpi: int = 144,
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> Any: ...
    @overload
    def encode_query(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> _F32Matrix: ...
    @overload
    def encode_query(  # type: ignore[overload-overlap]
        self,
        text: str,
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> TokenEmbeddings: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[_F32Matrix]: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[TokenEmbeddings]: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> RaggedEmbeddings: ...
    @overload
    def encode_query(
        self,
        text: Sequence[str],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    @overload
    def encode(
        self,
        image: list[_Image] | tuple[_Image, ...],
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> list[VisionEmbedding]: ...
    @overload
    def encode(
        self,
        image: list[_Image] | tuple[_Image, ...],
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> list[_F32Matrix]: ...
    @overload
    def encode(
        self,
        image: list[_Image] | tuple[_Image, ...],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> RaggedEmbeddings: ...
    @overload
    def encode(
        self,
        image: list[_Image] | tuple[_Image, ...],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> Any: ...
    @overload
    def encode(
        self,
        image: _Image,
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> VisionEmbedding: ...
    @overload
    def encode(
        self,
        image: _Image,
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> _F32Matrix: ...
    @overload
    def encode_batch(
        self,
        images: Iterable[_Image],
        *,
        output: Literal["object"] = "object",
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> list[VisionEmbedding]: ...
    @overload
    def encode_batch(
        self,
        images: Iterable[_Image],
        *,
        output: Literal["array"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> list[_F32Matrix]: ...
    @overload
    def encode_batch(
        self,
        images: Iterable[_Image],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> RaggedEmbeddings: ...
    @overload
    def encode_batch(
        self,
        images: Iterable[_Image],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        pool_factor: int | None = None,
    ) -> Any: ...
    def similarity(
        self,
        query: str | npt.NDArray[np.floating[Any]],
        document: VisionEmbedding | npt.NDArray[np.floating[Any]],
    ) -> float: ...
    def dimension(self) -> int: ...
    def max_length(self) -> int: ...
    @overload
    def count_tokens(self, texts: str) -> int: ...  # type: ignore[overload-overlap]
    @overload
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...
    @overload
    def encode_queries(
        self,
        texts: Iterable[str],
        *,
        output: Literal["array"] = "array",
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[_F32Matrix]: ...
    @overload
    def encode_queries(
        self,
        texts: Iterable[str],
        *,
        output: Literal["object"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> list[TokenEmbeddings]: ...
    @overload
    def encode_queries(
        self,
        texts: Iterable[str],
        *,
        output: Literal["flat"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> RaggedEmbeddings: ...
    @overload
    def encode_queries(
        self,
        texts: Iterable[str],
        *,
        output: Literal["arrow"],
        batch_size: int | None = None,
        show_progress: bool = False,
        on_truncation: _OnTruncation = "ignore",
    ) -> Any: ...
    def search(
        self,
        query: str | npt.NDArray[np.floating[Any]],
        document: VisionEmbedding | npt.NDArray[np.floating[Any]],
    ) -> float: ...
    def search_document(self, query: str, image: _Image) -> float: ...
    def similarity_matrix(
        self,
        queries: Sequence[str | npt.NDArray[np.floating[Any]]],
        documents: Sequence[VisionEmbedding | npt.NDArray[np.floating[Any]]],
    ) -> _F32Matrix: ...
    def embedding_dim(self) -> int: ...
    def num_patches(self) -> int: ...
    def image_size(self) -> int: ...
    def aencode(self, inputs: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def aencode_query(self, inputs: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def aencode_document(self, inputs: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]: ...
    def encode_stream(
        self,
        inputs: Iterable[Any],
        *,
        batch_size: int | None = None,
        column: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]: ...
    def model(self) -> str: ...

@final
class TesseraVisionBuilder:
    """Fluent configuration of a :class:`TesseraVision`; each setter validates at once."""

    def __new__(cls) -> TesseraVisionBuilder: ...
    def model(self, model: _ModelName) -> TesseraVisionBuilder: ...
    def device(self, device: _DeviceLike) -> TesseraVisionBuilder: ...
    def dtype(self, dtype: _DType) -> TesseraVisionBuilder: ...
    def revision(self, revision: str) -> TesseraVisionBuilder: ...
    def batch_size(self, batch_size: int) -> TesseraVisionBuilder: ...
    def build(self) -> TesseraVision: ...
