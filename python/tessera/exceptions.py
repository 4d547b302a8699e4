"""Exceptions raised by tessera.

Every error derives from :class:`TesseraError` and also from the built-in exception a
caller would naturally catch, so ``except tessera.TesseraError`` and, for example,
``except ValueError`` both work. The classes are declared by the extension module, which
maps each engine error onto exactly one of them.
"""

from __future__ import annotations

from tessera._tessera import (
    ConfigError,
    DeviceError,
    DimensionMismatchError,
    EncodingError,
    MatryoshkaError,
    ModelLoadError,
    ModelNotFoundError,
    OutOfMemoryError,
    QuantizationError,
    TensorError,
    TesseraError,
    TesseraIOError,
    TokenizationError,
    TruncationWarning,
    UnsupportedDimensionError,
)

__all__ = [
    "ConfigError",
    "DeviceError",
    "DimensionMismatchError",
    "EncodingError",
    "MatryoshkaError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OutOfMemoryError",
    "QuantizationError",
    "TensorError",
    "TesseraError",
    "TesseraIOError",
    "TokenizationError",
    "TruncationWarning",
    "UnsupportedDimensionError",
]
