"""Type stubs for tessera (installed as tessera/__init__.pyi)."""

import os
from collections.abc import Iterable, Sequence
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
    UnsupportedDimensionError as UnsupportedDimensionError,
)

__version__: str

__all__ = [
    "ConfigError",
    "Device",
    "DeviceError",
    "DimensionMismatchError",
    "EncodingError",
    "MatryoshkaError",
    "ModelLoadError",
    "ModelNotFoundError",
    "QuantizationError",
    "SparseEmbedding",
    "Tessera",
    "TesseraDense",
    "TesseraDenseBuilder",
    "TesseraError",
    "TesseraIOError",
    "TesseraSparse",
    "TesseraSparseBuilder",
    "TesseraTimeSeries",
    "TesseraTimeSeriesBuilder",
    "TensorError",
    "TokenizationError",
    "UnsupportedDimensionError",
    "__version__",
    "available_devices",
    "list_models",
]

_ModelName = Union[str, os.PathLike[str]]
_DeviceLike = Union["Device", str]
_DType = Literal["f32", "f16", "bf16", "float32", "float16", "bfloat16"]
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

def Tessera(model: _ModelName, **options: Any) -> TesseraDense | TesseraSparse | TesseraTimeSeries:
    """The embedder for ``model``'s paradigm (registry id, repo id or directory)."""

@final
class TesseraDense:
    """Dense text embeddings: one vector per text."""

    def __new__(
        cls,
        model: _ModelName,
        *,
        device: _DeviceLike | None = None,
        dtype: _DType | None = None,
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
    def encode(self, text: str) -> _F32Vector: ...
    def encode_batch(
        self, texts: Iterable[str], *, batch_size: int | None = None, show_progress: bool = False
    ) -> _F32Matrix: ...
    @overload
    def encode_query(
        self, text: str, *, batch_size: int | None = None, show_progress: bool = False
    ) -> _F32Vector: ...
    @overload
    def encode_query(
        self, text: Sequence[str], *, batch_size: int | None = None, show_progress: bool = False
    ) -> _F32Matrix: ...
    @overload
    def encode_document(
        self, text: str, *, batch_size: int | None = None, show_progress: bool = False
    ) -> _F32Vector: ...
    @overload
    def encode_document(
        self, text: Sequence[str], *, batch_size: int | None = None, show_progress: bool = False
    ) -> _F32Matrix: ...
    def similarity(
        self, a: str | npt.ArrayLike, b: str | npt.ArrayLike
    ) -> float: ...
    def dimension(self) -> int: ...
    def model(self) -> str: ...
    def max_length(self) -> int: ...
    def tokenize(self, text: str) -> list[int]: ...

@final
class TesseraDenseBuilder:
    """Fluent configuration of a :class:`TesseraDense`; each setter validates at once."""

    def __new__(cls) -> TesseraDenseBuilder: ...
    def model(self, model: _ModelName) -> TesseraDenseBuilder: ...
    def device(self, device: _DeviceLike) -> TesseraDenseBuilder: ...
    def dtype(self, dtype: _DType) -> TesseraDenseBuilder: ...
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
        cls, indices: npt.NDArray[np.int64], values: npt.NDArray[np.float32], vocab_size: int
    ) -> SparseEmbedding: ...
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
    def encode(self, text: str) -> SparseEmbedding: ...
    def encode_batch(
        self, texts: Iterable[str], *, batch_size: int | None = None, show_progress: bool = False
    ) -> list[SparseEmbedding]: ...
    @overload
    def encode_query(  # type: ignore[overload-overlap]
        self, text: str, *, batch_size: int | None = None, show_progress: bool = False
    ) -> SparseEmbedding: ...
    @overload
    def encode_query(
        self, text: Sequence[str], *, batch_size: int | None = None, show_progress: bool = False
    ) -> list[SparseEmbedding]: ...
    @overload
    def encode_document(  # type: ignore[overload-overlap]
        self, text: str, *, batch_size: int | None = None, show_progress: bool = False
    ) -> SparseEmbedding: ...
    @overload
    def encode_document(
        self, text: Sequence[str], *, batch_size: int | None = None, show_progress: bool = False
    ) -> list[SparseEmbedding]: ...
    def encode_csr(
        self, texts: Iterable[str], *, batch_size: int | None = None, show_progress: bool = False
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
    def model(self) -> str: ...
    def max_length(self) -> int: ...
    def tokenize(self, text: str) -> list[int]: ...

@final
class TesseraSparseBuilder:
    """Fluent configuration of a :class:`TesseraSparse`; each setter validates at once."""

    def __new__(cls) -> TesseraSparseBuilder: ...
    def model(self, model: _ModelName) -> TesseraSparseBuilder: ...
    def device(self, device: _DeviceLike) -> TesseraSparseBuilder: ...
    def dtype(self, dtype: _DType) -> TesseraSparseBuilder: ...
    def revision(self, revision: str) -> TesseraSparseBuilder: ...
    def max_length(self, value: int) -> TesseraSparseBuilder: ...
    def batch_size(self, batch_size: int) -> TesseraSparseBuilder: ...
    def top_k(self, value: int) -> TesseraSparseBuilder: ...
    def min_weight(self, value: float) -> TesseraSparseBuilder: ...
    def query_prefix(self, value: str) -> TesseraSparseBuilder: ...
    def document_prefix(self, value: str) -> TesseraSparseBuilder: ...
    def build(self) -> TesseraSparse: ...

_Context = Union[npt.ArrayLike, Sequence[npt.ArrayLike]]

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
    def forecast(self, context: _Context, prediction_length: int | None = None) -> _F32Matrix: ...
    def forecast_quantiles(
        self,
        context: _Context,
        prediction_length: int | None = None,
        quantile_levels: Sequence[float] | None = None,
    ) -> npt.NDArray[np.float32]: ...
    def embed(
        self, context: _Context
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def prediction_length(self) -> int: ...
    def context_length(self) -> int: ...
    def quantiles(self) -> list[float]: ...
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
