"""Tessera: embedding and forecasting models run locally, NumPy in and out.

>>> from tessera import Tessera
>>> model = Tessera("all-minilm-l6-v2")
>>> model.encode("What is late interaction?").shape
(384,)
"""

from __future__ import annotations

from tessera._tessera import (
    Device,
    SparseEmbedding,
    Tessera,
    TesseraDense,
    TesseraDenseBuilder,
    TesseraSparse,
    TesseraSparseBuilder,
    TesseraTimeSeries,
    TesseraTimeSeriesBuilder,
    __version__,
    available_devices,
    list_models,
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
