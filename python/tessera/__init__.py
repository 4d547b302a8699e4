"""Tessera: embedding and forecasting models run locally, NumPy in and out.

>>> from tessera import Tessera
>>> model = Tessera("all-minilm-l6-v2")
>>> model.encode("What is late interaction?").shape
(384,)
"""

from __future__ import annotations

from tessera._tessera import (
    DenseEmbedding,
    Device,
    QuantizationConfig,
    QuantizedEmbeddings,
    SparseEmbedding,
    Tessera,
    TesseraDense,
    TesseraDenseBuilder,
    TesseraMultiVector,
    TesseraMultiVectorBuilder,
    TesseraSparse,
    TesseraSparseBuilder,
    TesseraTimeSeries,
    TesseraTimeSeriesBuilder,
    TesseraVision,
    TesseraVisionBuilder,
    TokenEmbeddings,
    VisionEmbedding,
    __version__,
    available_devices,
    list_models,
    quantize,
    quantize_embeddings,
)
from tessera.exceptions import (
    ConfigError,
    DeviceError,
    DimensionMismatchError,
    EncodingError,
    MatryoshkaError,
    ModelLoadError,
    ModelNotFoundError,
    QuantizationError,
    TensorError,
    TesseraError,
    TesseraIOError,
    TokenizationError,
    UnsupportedDimensionError,
)

__all__ = [
    "ConfigError",
    "DenseEmbedding",
    "Device",
    "DeviceError",
    "DimensionMismatchError",
    "EncodingError",
    "MatryoshkaError",
    "ModelLoadError",
    "ModelNotFoundError",
    "QuantizationConfig",
    "QuantizationError",
    "QuantizedEmbeddings",
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
    "UnsupportedDimensionError",
    "VisionEmbedding",
    "__version__",
    "available_devices",
    "list_models",
    "quantize",
    "quantize_embeddings",
]
