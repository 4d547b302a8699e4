"""Exceptions raised by tessera.

Every error derives from :class:`TesseraError` and also from the built-in exception a
caller would naturally catch, so ``except tessera.TesseraError`` and, for example,
``except ValueError`` both work.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeviceError",
    "DimensionMismatchError",
    "EncodingError",
    "MatryoshkaError",
    "ModelLoadError",
    "ModelNotFoundError",
    "QuantizationError",
    "TensorError",
    "TesseraError",
    "TesseraIOError",
    "TokenizationError",
    "UnsupportedDimensionError",
]


class TesseraError(Exception):
    """Base class of every tessera error."""


class ModelNotFoundError(TesseraError, RuntimeError):
    """The model id, repo id or directory does not exist (the message suggests close ids)."""


class ModelLoadError(TesseraError, RuntimeError):
    """The model was found but cannot be loaded (missing or corrupt files, unsupported
    architecture, not cached while offline)."""


class EncodingError(TesseraError, RuntimeError):
    """Inference failed."""


class UnsupportedDimensionError(TesseraError, ValueError):
    """The requested Matryoshka dimension is not one the model supports."""


class DeviceError(TesseraError, RuntimeError):
    """The device is unknown, unavailable, or not compiled into this build."""


class QuantizationError(TesseraError, ValueError):
    """Quantization settings or inputs are invalid."""


class TokenizationError(TesseraError, ValueError):
    """The tokenizer rejected the input."""


class ConfigError(TesseraError, ValueError):
    """An option or a configuration value is invalid."""


class DimensionMismatchError(TesseraError, ValueError):
    """Two embeddings that must share a dimension do not."""


class MatryoshkaError(TesseraError, ValueError):
    """A Matryoshka truncation request is invalid."""


class TesseraIOError(TesseraError, OSError):
    """Reading or writing a file failed."""


class TensorError(TesseraError, RuntimeError):
    """A tensor operation failed inside the engine."""
