"""Every bad input raises the right exception class with a useful message, and the
exception hierarchy is what SPEC §3 promises."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import tessera
from tessera import TesseraDense

HIERARCHY = {
    "ModelNotFoundError": RuntimeError,
    "ModelLoadError": RuntimeError,
    "EncodingError": RuntimeError,
    "UnsupportedDimensionError": ValueError,
    "DeviceError": RuntimeError,
    "QuantizationError": ValueError,
    "TokenizationError": ValueError,
    "ConfigError": ValueError,
    "DimensionMismatchError": ValueError,
    "MatryoshkaError": ValueError,
    "TesseraIOError": OSError,
    "TensorError": RuntimeError,
}


@pytest.mark.parametrize("name,builtin", HIERARCHY.items())
def test_each_error_is_a_tessera_error_and_a_builtin(name: str, builtin: type) -> None:
    cls = getattr(tessera, name)
    assert issubclass(cls, tessera.TesseraError) and issubclass(cls, builtin)


@pytest.fixture(scope="module")
def model(tiny_dense_dir: Path) -> TesseraDense:
    return TesseraDense(tiny_dense_dir)


@pytest.mark.parametrize("bad", [None, 3, 2.5, b"bytes", [3], ["ok", None]])
def test_encode_rejects_what_is_not_text(model: TesseraDense, bad: object) -> None:
    # A str or a sequence of str, as sentence-transformers' encode takes.
    with pytest.raises(TypeError, match="must be str"):
        model.encode(bad)  # type: ignore[call-overload]


@pytest.mark.parametrize("bad", [None, 3, "a single string", b"bytes", ["ok", 5], [None]])
def test_encode_batch_rejects_non_sequences_of_str(model: TesseraDense, bad: object) -> None:
    with pytest.raises(TypeError, match="str"):
        model.encode_batch(bad)  # type: ignore[arg-type]


def test_encode_batch_names_the_bad_item(model: TesseraDense) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] must be str, not int"):
        model.encode_batch(["fine", 7])  # type: ignore[list-item]


def test_unknown_model_suggests_close_ids() -> None:
    with pytest.raises(tessera.ModelNotFoundError, match=r"bge-small-en-v1\.5"):
        TesseraDense("bge-smal-en-v1.5")
    with pytest.raises(RuntimeError):
        TesseraDense("definitely not a model")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(tessera.ModelNotFoundError, match="no such model directory"):
        TesseraDense(tmp_path / "absent")


def test_directory_without_weights(tmp_path: Path, tiny_dense_dir: Path) -> None:
    model_dir = tmp_path / "noweights"
    shutil.copytree(tiny_dense_dir, model_dir)
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(tessera.ModelLoadError, match=r"model\.safetensors"):
        TesseraDense(model_dir)


def test_pytorch_only_checkpoint_is_refused_clearly(tmp_path: Path, tiny_dense_dir: Path) -> None:
    model_dir = tmp_path / "bin"
    shutil.copytree(tiny_dense_dir, model_dir)
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(tessera.ModelLoadError, match="only safetensors"):
        TesseraDense(model_dir)


def test_truncated_weights(tmp_path: Path, tiny_dense_dir: Path) -> None:
    model_dir = tmp_path / "truncated"
    shutil.copytree(tiny_dense_dir, model_dir)
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(tessera.ModelLoadError, match="safetensors"):
        TesseraDense(model_dir)


def test_config_that_is_not_json(tmp_path: Path, tiny_dense_dir: Path) -> None:
    model_dir = tmp_path / "badconfig"
    shutil.copytree(tiny_dense_dir, model_dir)
    (model_dir / "config.json").write_text("{ not json")
    with pytest.raises(tessera.ModelLoadError, match="invalid JSON"):
        TesseraDense(model_dir)


def test_missing_weight_tensor(tmp_path: Path, tiny_dense_dir: Path) -> None:
    model_dir = tmp_path / "deeper"
    shutil.copytree(tiny_dense_dir, model_dir)
    config = (model_dir / "config.json").read_text()
    (model_dir / "config.json").write_text(
        config.replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    )
    with pytest.raises(tessera.ModelLoadError, match="missing from the checkpoint"):
        TesseraDense(model_dir)


def test_unsupported_dimension_is_caught_at_the_setter() -> None:
    builder = TesseraDense.builder().model("bge-small-en-v1.5")
    with pytest.raises(tessera.UnsupportedDimensionError, match="384"):
        builder.dimension(100)


def test_dimension_beyond_the_model(tiny_dense_dir: Path) -> None:
    with pytest.raises(tessera.UnsupportedDimensionError):
        TesseraDense(tiny_dense_dir, dimension=64)
    with pytest.raises(tessera.MatryoshkaError):
        TesseraDense(tiny_dense_dir, dimension=0)


def test_cuda_in_a_cpu_build(tiny_dense_dir: Path) -> None:
    if "cuda" in tessera.available_devices():
        pytest.skip("this build has CUDA")
    with pytest.raises(tessera.DeviceError, match="cuda"):
        TesseraDense(tiny_dense_dir, device="cuda")
    with pytest.raises(tessera.DeviceError, match="unknown device"):
        TesseraDense(tiny_dense_dir, device="tpu")
    with pytest.raises(TypeError, match="device must be"):
        TesseraDense(tiny_dense_dir, device=3)  # type: ignore[arg-type]


def test_bad_options(tiny_dense_dir: Path) -> None:
    with pytest.raises(tessera.ConfigError, match="batch_size"):
        TesseraDense(tiny_dense_dir, batch_size=0)
    with pytest.raises(tessera.ConfigError, match="position embeddings"):
        TesseraDense(tiny_dense_dir, max_length=100_000)
    with pytest.raises(tessera.ConfigError, match="dtype"):
        TesseraDense(tiny_dense_dir, dtype="f8")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TesseraDense(12)  # type: ignore[arg-type]
